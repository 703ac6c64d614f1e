namespace Tandem.Client;

/// <summary>A request failed in a way retrying cannot fix: a bad request (<c>ERR</c>) or an expired session (<c>EXPIRED</c>).</summary>
public sealed class TandemException : Exception
{
    /// <summary>Creates the exception from the error reply's code and full text.</summary>
    public TandemException(string code, string message) : base(message) => Code = code;

    /// <summary>The error code, the first word of the reply (for example <c>ERR</c> or <c>EXPIRED</c>).</summary>
    public string Code { get; }
}
