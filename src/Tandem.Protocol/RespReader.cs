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
    /// <remarks>
    /// Without a <see cref="RespScanState"/> an incomplete command is scanned again from its start on every call;
    /// a caller that retries as bytes arrive should use the overload that takes one.
    /// </remarks>
    public static bool TryReadCommand(ref ReadOnlySequence<byte> buffer, RespLimits limits, out RespCommand? command)
    {
        var state = new RespScanState();
        return TryReadCommand(ref buffer, limits, ref state, out command);
    }

    /// <summary>
    /// Reads one command, resuming the scan of an incomplete one where the last call stopped: the cost of a
    /// command that arrives in many reads is linear in its length, not in its length times the reads.
    /// </summary>
    /// <param name="buffer">Unconsumed input; on success it is advanced past the command.</param>
    /// <param name="limits">Bounds to enforce.</param>
    /// <param name="state">
    /// Progress on the incomplete command at the start of <paramref name="buffer"/>. Start with a default value
    /// and pass the same one back on each call for one stream, with the same unconsumed bytes at the start of the
    /// buffer (only more appended). It is reset when a command is read or an error thrown.
    /// </param>
    /// <param name="command">The command, when the method returns true.</param>
    public static bool TryReadCommand(ref ReadOnlySequence<byte> buffer, RespLimits limits, ref RespScanState state,
        out RespCommand? command)
    {
        command = null;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryPeek(out byte first)) return false;
        if (state.Scanned > buffer.Length) state = default; // not the buffer the state was made on: start over

        try
        {
            if (first != (byte)'*')
            {
                if (!TryReadInline(ref reader, limits, ref state, out command)) return false;
                state = default;
                buffer = buffer.Slice(reader.Position);
                return true;
            }

            reader.Advance(1);
            if (!TryReadLength(ref reader, out long count)) return false;
            if (count < 1) throw new RespProtocolException("command array must have at least one element");
            if (count > limits.MaxArrayLength) throw new RespProtocolException($"command array longer than {limits.MaxArrayLength}");

            // First pass: check the whole array has arrived, allocating nothing, so that a huge count costs no
            // memory before its elements are here. Elements checked by an earlier call are skipped.
            SequenceReader<byte> scan = reader;
            long i = 0;
            if (state.Elements > 0)
            {
                scan.Advance(state.Scanned - reader.Consumed);
                i = state.Elements;
            }
            for (; i < count; i++)
            {
                state = new RespScanState { Elements = i, Scanned = scan.Consumed };
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
            for (int j = 0; j < count; j++)
            {
                reader.Advance(1);
                TryReadBulkBody(ref reader, limits, out byte[]? bytes);
                args[j] = bytes!;
            }

            state = default;
            buffer = buffer.Slice(reader.Position);
            command = new RespCommand(args);
            return true;
        }
        catch (RespProtocolException)
        {
            state = default;
            throw;
        }
    }

    /// <summary>Reads one reply value of any RESP2 or RESP3 type (RESP3 attributes and big numbers excepted).</summary>
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
            case (byte)'_':
                if (!TryReadLine(ref reader, limits.MaxInlineLength, out _)) return false;
                value = RespValue.Null;
                return true;
            case (byte)'#':
                if (!TryReadLine(ref reader, limits.MaxInlineLength, out byte[] flag)) return false;
                if (flag is not [(byte)'t' or (byte)'f']) throw new RespProtocolException("invalid boolean");
                value = RespValue.Boolean(flag[0] == (byte)'t');
                return true;
            case (byte)',':
                if (!TryReadLine(ref reader, limits.MaxInlineLength, out byte[] number)) return false;
                string text = System.Text.Encoding.ASCII.GetString(number);
                double d = text switch
                {
                    "inf" => double.PositiveInfinity,
                    "-inf" => double.NegativeInfinity,
                    "nan" => double.NaN,
                    _ => double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double parsed)
                        ? parsed : throw new RespProtocolException("invalid double"),
                };
                value = RespValue.FromDouble(d);
                return true;
            case (byte)'=':
            case (byte)'!':
                if (!TryReadBulkBody(ref reader, limits, out byte[]? blob)) return false;
                if (blob is null) throw new RespProtocolException("null verbatim string or blob error");
                if (type == (byte)'!') value = RespValue.Error(System.Text.Encoding.UTF8.GetString(blob));
                else if (blob.Length < 4 || blob[3] != (byte)':') throw new RespProtocolException("verbatim string without a format");
                else value = RespValue.Verbatim(System.Text.Encoding.UTF8.GetString(blob, 4, blob.Length - 4), System.Text.Encoding.ASCII.GetString(blob, 0, 3));
                return true;
            case (byte)'%':
            case (byte)'~':
            case (byte)'>':
                if (!TryReadLength(ref reader, out long n3)) return false;
                if (n3 < 0) throw new RespProtocolException("negative aggregate length");
                // Checked before a map's count is doubled, which would overflow for a count near 2^63.
                if (n3 > limits.MaxArrayLength) throw new RespProtocolException($"aggregate longer than {limits.MaxArrayLength}");
                long elements = type == (byte)'%' ? 2 * n3 : n3;
                if (elements > limits.MaxArrayLength) throw new RespProtocolException($"aggregate longer than {limits.MaxArrayLength}");
                var members = new List<RespValue>((int)Math.Min(elements, reader.Remaining / 2));
                for (long i = 0; i < elements; i++)
                {
                    if (!TryReadValue(ref reader, limits, depth + 1, out RespValue? item)) return false;
                    members.Add(item!);
                }
                value = type switch
                {
                    (byte)'%' => RespValue.Map([.. members]),
                    (byte)'~' => RespValue.Set([.. members]),
                    _ => RespValue.Push([.. members]),
                };
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
        ReadOnlySpan<byte> unread = reader.UnreadSpan;
        // Fastest path, taken by nearly every length: up to 18 digits (an optional minus first) and CRLF in this
        // segment, read in one pass. Anything else (a longer number, a line split across segments, an error) takes
        // the general path below, which decides it exactly as before.
        int at = unread.Length > 0 && unread[0] == (byte)'-' ? 1 : 0;
        long magnitude = 0;
        int digitsEnd = Math.Min(unread.Length, at + 18);
        int i = at;
        for (; i < digitsEnd; i++)
        {
            uint digit = (uint)(unread[i] - '0');
            if (digit > 9) break;
            magnitude = magnitude * 10 + digit;
        }
        if (i > at && i + 1 < unread.Length && unread[i] == (byte)'\r' && unread[i + 1] == (byte)'\n')
        {
            value = at == 1 ? -magnitude : magnitude;
            if (value < -1 && !allowAnyNegative) throw new RespProtocolException("invalid negative length");
            reader.Advance(i + 2);
            return true;
        }

        // Fast path: the whole line is in the current segment (almost always): parse it in place.
        int lf = unread.Length > MaxLineLength ? unread[..(MaxLineLength + 1)].IndexOf((byte)'\n') : unread.IndexOf((byte)'\n');
        if (lf >= 2 && unread[lf - 1] == (byte)'\r')
        {
            if (!Utf8Parser.TryParse(unread[..(lf - 1)], out value, out int parsed) || parsed != lf - 1)
                throw new RespProtocolException("invalid length");
            if (value < -1 && !allowAnyNegative) throw new RespProtocolException("invalid negative length");
            reader.Advance(lf + 1);
            return true;
        }
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

    private static bool TryReadInline(ref SequenceReader<byte> reader, RespLimits limits, ref RespScanState state, out RespCommand? command)
    {
        command = null;
        // Bytes an earlier call searched hold no line end: search only the new ones.
        SequenceReader<byte> search = reader;
        search.Advance(state.Scanned);
        if (!search.TryAdvanceTo((byte)'\n', advancePastDelimiter: true))
        {
            if (reader.Remaining > limits.MaxInlineLength) throw new RespProtocolException("line too long");
            state = new RespScanState { Scanned = reader.Remaining };
            return false;
        }
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

/// <summary>
/// How far <see cref="RespReader.TryReadCommand(ref ReadOnlySequence{byte}, RespLimits, ref RespScanState, out RespCommand?)"/>
/// got through an incomplete command: resuming there keeps parsing linear in the input.
/// </summary>
public struct RespScanState
{
    /// <summary>Elements of the pending array already checked complete and valid.</summary>
    public long Elements { get; internal set; }

    /// <summary>Bytes from the start of the command already scanned (where the next element starts).</summary>
    public long Scanned { get; internal set; }
}
