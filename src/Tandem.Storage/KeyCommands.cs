using System.Globalization;
using Tandem.Protocol;
using static Tandem.Storage.DataCommands;

namespace Tandem.Storage;

/// <summary>Redis 7's key commands: deleting, finding, renaming and copying keys, and their deadlines.</summary>
internal static class KeyCommands
{
    public static void AddTo(CommandTable<DataCommand> t, CommandFlags w, CommandFlags r)
    {
        t.Add("DEL", -2, w, KeySpec.All, Delete);
        t.Add("UNLINK", -2, w, KeySpec.All, Delete);
        t.Add("EXISTS", -2, r, KeySpec.All, (c, a) => Count(c, a));
        t.Add("TOUCH", -2, r, KeySpec.All, (c, a) => Count(c, a));
        t.Add("TYPE", 2, r, KeySpec.One, (c, a) => RespValue.Simple(c.Store.Contains(a[1]) ? "string" : "none"));
        t.Add("KEYS", 2, r, KeySpec.None, Keys);
        t.Add("SCAN", -2, r, KeySpec.None, Scan);
        t.Add("RANDOMKEY", 1, r, KeySpec.None, (c, _) =>
            c.Store.RandomEntry(c.Random) is { } e ? RespValue.Bulk(KeyValueStore.KeyOf(e).ToArray()) : RespValue.NullBulk);
        t.Add("DBSIZE", 1, r, KeySpec.None, (c, _) => RespValue.Int(c.Store.Count));
        t.Add("FLUSHDB", -1, w, KeySpec.None, Flush);
        t.Add("FLUSHALL", -1, w, KeySpec.None, Flush);
        t.Add("RENAME", 3, w, new KeySpec(1, 2, 1), (c, a) => Rename(c, a, onlyNew: false));
        t.Add("RENAMENX", 3, w, new KeySpec(1, 2, 1), (c, a) => Rename(c, a, onlyNew: true));
        t.Add("COPY", -3, w, new KeySpec(1, 2, 1), Copy);
        t.Add("OBJECT", -2, r, new KeySpec(2, 2, 1), Object);
        t.Add("EXPIRE", -3, w, KeySpec.One, (c, a) => Expire(c, a, 1000, absolute: false, "expire"));
        t.Add("PEXPIRE", -3, w, KeySpec.One, (c, a) => Expire(c, a, 1, absolute: false, "pexpire"));
        t.Add("EXPIREAT", -3, w, KeySpec.One, (c, a) => Expire(c, a, 1000, absolute: true, "expireat"));
        t.Add("PEXPIREAT", -3, w, KeySpec.One, (c, a) => Expire(c, a, 1, absolute: true, "pexpireat"));
        t.Add("TTL", 2, r, KeySpec.One, (c, a) => Ttl(c, a[1], milliseconds: false));
        t.Add("PTTL", 2, r, KeySpec.One, (c, a) => Ttl(c, a[1], milliseconds: true));
        t.Add("EXPIRETIME", 2, r, KeySpec.One, (c, a) => ExpireTime(c, a[1], milliseconds: false));
        t.Add("PEXPIRETIME", 2, r, KeySpec.One, (c, a) => ExpireTime(c, a[1], milliseconds: true));
        t.Add("PERSIST", 2, w, KeySpec.One, (c, a) => RespValue.Int(c.Store.Contains(a[1]) && c.Store.Persist(a[1]) ? 1 : 0));
    }

    private static RespValue Delete(DataContext c, byte[][] a)
    {
        long n = 0;
        for (int i = 1; i < a.Length; i++)
            if (c.Store.Remove(a[i])) n++;
        return RespValue.Int(n);
    }

    private static RespValue Count(DataContext c, byte[][] a)
    {
        long n = 0;
        for (int i = 1; i < a.Length; i++)
            if (c.Store.Contains(a[i])) n++;
        return RespValue.Int(n);
    }

    private static RespValue Keys(DataContext c, byte[][] a)
    {
        var keys = new List<RespValue>();
        bool all = a[1] is [(byte)'*'];
        foreach (byte[] entry in c.Store.Entries())
        {
            ReadOnlySpan<byte> key = KeyValueStore.KeyOf(entry);
            if (all || Glob.Match(a[1], key)) keys.Add(RespValue.Bulk(key.ToArray()));
        }
        return RespValue.Array([.. keys]);
    }

    private static readonly string[] TypeNames = ["string", "list", "set", "zset", "hash", "stream"];

    private static RespValue Scan(DataContext c, byte[][] a)
    {
        if (!RedisText.TryParseCursor(a[1], out ulong cursor)) return RespValue.Error("ERR invalid cursor");
        byte[]? pattern = null;
        long count = 10;
        bool noStrings = false;
        for (int i = 2; i < a.Length; i += 2)
        {
            if (i + 1 >= a.Length) return DataErrors.Syntax;
            if (Is(a[i], "COUNT"))
            {
                if (!RedisText.TryParseLong(a[i + 1], out count)) return DataErrors.NotInteger;
                if (count < 1) return DataErrors.Syntax;
            }
            else if (Is(a[i], "MATCH")) pattern = a[i + 1];
            else if (Is(a[i], "TYPE"))
            {
                string type = System.Text.Encoding.UTF8.GetString(a[i + 1]).ToLowerInvariant();
                if (!TypeNames.Contains(type)) return RespValue.Error($"ERR unknown type name '{CommandErrors.Quote(a[i + 1])}'");
                noStrings = type != "string";
            }
            else return DataErrors.Syntax;
        }
        var found = new List<byte[]>();
        ulong next = c.Store.Scan(cursor, (int)Math.Min(count, 1 << 20), found);
        var keys = new List<RespValue>(found.Count);
        if (!noStrings)
        {
            foreach (byte[] entry in found)
            {
                ReadOnlySpan<byte> key = KeyValueStore.KeyOf(entry);
                if (pattern is null || Glob.Match(pattern, key)) keys.Add(RespValue.Bulk(key.ToArray()));
            }
        }
        return RespValue.Array([Bulk(next.ToString(CultureInfo.InvariantCulture)), RespValue.Array([.. keys])]);
    }

    private static RespValue Flush(DataContext c, byte[][] a)
    {
        if (a.Length > 2 || (a.Length == 2 && !Is(a[1], "ASYNC") && !Is(a[1], "SYNC"))) return DataErrors.Syntax;
        c.Store.Clear();
        return RespValue.Ok;
    }

    private static RespValue Rename(DataContext c, byte[][] a, bool onlyNew)
    {
        if (!c.Store.TryGet(a[1], out ReadOnlyMemory<byte> value)) return DataErrors.NoSuchKey;
        if (a[1].AsSpan().SequenceEqual(a[2])) return onlyNew ? RespValue.Int(0) : RespValue.Ok;
        if (onlyNew && c.Store.Contains(a[2])) return RespValue.Int(0);
        long deadline = c.Store.DeadlineOf(a[1]);
        byte[] bytes = value.ToArray();
        c.Store.Remove(a[1]);
        c.Store.Set(a[2], bytes);
        if (deadline > 0) c.Store.SetDeadline(a[2], deadline);
        return onlyNew ? RespValue.Int(1) : RespValue.Ok;
    }

    private static RespValue Copy(DataContext c, byte[][] a)
    {
        bool replace = false;
        for (int i = 3; i < a.Length; i++)
        {
            if (Is(a[i], "REPLACE")) replace = true;
            else if (Is(a[i], "DB") && i + 1 < a.Length)
            {
                if (!RedisText.TryParseLong(a[++i], out long db)) return DataErrors.NotInteger;
                if (db != 0) return RespValue.Error("ERR DB index is out of range");
            }
            else return DataErrors.Syntax;
        }
        if (a[1].AsSpan().SequenceEqual(a[2])) return RespValue.Error("ERR source and destination objects are the same");
        if (!c.Store.TryGet(a[1], out ReadOnlyMemory<byte> value)) return RespValue.Int(0);
        if (!replace && c.Store.Contains(a[2])) return RespValue.Int(0);
        long deadline = c.Store.DeadlineOf(a[1]);
        c.Store.Set(a[2], value.Span);
        if (deadline > 0) c.Store.SetDeadline(a[2], deadline);
        return RespValue.Int(1);
    }

    private static RespValue Object(DataContext c, byte[][] a)
    {
        byte[] sub = a[1];
        if (Is(sub, "HELP") && a.Length == 2)
        {
            return RespValue.Array([.. new[]
            {
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>", "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>", "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>", "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>", "    Return the number of references of the value associated with the specified",
                "    <key>.",
                "HELP", "    Print this help.",
            }.Select(RespValue.Simple)]);
        }
        bool known = Is(sub, "ENCODING") || Is(sub, "REFCOUNT") || Is(sub, "FREQ") || Is(sub, "IDLETIME") || Is(sub, "HELP");
        if (!known) return RespValue.Error($"ERR unknown subcommand '{CommandErrors.Quote(sub)}'. Try OBJECT HELP.");
        if (a.Length != (Is(sub, "HELP") ? 2 : 3))
            return CommandErrors.WrongArity("object|" + CommandErrors.Quote(sub).ToLowerInvariant());
        if (!c.Store.TryGet(a[2], out ReadOnlyMemory<byte> value)) return RespValue.NullBulk;
        if (Is(sub, "ENCODING")) return Bulk(RedisText.EncodingOf(value.Span));
        if (Is(sub, "REFCOUNT")) return RespValue.Int(1);
        if (Is(sub, "FREQ"))
            return RespValue.Error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
        return RespValue.Error("ERR Tandem does not track the idle time of keys");
    }

    private static RespValue Expire(DataContext c, byte[][] a, long unitMs, bool absolute, string lowerName)
    {
        bool nx = false, xx = false, gt = false, lt = false;
        for (int i = 3; i < a.Length; i++)
        {
            if (Is(a[i], "NX")) nx = true;
            else if (Is(a[i], "XX")) xx = true;
            else if (Is(a[i], "GT")) gt = true;
            else if (Is(a[i], "LT")) lt = true;
            else return RespValue.Error($"ERR Unsupported option {CommandErrors.Quote(a[i])}");
        }
        if (nx && (xx || gt || lt)) return RespValue.Error("ERR NX and XX, GT or LT options at the same time are not compatible");
        if (gt && lt) return RespValue.Error("ERR GT and LT options at the same time are not compatible");
        if (!RedisText.TryParseLong(a[2], out long n)) return DataErrors.NotInteger;
        long when;
        try
        {
            when = checked(n * unitMs);
            if (!absolute) when = checked(when + c.Now);
        }
        catch (OverflowException)
        {
            return DataErrors.InvalidExpire(lowerName);
        }
        if (!c.Store.Contains(a[1])) return RespValue.Int(0);
        long current = c.Store.DeadlineOf(a[1]);
        if (nx && current != 0) return RespValue.Int(0);
        if (xx && current == 0) return RespValue.Int(0);
        // A key without a deadline counts as one that never expires: GT never beats it, LT always does.
        if (gt && (current == 0 || when <= current)) return RespValue.Int(0);
        if (lt && current != 0 && when >= current) return RespValue.Int(0);
        if (when <= c.Now) c.Store.Remove(a[1]);
        else c.Store.SetDeadline(a[1], when);
        return RespValue.Int(1);
    }

    private static RespValue Ttl(DataContext c, byte[] key, bool milliseconds)
    {
        if (!c.Store.Contains(key)) return RespValue.Int(-2);
        long deadline = c.Store.DeadlineOf(key);
        if (deadline == 0) return RespValue.Int(-1);
        long left = Math.Max(0, deadline - c.Now);
        return RespValue.Int(milliseconds ? left : (left + 500) / 1000);
    }

    private static RespValue ExpireTime(DataContext c, byte[] key, bool milliseconds)
    {
        if (!c.Store.Contains(key)) return RespValue.Int(-2);
        long deadline = c.Store.DeadlineOf(key);
        if (deadline == 0) return RespValue.Int(-1);
        return RespValue.Int(milliseconds ? deadline : (deadline + 500) / 1000);
    }
}
