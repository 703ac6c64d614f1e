using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace Tandem.Protocol;

/// <summary>
/// Writes RESP frames into an <see cref="IBufferWriter{T}"/> (typically a <c>PipeWriter</c>): RESP2, and RESP3 for a
/// connection that asked for it with <c>HELLO 3</c> (<see cref="WriteValue(IBufferWriter{byte}, RespValue, int)"/>).
/// </summary>
public static class RespWriter
{
    /// <summary><c>+text\r\n</c></summary>
    public static void WriteSimple(IBufferWriter<byte> w, string text)
    {
        WriteByte(w, (byte)'+');
        WriteUtf8(w, text);
        WriteCrlf(w);
    }

    /// <summary><c>-text\r\n</c>; CR and LF in <paramref name="text"/> are replaced by spaces.</summary>
    public static void WriteError(IBufferWriter<byte> w, string text)
    {
        WriteByte(w, (byte)'-');
        WriteUtf8(w, text.Replace('\r', ' ').Replace('\n', ' '));
        WriteCrlf(w);
    }

    /// <summary><c>:n\r\n</c></summary>
    public static void WriteInteger(IBufferWriter<byte> w, long n) => WritePrefixed(w, (byte)':', n);

    /// <summary>Values up to this size are written with one request for buffer space (header, bytes and CRLF at once).</summary>
    private const int OneSpanBulk = 4096;

    /// <summary><c>$len\r\nbytes\r\n</c></summary>
    public static void WriteBulk(IBufferWriter<byte> w, ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length <= OneSpanBulk)
        {
            // One GetSpan and one Advance: a pipe writer's calls cost more than the copy for small values.
            Span<byte> span = w.GetSpan(bytes.Length + 16);
            int header = FormatPrefixed(span, (byte)'$', bytes.Length);
            bytes.CopyTo(span[header..]);
            int end = header + bytes.Length;
            span[end] = (byte)'\r';
            span[end + 1] = (byte)'\n';
            w.Advance(end + 2);
            return;
        }
        WritePrefixed(w, (byte)'$', bytes.Length);
        w.Write(bytes);
        WriteCrlf(w);
    }

    /// <summary><c>$len\r\n</c>; the caller writes the bytes and the final CRLF (a value written in pieces).</summary>
    public static void WriteBulkHeader(IBufferWriter<byte> w, long length) => WritePrefixed(w, (byte)'$', length);

    /// <summary>A bulk string of UTF-8 text.</summary>
    public static void WriteBulk(IBufferWriter<byte> w, string text) => WriteBulk(w, Encoding.UTF8.GetBytes(text));

    /// <summary>A bulk string holding a decimal number.</summary>
    public static void WriteBulk(IBufferWriter<byte> w, long n)
    {
        Span<byte> tmp = stackalloc byte[20];
        Utf8Formatter.TryFormat(n, tmp, out int len);
        WriteBulk(w, tmp[..len]);
    }

    /// <summary>The null bulk string <c>$-1\r\n</c>.</summary>
    public static void WriteNull(IBufferWriter<byte> w) => w.Write("$-1\r\n"u8);

    /// <summary><c>*n\r\n</c>; the caller writes the n elements.</summary>
    public static void WriteArrayHeader(IBufferWriter<byte> w, int n) => WritePrefixed(w, (byte)'*', n);

    /// <summary>A command: an array of bulk strings.</summary>
    public static void WriteCommand(IBufferWriter<byte> w, params string[] args)
    {
        WriteArrayHeader(w, args.Length);
        foreach (string a in args) WriteBulk(w, a);
    }

    /// <summary>A command: an array of bulk strings.</summary>
    public static void WriteCommand(IBufferWriter<byte> w, IReadOnlyList<byte[]> args)
    {
        WriteArrayHeader(w, args.Count);
        foreach (byte[] a in args) WriteBulk(w, a);
    }

    /// <summary>Any value, in RESP2 (a RESP3 type in its RESP2 form).</summary>
    public static void WriteValue(IBufferWriter<byte> w, RespValue v) => WriteValue(w, v, 2);

    /// <summary>
    /// Any value, for a connection speaking <paramref name="protocol"/> (2 or 3). In RESP2 the RESP3 types take the
    /// form Redis gives them there: a map is a flat array of keys and values, a set or push message an array, the
    /// null a null bulk string, a double a bulk string, a boolean the integer 1 or 0, a verbatim string a bulk
    /// string of its text. In RESP3 every null (bulk string, array) is <c>_</c>. RESP2 bytes are exactly those of
    /// <see cref="WriteValue(IBufferWriter{byte}, RespValue)"/>.
    /// </summary>
    public static void WriteValue(IBufferWriter<byte> w, RespValue v, int protocol)
    {
        ArgumentNullException.ThrowIfNull(v);
        bool resp3 = protocol >= 3;
        switch (v.Kind)
        {
            case RespKind.SimpleString:
                // Constant replies (+OK, +PONG) are written from their bytes, never re-encoded.
                WriteByte(w, (byte)'+');
                w.Write(v.Payload.Span);
                WriteCrlf(w);
                break;
            case RespKind.Error: WriteError(w, v.Text); break;
            case RespKind.Integer: WriteInteger(w, v.Integer); break;
            case RespKind.BulkString:
                if (!v.IsNull) WriteBulk(w, v.Payload.Span);
                else if (resp3) WriteNull3(w);
                else WriteNull(w);
                break;
            case RespKind.Array:
                if (v.Items is null)
                {
                    if (resp3) WriteNull3(w); else w.Write("*-1\r\n"u8);
                    break;
                }
                WriteAggregate(w, (byte)'*', v.Items.Length, v.Items, protocol);
                break;
            case RespKind.Map:
                WriteAggregate(w, resp3 ? (byte)'%' : (byte)'*', resp3 ? v.Items!.Length / 2 : v.Items!.Length, v.Items, protocol);
                break;
            case RespKind.Set:
                WriteAggregate(w, resp3 ? (byte)'~' : (byte)'*', v.Items!.Length, v.Items, protocol);
                break;
            case RespKind.Push:
                WriteAggregate(w, resp3 ? (byte)'>' : (byte)'*', v.Items!.Length, v.Items, protocol);
                break;
            case RespKind.Null:
                if (resp3) WriteNull3(w); else WriteNull(w);
                break;
            case RespKind.Double:
                if (resp3)
                {
                    WriteByte(w, (byte)',');
                    WriteUtf8(w, FormatDouble(v.Double));
                    WriteCrlf(w);
                }
                else WriteBulk(w, FormatDouble(v.Double));
                break;
            case RespKind.Boolean:
                if (resp3) w.Write(v.Integer != 0 ? "#t\r\n"u8 : "#f\r\n"u8);
                else WriteInteger(w, v.Integer != 0 ? 1 : 0);
                break;
            case RespKind.Verbatim:
                if (resp3)
                {
                    WritePrefixed(w, (byte)'=', v.Payload.Length);
                    w.Write(v.Payload.Span);
                    WriteCrlf(w);
                }
                else WriteBulk(w, v.Payload.Span[4..]);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(v), v.Kind, "not a RESP type");
        }
    }

    /// <summary>The header of an aggregate of <paramref name="count"/> elements (entries for a RESP3 map); the caller writes them.</summary>
    /// <remarks>For a map in RESP2 the header is an array of twice the entries; <paramref name="count"/> is given as the entries.</remarks>
    public static void WriteAggregateHeader(IBufferWriter<byte> w, RespKind kind, int count, int protocol)
    {
        bool resp3 = protocol >= 3;
        switch (kind)
        {
            case RespKind.Array: WritePrefixed(w, (byte)'*', count); break;
            case RespKind.Map: WritePrefixed(w, resp3 ? (byte)'%' : (byte)'*', resp3 ? count : 2L * count); break;
            case RespKind.Set: WritePrefixed(w, resp3 ? (byte)'~' : (byte)'*', count); break;
            case RespKind.Push: WritePrefixed(w, resp3 ? (byte)'>' : (byte)'*', count); break;
            default: throw new ArgumentOutOfRangeException(nameof(kind), kind, "not an aggregate type");
        }
    }

    /// <summary>
    /// A double as Redis 7.2 writes it: the shortest text that reads back as the same number, <c>inf</c>,
    /// <c>-inf</c> or <c>nan</c>.
    /// </summary>
    public static string FormatDouble(double d) =>
        double.IsPositiveInfinity(d) ? "inf"
        : double.IsNegativeInfinity(d) ? "-inf"
        : double.IsNaN(d) ? "nan"
        : d.ToString("R", System.Globalization.CultureInfo.InvariantCulture).Replace('E', 'e');

    private static void WriteAggregate(IBufferWriter<byte> w, byte prefix, int count, RespValue[] items, int protocol)
    {
        WritePrefixed(w, prefix, count);
        foreach (RespValue item in items) WriteValue(w, item, protocol);
    }

    private static void WriteNull3(IBufferWriter<byte> w) => w.Write("_\r\n"u8);

    private static void WritePrefixed(IBufferWriter<byte> w, byte prefix, long n) => w.Advance(FormatPrefixed(w.GetSpan(24), prefix, n));

    /// <summary>Formats <c>{prefix}n\r\n</c> at the start of <paramref name="span"/> (24 bytes are enough); returns its length.</summary>
    private static int FormatPrefixed(Span<byte> span, byte prefix, long n)
    {
        span[0] = prefix;
        Utf8Formatter.TryFormat(n, span[1..], out int len);
        span[1 + len] = (byte)'\r';
        span[2 + len] = (byte)'\n';
        return len + 3;
    }

    private static void WriteByte(IBufferWriter<byte> w, byte b)
    {
        w.GetSpan(1)[0] = b;
        w.Advance(1);
    }

    private static void WriteCrlf(IBufferWriter<byte> w) => w.Write("\r\n"u8);

    private static void WriteUtf8(IBufferWriter<byte> w, string text)
    {
        int max = Encoding.UTF8.GetMaxByteCount(text.Length);
        Span<byte> span = w.GetSpan(max);
        int n = Encoding.UTF8.GetBytes(text, span);
        w.Advance(n);
    }
}
