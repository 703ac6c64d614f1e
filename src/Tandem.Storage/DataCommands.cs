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
    // Before Table: static fields are initialized in order, and Build reads this one.
    /// <summary>Each command's summary and arguments, for <c>COMMAND DOCS</c> (and so redis-cli's hints).</summary>
    private static readonly (string Name, string Summary, string Syntax)[] Docs =
    [
        ("GET", "Returns the string value of a key.", "key"),
        ("SET", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
            "key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]"),
        ("SETNX", "Set the string value of a key only when the key doesn't exist.", "key value"),
        ("SETEX", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", "key seconds value"),
        ("PSETEX", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", "key milliseconds value"),
        ("GETSET", "Returns the previous string value of a key after setting it to a new value.", "key value"),
        ("GETDEL", "Returns the string value of a key after deleting the key.", "key"),
        ("GETEX", "Returns the string value of a key after setting its expiration time.",
            "key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | PERSIST]"),
        ("MGET", "Atomically returns the string values of one or more keys.", "key..."),
        ("MSET", "Atomically creates or modifies the string values of one or more keys.", "(key value)..."),
        ("MSETNX", "Atomically modifies the string values of one or more keys only when all keys don't exist.", "(key value)..."),
        ("STRLEN", "Returns the length of a string value.", "key"),
        ("APPEND", "Appends a string to the value of a key. Creates the key if it doesn't exist.", "key value"),
        ("GETRANGE", "Returns a substring of the string stored at a key.", "key start end"),
        ("SUBSTR", "Returns a substring from a string value.", "key start end"),
        ("SETRANGE", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", "key offset value"),
        ("LCS", "Finds the longest common substring.", "key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]"),
        ("INCR", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "key"),
        ("DECR", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "key"),
        ("INCRBY", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "key increment"),
        ("DECRBY", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", "key decrement"),
        ("INCRBYFLOAT", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "key increment:double"),
        ("SETBIT", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.", "key offset value"),
        ("GETBIT", "Returns a bit value by offset.", "key offset"),
        ("BITCOUNT", "Counts the number of set bits (population counting) in a string.", "key [start end [BYTE | BIT]]"),
        ("BITPOS", "Finds the first set (1) or clear (0) bit in a string.", "key bit [start [end [BYTE | BIT]]]"),
        ("DEL", "Deletes one or more keys.", "key..."),
        ("UNLINK", "Asynchronously deletes one or more keys.", "key..."),
        ("EXISTS", "Determines whether one or more keys exist.", "key..."),
        ("TOUCH", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", "key..."),
        ("TYPE", "Determines the type of value stored at a key.", "key"),
        ("KEYS", "Returns all key names that match a pattern.", "pattern"),
        ("SCAN", "Iterates over the key names in the database.", "cursor [MATCH pattern] [COUNT count] [TYPE type]"),
        ("RANDOMKEY", "Returns a random key name from the database.", ""),
        ("DBSIZE", "Returns the number of keys in the database.", ""),
        ("FLUSHDB", "Remove all keys from the current database.", "[ASYNC | SYNC]"),
        ("FLUSHALL", "Removes all keys from all databases.", "[ASYNC | SYNC]"),
        ("RENAME", "Renames a key and overwrites the destination.", "key newkey"),
        ("RENAMENX", "Renames a key only when the target key name doesn't exist.", "key newkey"),
        ("COPY", "Copies the value of a key to a new key.", "source destination [DB destination-db] [REPLACE]"),
        ("OBJECT", "A container for object introspection commands.", "subcommand [key]"),
        ("EXPIRE", "Sets the expiration time of a key in seconds.", "key seconds [NX | XX | GT | LT]"),
        ("PEXPIRE", "Sets the expiration time of a key in milliseconds.", "key milliseconds [NX | XX | GT | LT]"),
        ("EXPIREAT", "Sets the expiration time of a key to a Unix timestamp.", "key unix-time-seconds [NX | XX | GT | LT]"),
        ("PEXPIREAT", "Sets the expiration time of a key to a Unix milliseconds timestamp.", "key unix-time-milliseconds [NX | XX | GT | LT]"),
        ("TTL", "Returns the expiration time in seconds of a key.", "key"),
        ("PTTL", "Returns the expiration time in milliseconds of a key.", "key"),
        ("EXPIRETIME", "Returns the expiration time of a key as a Unix timestamp.", "key"),
        ("PEXPIRETIME", "Returns the expiration time of a key as a Unix milliseconds timestamp.", "key"),
        ("PERSIST", "Removes the expiration time of a key.", "key"),
        ("PUTHASH", "Stores the FNV-1a hash of the old value and the given one; returns the old value.", "key value"),
    ];

    /// <summary>Every data command.</summary>
    public static CommandTable<DataCommand> Table { get; } = Build();

    private static CommandTable<DataCommand> Build()
    {
        const CommandFlags W = CommandFlags.Write, R = CommandFlags.ReadOnly;
        var t = new CommandTable<DataCommand>();
        StringCommands.AddTo(t, W, R);
        KeyCommands.AddTo(t, W, R);
        t.Add("PUTHASH", 3, W, KeySpec.One, PutHash);
        foreach ((string name, string summary, string syntax) in Docs) t.Describe(name, summary, syntax);
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
}
