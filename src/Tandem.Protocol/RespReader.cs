using System.Buffers;
using System.Buffers.Text;

namespace Tandem.Protocol;

/// <summary>
/// Incremental RESP2 parser over a <see cref="ReadOnlySequence{T}"/>. Each Try method either consumes one
/// complete frame and returns true, or consumes nothing and returns false (more bytes needed). Malformed
/// input or input beyond <see cref="RespLimits"/> throws <see cref="RespProtocolException"/>.
/// </summary>
public static class RespReader
{
    private const int MaxLineLength = 64;

    /// <summary>Reads one command: a RESP array of bulk strings, or an inline command line.</summary>
    public static bool TryReadCommand(ref ReadOnlySequence<byte> buffer, RespLimits limits, out RespCommand? command)
    {
        command = null;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryPeek(out byte first)) return false;

        if (first != (byte)'*')
        {
            if (!TryReadInline(ref reader, limits, out command)) return false;
            buffer = buffer.Slice(reader.Position);
            return true;
        }

        reader.Advance(1);
        if (!TryReadLength(ref reader, out long count)) return false;
        if (count < 1) throw new RespProtocolException("command array must have at least one element");
        if (count > limits.MaxArrayLength) throw new RespProtocolException($"command array longer than {limits.MaxArrayLength}");

        // First pass: check the whole array has arrived, allocating nothing, so that a huge count costs no
        // memory before its elements are here, and a command that arrives in many reads is not copied each time.
        SequenceReader<byte> scan = reader;
        for (long i = 0; i < count; i++)
        {
            if (!scan.TryRead(out byte type)) return false;
            if (type != (byte)'$') throw new RespProtocolException($"expected '$', got '{(char)type}'");
            if (!TryReadLength(ref scan, out long length)) return false;
            if (length < 0) throw new RespProtocolException("null bulk string in command");
            if (length > limits.MaxBulkLength) throw new RespProtocolException($"bulk string longer than {limits.MaxBulkLength} bytes");
            if (scan.Remaining < length + 2) return false;
            scan.Advance(length);
            if (!scan.IsNext("\r\n"u8, advancePast: true)) throw new RespProtocolException("bulk string not terminated by CRLF");
        }

        // Second pass: the frame is whole and valid; copy the arguments out.
        var args = new byte[count][];
        for (int i = 0; i < count; i++)
        {
            reader.Advance(1);
            TryReadBulkBody(ref reader, limits, out byte[]? bytes);
            args[i] = bytes!;
        }

        buffer = buffer.Slice(reader.Position);
        command = new RespCommand(args);
        return true;
    }

    /// <summary>Reads one reply value of any RESP2 type.</summary>
    public static bool TryReadValue(ref ReadOnlySequence<byte> buffer, RespLimits limits, out RespValue? value)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!TryReadValue(ref reader, limits, 0, out value)) return false;
        buffer = buffer.Slice(reader.Position);
        return true;
    }

    private static bool TryReadValue(ref SequenceReader<byte> reader, RespLimits limits, int depth, out RespValue? value)
    {
        value = null;
        if (depth > 16) throw new RespProtocolException("arrays nested too deeply");
        if (!reader.TryRead(out byte type)) return false;
        switch (type)
        {
            case (byte)'+':
            case (byte)'-':
                if (!TryReadLine(ref reader, limits.MaxInlineLength, out byte[] line)) return false;
                value = type == (byte)'+' ? RespValue.Simple(System.Text.Encoding.UTF8.GetString(line))
                    : RespValue.Error(System.Text.Encoding.UTF8.GetString(line));
                return true;
            case (byte)':':
                if (!TryReadLength(ref reader, out long n, allowAnyNegative: true)) return false;
                value = RespValue.Int(n);
                return true;
            case (byte)'$':
                if (!TryReadBulkBody(ref reader, limits, out byte[]? bytes)) return false;
                value = RespValue.Bulk(bytes);
                return true;
            case (byte)'*':
                if (!TryReadLength(ref reader, out long count)) return false;
                if (count < 0) { value = RespValue.Array(null); return true; }
                if (count > limits.MaxArrayLength) throw new RespProtocolException($"array longer than {limits.MaxArrayLength}");
                // Every element takes at least two bytes: size the list by what the input can hold, not by the count.
                var items = new List<RespValue>((int)Math.Min(count, reader.Remaining / 2));
                for (int i = 0; i < count; i++)
                {
                    if (!TryReadValue(ref reader, limits, depth + 1, out RespValue? item)) return false;
                    items.Add(item!);
                }
                value = RespValue.Array(items.ToArray());
                return true;
            default:
                throw new RespProtocolException($"unknown RESP type byte 0x{type:x2}");
        }
    }

    private static bool TryReadBulkBody(ref SequenceReader<byte> reader, RespLimits limits, out byte[]? bytes)
    {
        bytes = null;
        if (!TryReadLength(ref reader, out long length)) return false;
        if (length < 0) return true;
        if (length > limits.MaxBulkLength) throw new RespProtocolException($"bulk string longer than {limits.MaxBulkLength} bytes");
        if (reader.Remaining < length + 2) return false;
        bytes = new byte[length];
        reader.TryCopyTo(bytes);
        reader.Advance(length);
        if (!reader.IsNext("\r\n"u8, advancePast: true)) throw new RespProtocolException("bulk string not terminated by CRLF");
        return true;
    }

    /// <summary>Reads a decimal length terminated by CRLF. Only -1 is accepted as a negative length.</summary>
    private static bool TryReadLength(ref SequenceReader<byte> reader, out long value, bool allowAnyNegative = false)
    {
        value = 0;
        if (!reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n', advancePastDelimiter: true))
        {
            if (reader.Remaining > MaxLineLength) throw new RespProtocolException("length line too long");
            return false;
        }
        if (line.Length > MaxLineLength || line.Length < 2) throw new RespProtocolException("malformed length line");
        Span<byte> span = stackalloc byte[(int)line.Length];
        line.CopyTo(span);
        if (span[^1] != (byte)'\r') throw new RespProtocolException("length line not terminated by CRLF");
        span = span[..^1];
        if (!Utf8Parser.TryParse(span, out value, out int used) || used != span.Length)
            throw new RespProtocolException("invalid length");
        if (value < -1 && !allowAnyNegative) throw new RespProtocolException("invalid negative length");
        return true;
    }

    private static bool TryReadLine(ref SequenceReader<byte> reader, int maxLength, out byte[] line)
    {
        line = [];
        if (!reader.TryReadTo(out ReadOnlySequence<byte> seq, (byte)'\n', advancePastDelimiter: true))
        {
            if (reader.Remaining > maxLength) throw new RespProtocolException("line too long");
            return false;
        }
        if (seq.Length > maxLength) throw new RespProtocolException("line too long");
        line = seq.ToArray();
        if (line.Length > 0 && line[^1] == (byte)'\r') line = line[..^1];
        return true;
    }

    private static bool TryReadInline(ref SequenceReader<byte> reader, RespLimits limits, out RespCommand? command)
    {
        command = null;
        if (!TryReadLine(ref reader, limits.MaxInlineLength, out byte[] line)) return false;
        var args = new List<byte[]>();
        int i = 0;
        while (i < line.Length)
        {
            while (i < line.Length && line[i] is (byte)' ' or (byte)'\t') i++;
            int start = i;
            while (i < line.Length && line[i] is not ((byte)' ' or (byte)'\t')) i++;
            if (i > start) args.Add(line[start..i]);
        }
        command = new RespCommand(args.ToArray());
        return true;
    }
}
