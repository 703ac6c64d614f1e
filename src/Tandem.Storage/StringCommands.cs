using System.Globalization;
using System.Numerics;
using System.Text;
using Tandem.Protocol;
using static Tandem.Storage.DataCommands;

namespace Tandem.Storage;

/// <summary>Redis 7's string commands: SET and its forms, counters, ranges and bits.</summary>
internal static class StringCommands
{
    public static void AddTo(CommandTable<DataCommand> t, CommandFlags w, CommandFlags r)
    {
        t.Add("GET", 2, r, KeySpec.One, (c, a) => ValueOrNull(c, a[1]));
        t.Add("SET", -3, w, KeySpec.One, Set);
        t.Add("SETNX", 3, w, KeySpec.One, (c, a) =>
        {
            if (c.Store.Contains(a[1])) return RespValue.Int(0);
            c.Store.Set(a[1], a[2]);
            return RespValue.Int(1);
        });
        t.Add("SETEX", 4, w, KeySpec.One, (c, a) => SetWithTtl(c, a, 1000, "setex"));
        t.Add("PSETEX", 4, w, KeySpec.One, (c, a) => SetWithTtl(c, a, 1, "psetex"));
        t.Add("GETSET", 3, w, KeySpec.One, (c, a) =>
        {
            RespValue old = ValueOrNull(c, a[1]);
            c.Store.Set(a[1], a[2]);
            return old;
        });
        t.Add("GETDEL", 2, w, KeySpec.One, (c, a) =>
        {
            RespValue old = ValueOrNull(c, a[1]);
            c.Store.Remove(a[1]);
            return old;
        });
        t.Add("GETEX", -2, w, KeySpec.One, GetEx);
        t.Add("MGET", -2, r, KeySpec.All, (c, a) =>
        {
            var items = new RespValue[a.Length - 1];
            for (int i = 1; i < a.Length; i++) items[i - 1] = ValueOrNull(c, a[i]);
            return RespValue.Array(items);
        });
        t.Add("MSET", -3, w, KeySpec.Pairs, (c, a) =>
        {
            if (a.Length % 2 == 0) return CommandErrors.WrongArity("mset");
            for (int i = 1; i < a.Length; i += 2) c.Store.Set(a[i], a[i + 1]);
            return RespValue.Ok;
        });
        t.Add("MSETNX", -3, w, KeySpec.Pairs, (c, a) =>
        {
            if (a.Length % 2 == 0) return CommandErrors.WrongArity("msetnx");
            for (int i = 1; i < a.Length; i += 2)
                if (c.Store.Contains(a[i])) return RespValue.Int(0);
            for (int i = 1; i < a.Length; i += 2) c.Store.Set(a[i], a[i + 1]);
            return RespValue.Int(1);
        });
        t.Add("STRLEN", 2, r, KeySpec.One, (c, a) => RespValue.Int(c.Store.TryGet(a[1], out ReadOnlyMemory<byte> v) ? v.Length : 0));
        t.Add("APPEND", 3, w, KeySpec.One, Append);
        t.Add("GETRANGE", 4, r, KeySpec.One, GetRange);
        t.Add("SUBSTR", 4, r, KeySpec.One, GetRange);
        t.Add("SETRANGE", 4, w, KeySpec.One, SetRange);
        t.Add("LCS", -3, r, new KeySpec(1, 2, 1), Lcs);
        t.Add("INCR", 2, w, KeySpec.One, (c, a) => IncrBy(c, a[1], 1));
        t.Add("DECR", 2, w, KeySpec.One, (c, a) => IncrBy(c, a[1], -1));
        t.Add("INCRBY", 3, w, KeySpec.One, (c, a) =>
            RedisText.TryParseLong(a[2], out long by) ? IncrBy(c, a[1], by) : DataErrors.NotInteger);
        t.Add("DECRBY", 3, w, KeySpec.One, (c, a) =>
        {
            if (!RedisText.TryParseLong(a[2], out long by)) return DataErrors.NotInteger;
            return by == long.MinValue ? RespValue.Error("ERR decrement would overflow") : IncrBy(c, a[1], -by);
        });
        t.Add("INCRBYFLOAT", 3, w, KeySpec.One, IncrByFloat);
        t.Add("SETBIT", 4, w, KeySpec.One, SetBit);
        t.Add("GETBIT", 3, r, KeySpec.One, GetBit);
        t.Add("BITCOUNT", -2, r, KeySpec.One, BitCount);
        t.Add("BITPOS", -3, r, KeySpec.One, BitPos);
    }

    /// <summary>
    /// Reads an expiry option's number <paramref name="arg"/> into a deadline (Unix ms). <paramref name="unitMs"/>
    /// is 1000 for seconds; <paramref name="absolute"/> for EXAT/PXAT. Null with <paramref name="error"/> set otherwise.
    /// </summary>
    internal static long? Deadline(DataContext c, byte[] arg, long unitMs, bool absolute, string lowerName, out RespValue? error)
    {
        error = null;
        if (!RedisText.TryParseLong(arg, out long n))
        {
            error = DataErrors.NotInteger;
            return null;
        }
        if (n <= 0 || n > long.MaxValue / unitMs || (!absolute && n * unitMs > long.MaxValue - c.Now))
        {
            error = DataErrors.InvalidExpire(lowerName);
            return null;
        }
        return absolute ? n * unitMs : c.Now + n * unitMs;
    }

    private static bool IsExpiryOption(byte[] o) => Is(o, "EX") || Is(o, "PX") || Is(o, "EXAT") || Is(o, "PXAT");

    /// <summary>The deadline an <c>EX PX EXAT PXAT</c> option <paramref name="option"/> gives with its number <paramref name="arg"/>.</summary>
    private static long? ExpiryOption(DataContext c, byte[] option, byte[] arg, string lowerName, out RespValue? error) =>
        Deadline(c, arg, Is(option, "EX") || Is(option, "EXAT") ? 1000 : 1, Is(option, "EXAT") || Is(option, "PXAT"), lowerName, out error);

    private static RespValue Set(DataContext c, byte[][] a)
    {
        bool nx = false, xx = false, get = false, keepTtl = false;
        long? deadline = null;
        bool hasExpiry = false;
        for (int i = 3; i < a.Length; i++)
        {
            byte[] o = a[i];
            bool hasNext = i + 1 < a.Length;
            if (Is(o, "NX") && !xx) nx = true;
            else if (Is(o, "XX") && !nx) xx = true;
            else if (Is(o, "GET")) get = true;
            else if (Is(o, "KEEPTTL") && !hasExpiry) keepTtl = true;
            else if (!keepTtl && !hasExpiry && hasNext && IsExpiryOption(o))
            {
                hasExpiry = true;
                deadline = ExpiryOption(c, o, a[++i], "set", out RespValue? error);
                if (deadline is null) return error!;
            }
            else return DataErrors.Syntax;
        }
        RespValue previous = RespValue.Ok;
        if (nx || xx || get)
        {
            // Only a conditional SET or SET GET needs the old value: a plain SET is one lookup, not two.
            bool exists = c.Store.TryGet(a[1], out ReadOnlyMemory<byte> old);
            if (get) previous = exists ? RespValue.Bulk(old.ToArray()) : RespValue.NullBulk;
            if ((nx && exists) || (xx && !exists)) return get ? previous : RespValue.NullBulk;
        }
        if (deadline is { } d && d <= c.Now)
        {
            c.Store.Remove(a[1]); // a deadline already past: the key is set and expires at once
            return previous;
        }
        c.Store.Set(a[1], a[2], keepDeadline: keepTtl);
        if (deadline is { } when) c.Store.SetDeadline(a[1], when);
        return previous;
    }

    private static RespValue SetWithTtl(DataContext c, byte[][] a, long unitMs, string lowerName)
    {
        long? deadline = Deadline(c, a[2], unitMs, absolute: false, lowerName, out RespValue? error);
        if (deadline is null) return error!;
        c.Store.Set(a[1], a[3]);
        c.Store.SetDeadline(a[1], deadline.Value);
        return RespValue.Ok;
    }

    private static RespValue GetEx(DataContext c, byte[][] a)
    {
        long? deadline = null;
        bool persist = false, any = false;
        for (int i = 2; i < a.Length; i++)
        {
            byte[] o = a[i];
            bool hasNext = i + 1 < a.Length;
            if (Is(o, "PERSIST") && !any)
            {
                persist = any = true;
            }
            else if (!any && hasNext && IsExpiryOption(o))
            {
                any = true;
                deadline = ExpiryOption(c, o, a[++i], "getex", out RespValue? error);
                if (deadline is null) return error!;
            }
            else return DataErrors.Syntax;
        }
        if (!c.Store.TryGet(a[1], out ReadOnlyMemory<byte> value)) return RespValue.NullBulk;
        RespValue reply = RespValue.Bulk(value);
        if (deadline is { } d)
        {
            if (d <= c.Now) c.Store.Remove(a[1]);
            else c.Store.SetDeadline(a[1], d);
        }
        else if (persist) c.Store.Persist(a[1]);
        return reply;
    }

    private static RespValue Append(DataContext c, byte[][] a)
    {
        c.Store.TryGet(a[1], out ReadOnlyMemory<byte> old);
        long length = (long)old.Length + a[2].Length;
        if (length > c.MaxValueBytes) return DataErrors.TooLarge;
        byte[] joined = GC.AllocateUninitializedArray<byte>((int)length);
        old.Span.CopyTo(joined);
        a[2].CopyTo(joined.AsSpan(old.Length));
        c.Store.Set(a[1], joined, keepDeadline: true);
        return RespValue.Int(length);
    }

    private static RespValue GetRange(DataContext c, byte[][] a)
    {
        if (!RedisText.TryParseLong(a[2], out long start) || !RedisText.TryParseLong(a[3], out long end)) return DataErrors.NotInteger;
        c.Store.TryGet(a[1], out ReadOnlyMemory<byte> value);
        if (!Clamp(start, end, value.Length, out long from, out long to)) return RespValue.Bulk(Array.Empty<byte>());
        return RespValue.Bulk(value.Slice((int)from, (int)(to - from + 1)));
    }

    private static RespValue SetRange(DataContext c, byte[][] a)
    {
        if (!RedisText.TryParseLong(a[2], out long offset)) return DataErrors.NotInteger;
        if (offset < 0) return RespValue.Error("ERR offset is out of range");
        bool exists = c.Store.TryGet(a[1], out ReadOnlyMemory<byte> old);
        byte[] add = a[3];
        if (add.Length == 0) return RespValue.Int(exists ? old.Length : 0);
        if (offset > Math.Min(c.MaxValueBytes, 512L * 1024 * 1024) - add.Length) return DataErrors.TooLarge; // no overflow for a huge offset
        long length = Math.Max(old.Length, offset + add.Length);
        byte[] value = new byte[length];
        old.Span.CopyTo(value);
        add.CopyTo(value.AsSpan((int)offset));
        c.Store.Set(a[1], value, keepDeadline: true);
        return RespValue.Int(length);
    }

    private static RespValue IncrBy(DataContext c, byte[] key, long by)
    {
        long current = 0;
        if (c.Store.TryGet(key, out ReadOnlyMemory<byte> value) && !RedisText.TryParseLong(value.Span, out current)) return DataErrors.NotInteger;
        if ((by < 0 && current < 0 && by < long.MinValue - current) || (by > 0 && current > 0 && by > long.MaxValue - current))
            return DataErrors.Overflow;
        long next = current + by;
        c.Store.Set(key, Encoding.ASCII.GetBytes(next.ToString(CultureInfo.InvariantCulture)), keepDeadline: true);
        return RespValue.Int(next);
    }

    private static RespValue IncrByFloat(DataContext c, byte[][] a)
    {
        byte[] current = c.Store.TryGet(a[1], out ReadOnlyMemory<byte> value) ? value.ToArray() : "0"u8.ToArray();
        if (!RedisText.TryParseFloat(current, out _) || !RedisText.TryParseFloat(a[2], out _)) return DataErrors.NotFloat;
        string? sum = RedisText.AddFloats(current, a[2]);
        if (string.IsNullOrEmpty(sum)) return RespValue.Error("ERR increment would produce NaN or Infinity");
        byte[] bytes = Encoding.ASCII.GetBytes(sum);
        c.Store.Set(a[1], bytes, keepDeadline: true);
        return RespValue.Bulk(bytes);
    }

    private static bool TryBitOffset(byte[] arg, out long offset) =>
        RedisText.TryParseLong(arg, out offset) && offset >= 0 && offset >> 3 < 512L * 1024 * 1024;

    private static RespValue SetBit(DataContext c, byte[][] a)
    {
        if (!TryBitOffset(a[2], out long offset)) return DataErrors.BitOffset;
        if (a[3] is not [(byte)'0' or (byte)'1']) return RespValue.Error("ERR bit is not an integer or out of range");
        bool on = a[3][0] == '1';
        c.Store.TryGet(a[1], out ReadOnlyMemory<byte> old);
        long byteAt = offset >> 3;
        if (byteAt + 1 > c.MaxValueBytes) return DataErrors.TooLarge;
        byte[] value = new byte[Math.Max(old.Length, byteAt + 1)];
        old.Span.CopyTo(value);
        int mask = 0x80 >> (int)(offset & 7);
        int previous = (value[byteAt] & mask) != 0 ? 1 : 0;
        value[byteAt] = (byte)(on ? value[byteAt] | mask : value[byteAt] & ~mask);
        c.Store.Set(a[1], value, keepDeadline: true);
        return RespValue.Int(previous);
    }

    private static RespValue GetBit(DataContext c, byte[][] a)
    {
        if (!TryBitOffset(a[2], out long offset)) return DataErrors.BitOffset;
        if (!c.Store.TryGet(a[1], out ReadOnlyMemory<byte> value) || offset >> 3 >= value.Length) return RespValue.Int(0);
        return RespValue.Int((value.Span[(int)(offset >> 3)] & (0x80 >> (int)(offset & 7))) != 0 ? 1 : 0);
    }

    // BYTE (false) or BIT (true) at a[i], or a syntax error.
    private static bool? Unit(byte[] arg) => Is(arg, "BYTE") ? false : Is(arg, "BIT") ? true : null;

    private static RespValue BitCount(DataContext c, byte[][] a)
    {
        long start = 0, end = -1;
        bool bits = false;
        if (a.Length is 4 or 5)
        {
            if (!RedisText.TryParseLong(a[2], out start) || !RedisText.TryParseLong(a[3], out end)) return DataErrors.NotInteger;
            if (a.Length == 5)
            {
                if (Unit(a[4]) is not { } unit) return DataErrors.Syntax;
                bits = unit;
            }
        }
        else if (a.Length != 2) return DataErrors.Syntax;
        if (!c.Store.TryGet(a[1], out ReadOnlyMemory<byte> value)) return RespValue.Int(0);
        ReadOnlySpan<byte> v = value.Span;
        long total = bits ? v.Length * 8L : v.Length;
        if (!Clamp(start, end, total, out long from, out long to)) return RespValue.Int(0);
        long count = 0;
        if (!bits)
        {
            for (long i = from; i <= to; i++) count += BitOperations.PopCount(v[(int)i]);
        }
        else
        {
            for (long i = from; i <= to; i++) count += (v[(int)(i >> 3)] >> (7 - (int)(i & 7))) & 1;
        }
        return RespValue.Int(count);
    }

    private static RespValue BitPos(DataContext c, byte[][] a)
    {
        if (a[2] is not [(byte)'0' or (byte)'1']) return RespValue.Error("ERR The bit argument must be 1 or 0.");
        int bit = a[2][0] - '0';
        long start = 0, end = -1;
        bool endGiven = false, bits = false;
        if (a.Length > 6) return DataErrors.Syntax;
        if (a.Length >= 4 && !RedisText.TryParseLong(a[3], out start)) return DataErrors.NotInteger;
        if (a.Length >= 5)
        {
            if (!RedisText.TryParseLong(a[4], out end)) return DataErrors.NotInteger;
            endGiven = true;
        }
        if (a.Length == 6)
        {
            if (Unit(a[5]) is not { } unit) return DataErrors.Syntax;
            bits = unit;
        }
        if (!c.Store.TryGet(a[1], out ReadOnlyMemory<byte> value)) return RespValue.Int(bit == 1 ? -1 : 0);
        ReadOnlySpan<byte> v = value.Span;
        long total = bits ? v.Length * 8L : v.Length;
        if (!Clamp(start, end, total, out long from, out long to)) return RespValue.Int(-1);
        long firstBit = bits ? from : from * 8, lastBit = bits ? to : to * 8 + 7;
        for (long i = firstBit; i <= lastBit; i++)
            if (((v[(int)(i >> 3)] >> (7 - (int)(i & 7))) & 1) == bit) return RespValue.Int(i);
        // Looking for a clear bit past the end of a string with no end given: the string is padded with zeros.
        return RespValue.Int(bit == 0 && !endGiven ? lastBit + 1 : -1);
    }

    private static RespValue Lcs(DataContext c, byte[][] a)
    {
        bool len = false, idx = false, withLen = false;
        long minLen = 0;
        for (int i = 3; i < a.Length; i++)
        {
            if (Is(a[i], "LEN")) len = true;
            else if (Is(a[i], "IDX")) idx = true;
            else if (Is(a[i], "WITHMATCHLEN")) withLen = true;
            else if (Is(a[i], "MINMATCHLEN") && i + 1 < a.Length)
            {
                if (!RedisText.TryParseLong(a[++i], out minLen)) return DataErrors.NotInteger;
                if (minLen < 0) minLen = 0;
            }
            else return DataErrors.Syntax;
        }
        if (len && idx) return RespValue.Error("ERR If you want both the length and indexes, please just use IDX.");
        c.Store.TryGet(a[1], out ReadOnlyMemory<byte> am);
        c.Store.TryGet(a[2], out ReadOnlyMemory<byte> bm);
        ReadOnlySpan<byte> x = am.Span, y = bm.Span;
        long cells = (x.Length + 1L) * (y.Length + 1L);
        if (cells > 16L * 1024 * 1024) return RespValue.Error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
        int cols = y.Length + 1;
        var table = new int[cells];
        for (int i = 1; i <= x.Length; i++)
            for (int j = 1; j <= y.Length; j++)
                table[i * cols + j] = x[i - 1] == y[j - 1] ? table[(i - 1) * cols + j - 1] + 1 : Math.Max(table[(i - 1) * cols + j], table[i * cols + j - 1]);
        int total = table[x.Length * cols + y.Length];
        if (len) return RespValue.Int(total);

        // Walk back from the end, gathering the common bytes and the ranges where both strings match contiguously.
        var common = new byte[total];
        var matches = new List<RespValue>();
        int at = total, ai = x.Length, bj = y.Length;
        int aStart = x.Length, aEnd = 0, bStart = 0, bEnd = 0; // aStart == x.Length: no range open
        while (ai > 0 && bj > 0)
        {
            bool emit = false;
            if (x[ai - 1] == y[bj - 1])
            {
                common[--at] = x[ai - 1];
                if (aStart == x.Length)
                {
                    aStart = aEnd = ai - 1;
                    bStart = bEnd = bj - 1;
                }
                else if (aStart == ai && bStart == bj)
                {
                    aStart--;
                    bStart--;
                }
                else emit = true;
                if (aStart == 0 || bStart == 0) emit = true;
                ai--;
                bj--;
            }
            else
            {
                if (table[(ai - 1) * cols + bj] > table[ai * cols + bj - 1]) ai--;
                else bj--;
                if (aStart != x.Length) emit = true;
            }
            if (emit)
            {
                int matchLen = aEnd - aStart + 1;
                if (idx && (minLen == 0 || matchLen >= minLen))
                {
                    var pair = new List<RespValue>
                    {
                        RespValue.Array([RespValue.Int(aStart), RespValue.Int(aEnd)]),
                        RespValue.Array([RespValue.Int(bStart), RespValue.Int(bEnd)]),
                    };
                    if (withLen) pair.Add(RespValue.Int(matchLen));
                    matches.Add(RespValue.Array([.. pair]));
                }
                aStart = x.Length;
            }
        }
        if (!idx) return RespValue.Bulk(common);
        return RespValue.Array([Bulk("matches"), RespValue.Array([.. matches]), Bulk("len"), RespValue.Int(total)]);
    }
}
