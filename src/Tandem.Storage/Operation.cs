using System.Text;

namespace Tandem.Storage;

/// <summary>
/// One write, exactly as it is sequenced on the primary and re-applied on the backup: a data command
/// (<see cref="Args"/>, the name first), the primary's time when it sequenced it (<see cref="Now"/>, Unix
/// milliseconds) and, for an exactly-once request, the client id, request number and acked-through mark.
/// Applying it is deterministic: every copy computes the same reply and the same new state, deadlines included.
/// <paramref name="ClientId"/> is 0 for a write without exactly-once tracking (a plain RESP client).
/// </summary>
/// <remarks>
/// Besides the data commands of <see cref="DataCommands.Table"/>, three names are writes of their own:
/// <see cref="Transaction"/> (commands applied as one unit), <see cref="Expired"/> (time moves on to
/// <see cref="Now"/>: only the keys whose deadline came are removed) and <see cref="Register"/> (a new client id).
/// </remarks>
public readonly record struct Operation(byte[][] Args, long Now = 0, long ClientId = 0, long RequestSeq = 0, long AckedThrough = 0)
{
    /// <summary><c>EXEC count args... [count args...]...</c>: a transaction's commands, each its argument count then its arguments.</summary>
    public const string Transaction = "EXEC";

    /// <summary><c>EXPIRED</c>: removes the keys whose deadline is at or before <see cref="Now"/>, and nothing else.</summary>
    public const string Expired = "EXPIRED";

    /// <summary><c>XCLIENT</c>: issues a new client id for exactly-once requests; replies the id.</summary>
    public const string Register = "XCLIENT";

    /// <summary>True when the write carries a client id and request number.</summary>
    public bool IsTracked => ClientId != 0;

    /// <summary>The command's name.</summary>
    public ReadOnlySpan<byte> Name => Args.Length > 0 ? Args[0] : default;

    /// <summary>A write of text arguments (tests and tools).</summary>
    public static Operation Of(params string[] args) => new(Array.ConvertAll(args, Encoding.UTF8.GetBytes));

    /// <summary>Bytes the write holds (for the replication backlog's bound).</summary>
    public long Size
    {
        get
        {
            long n = 64;
            foreach (byte[] a in Args) n += a.Length + 16;
            return n;
        }
    }

    /// <summary>The commands of a transaction built by <see cref="Transaction"/>'s layout.</summary>
    public static byte[][] TransactionArgs(IReadOnlyList<byte[][]> commands)
    {
        ArgumentNullException.ThrowIfNull(commands);
        var args = new List<byte[]> { Encoding.ASCII.GetBytes(Transaction) };
        foreach (byte[][] command in commands)
        {
            args.Add(Encoding.ASCII.GetBytes(command.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            args.AddRange(command);
        }
        return [.. args];
    }

    /// <summary>Splits a transaction's arguments back into its commands; null when they are not laid out as one.</summary>
    public static List<byte[][]>? SplitTransaction(byte[][] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var commands = new List<byte[][]>();
        for (int i = 1; i < args.Length;)
        {
            if (!RedisText.TryParseLong(args[i], out long n) || n < 1 || n > args.Length - i - 1) return null;
            commands.Add(args[(i + 1)..(i + 1 + (int)n)]);
            i += 1 + (int)n;
        }
        return commands;
    }
}
