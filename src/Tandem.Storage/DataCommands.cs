using System.Text;
using Tandem.Protocol;

namespace Tandem.Storage;

/// <summary>Runs one data command against the store: the arguments (the name at 0), already checked for arity.</summary>
public delegate RespValue DataCommand(DataContext context, byte[][] args);

/// <summary>
/// What a data command runs against: the store, the time of the write or read (Unix milliseconds, decided by the
/// primary and carried by a replicated write, so every copy computes the same deadlines) and the value limit.
/// </summary>
public sealed class DataContext
{
    internal DataContext(KeyValueStore store, DuplicateTable duplicates)
    {
        Store = store;
        Duplicates = duplicates;
    }

    /// <summary>The keys and values.</summary>
    public KeyValueStore Store { get; internal set; }

    /// <summary>The duplicate table (client ids are issued by a write).</summary>
    public DuplicateTable Duplicates { get; internal set; }

    /// <summary>The time of the command, Unix milliseconds.</summary>
    public long Now { get; internal set; }

    /// <summary>Largest value a write may make (APPEND, SETRANGE, SETBIT). The backup applies what the primary accepted.</summary>
    public long MaxValueBytes { get; internal set; } = long.MaxValue;

    /// <summary>Chooses RANDOMKEY's key (reads only: it never decides a write).</summary>
    internal Random Random { get; } = new();
}

/// <summary>Redis's error replies for data commands, word for word.</summary>
public static class DataErrors
{
    /// <summary><c>ERR syntax error</c></summary>
    public static RespValue Syntax { get; } = RespValue.Error("ERR syntax error");

    /// <summary><c>ERR value is not an integer or out of range</c></summary>
    public static RespValue NotInteger { get; } = RespValue.Error("ERR value is not an integer or out of range");

    /// <summary><c>ERR value is not a valid float</c></summary>
    public static RespValue NotFloat { get; } = RespValue.Error("ERR value is not a valid float");

    /// <summary><c>ERR increment or decrement would overflow</c></summary>
    public static RespValue Overflow { get; } = RespValue.Error("ERR increment or decrement would overflow");

    /// <summary><c>ERR no such key</c></summary>
    public static RespValue NoSuchKey { get; } = RespValue.Error("ERR no such key");

    /// <summary><c>ERR string exceeds maximum allowed size (proto-max-bulk-len)</c></summary>
    public static RespValue TooLarge { get; } = RespValue.Error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");

    /// <summary><c>ERR bit offset is not an integer or out of range</c></summary>
    public static RespValue BitOffset { get; } = RespValue.Error("ERR bit offset is not an integer or out of range");

    /// <summary><c>ERR invalid expire time in 'name' command</c></summary>
    public static RespValue InvalidExpire(string lowerName) => RespValue.Error($"ERR invalid expire time in '{lowerName}' command");
}

/// <summary>
/// The data commands: Redis 7's string and key commands, by name, with Redis's arity, flags and key positions.
/// Writes change the store only through <see cref="DataContext"/>; given the same store, arguments and time they
/// give the same reply and the same new state on every copy. Reads never change the store.
/// </summary>
public static class DataCommands
{
    /// <summary>Every data command.</summary>
    public static CommandTable<DataCommand> Table { get; } = Build();

    private static CommandTable<DataCommand> Build()
    {
        const CommandFlags W = CommandFlags.Write, R = CommandFlags.ReadOnly;
        var t = new CommandTable<DataCommand>();
        StringCommands.AddTo(t, W, R);
        KeyCommands.AddTo(t, W, R);
        t.Add("PUTHASH", 3, W, KeySpec.One, PutHash);
        return t;
    }

    /// <summary>Runs the data command <paramref name="args"/> (its arity checked by the caller).</summary>
    public static RespValue Run(DataContext context, byte[][] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Length == 0 || !Table.TryFind(args[0], out CommandSpec<DataCommand>? spec))
            return CommandErrors.Unknown(new RespCommand(args));
        if (!spec.AcceptsCount(args.Length)) return CommandErrors.WrongArity(spec.LowerName);
        try
        {
            return spec.Handler(context, args);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A bug in a command must not stop the sequencer or the backup's apply loop. Given the same state and
            // arguments it throws the same way on every copy, so the copies still agree.
            return RespValue.Error($"ERR {spec.LowerName} failed: {e.GetType().Name}");
        }
    }

    private static RespValue PutHash(DataContext c, byte[][] a)
    {
        byte[] old = c.Store.TryGet(a[1], out ReadOnlyMemory<byte> current) ? current.ToArray() : [];
        c.Store.Set(a[1], Fnv1a.PutHashValue(old, a[2]));
        return RespValue.Bulk(old);
    }

    internal static RespValue Bulk(string s) => RespValue.Bulk(Encoding.UTF8.GetBytes(s));

    /// <summary>The value of <paramref name="key"/> as a bulk reply, or the null bulk.</summary>
    internal static RespValue ValueOrNull(DataContext c, byte[] key) =>
        c.Store.TryGet(key, out ReadOnlyMemory<byte> value) ? RespValue.Bulk(value) : RespValue.NullBulk;

    /// <summary>Redis's range rule (GETRANGE, BITCOUNT): negative indexes count from the end; false when the range is empty.</summary>
    internal static bool Clamp(long start, long end, long length, out long from, out long to)
    {
        from = to = 0;
        if (start < 0 && end < 0 && start > end) return false;
        if (start < 0) start = length + start;
        if (end < 0) end = length + end;
        if (start < 0) start = 0;
        if (end < 0) end = 0;
        if (end >= length) end = length - 1;
        if (start > end || length == 0) return false;
        from = start;
        to = end;
        return true;
    }

    internal static bool Is(byte[] arg, string word) => Ascii.EqualsIgnoreCase(arg, word);

    /// <summary>A client's argument quoted in an error reply: at most 128 bytes of it, as Redis quotes them.</summary>
    internal static string Echo(byte[] arg) => Encoding.UTF8.GetString(arg.AsSpan(0, Math.Min(arg.Length, 128)));
}
