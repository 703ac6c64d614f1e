using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace Tandem.Protocol;

/// <summary>Writes RESP2 frames into an <see cref="IBufferWriter{T}"/> (typically a <c>PipeWriter</c>).</summary>
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

    /// <summary><c>$len\r\nbytes\r\n</c></summary>
    public static void WriteBulk(IBufferWriter<byte> w, ReadOnlySpan<byte> bytes)
    {
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

    /// <summary>Any parsed value, re-encoded.</summary>
    public static void WriteValue(IBufferWriter<byte> w, RespValue v)
    {
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
                if (v.IsNull) WriteNull(w); else WriteBulk(w, v.Payload.Span);
                break;
            default:
                if (v.Items is null) { w.Write("*-1\r\n"u8); break; }
                WriteArrayHeader(w, v.Items.Length);
                foreach (RespValue item in v.Items) WriteValue(w, item);
                break;
        }
    }

    private static void WritePrefixed(IBufferWriter<byte> w, byte prefix, long n)
    {
        Span<byte> span = w.GetSpan(24);
        span[0] = prefix;
        Utf8Formatter.TryFormat(n, span[1..], out int len);
        span[1 + len] = (byte)'\r';
        span[2 + len] = (byte)'\n';
        w.Advance(len + 3);
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
