namespace Tandem.Client;

/// <summary>A request failed in a way retrying cannot fix, for example a bad request (<c>ERR</c>).</summary>
public class TandemException : Exception
{
    /// <summary>Creates the exception from the error reply's code and full text.</summary>
    public TandemException(string code, string message) : base(message) => Code = code;

    /// <summary>The error code, the first word of the reply (for example <c>ERR</c> or <c>NOSESSION</c>).</summary>
    public string Code { get; }
}

/// <summary>
/// A write was retried after the servers had dropped this client's session from their duplicate table
/// (<c>NOSESSION</c>), and an earlier attempt may have reached them: the write may or may not have taken
/// effect, and the client cannot find out. It was not applied by the refused attempt. Later calls work (the
/// client registers a new id). Only a client silent while very many others wrote can see this.
/// </summary>
public sealed class TandemSessionExpiredException : TandemException
{
    /// <summary>Creates the exception from the server's <c>NOSESSION</c> reply text.</summary>
    public TandemSessionExpiredException(string message) : base(Tandem.Protocol.ErrorCodes.NoSession, message)
    {
    }
}
