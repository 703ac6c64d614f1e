using System.Buffers;
using System.Text;
using Tandem.Protocol;

// Shared by the unit tests (a CI-sized run) and bench/Tandem.Fuzz (the long runs), which links this file.
namespace Tandem.Fuzzing;

/// <summary>The committed seed frames in tests/fuzz-corpus.</summary>
public static class FuzzCorpus
{
    /// <summary>Finds tests/fuzz-corpus by walking up from <paramref name="start"/> (default: the app's folder).</summary>
    public static string FindFolder(string? start = null)
    {
        for (var dir = new DirectoryInfo(start ?? AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "fuzz-corpus");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("tests/fuzz-corpus not found above " + (start ?? AppContext.BaseDirectory));
    }

    /// <summary>Every seed frame, in file-name order.</summary>
    public static List<byte[]> Load(string? folder = null) =>
        Directory.GetFiles(folder ?? FindFolder(), "*.resp").Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToList();
}

/// <summary>
/// A seeded generator of hostile RESP byte strings: valid frames built from scratch, mutations of the corpus
/// (bit flips, interesting bytes and numbers, insertion, deletion, duplication, truncation, splicing, huge and
/// negative lengths, deep and endless arrays), pipelines, and random bytes. Same seed, same inputs.
/// </summary>
public sealed class RespMutator(int seed, IReadOnlyList<byte[]> corpus)
{
    private static readonly string[] Names =
    [
        "PING", "ECHO", "GET", "SET", "PUTHASH", "APPEND", "DEL", "XREQ", "XCLIENT", "INFO", "SELECT", "CLIENT", "CONFIG", "COMMAND",
        "HELLO", "QUIT", "REPL.SNAPSHOT", "REPL.APPLY", "VS.PING", "VS.VIEW", "VS.STATUS",
    ];

    private static readonly string[] Numbers =
    [
        "0", "1", "-1", "-2", "2", "16", "64", "65", "1048576", "1048577", "16777216", "16777217", "1073741824", "2147483647",
        "2147483648", "-2147483648", "4294967296", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "-9223372036854775809", "99999999999999999999999", "", "+5", " 5", "5 ", "0x10", "1e3", "05", "-0", "--1", "\u00b9",
    ];

    private static readonly byte[] Interesting = "\r\n*$:+-0123456789 \t\0\xff"u8.ToArray();

    private readonly Random _rng = new(seed);

    /// <summary>The generator's random source (to segment the same input in several ways).</summary>
    public Random Random => _rng;

    /// <summary>The next input.</summary>
    public byte[] Next()
    {
        int pick = _rng.Next(100);
        byte[] input = pick switch
        {
            < 10 => ValidCommand(),
            < 18 => ValidValue(0),
            < 26 => Pipeline(),
            < 30 => RandomBytes(),
            < 34 => Endless(),
            < 37 => Deep(),
            _ => Mutate(corpus[_rng.Next(corpus.Count)]),
        };
        return input;
    }

    /// <summary>A well-formed command array: a (near-)real command name and random arguments.</summary>
    public byte[] ValidCommand()
    {
        int n = 1 + (_rng.Next(4) == 0 ? _rng.Next(40) : _rng.Next(7));
        var args = new List<byte[]>(n) { Encoding.ASCII.GetBytes(Names[_rng.Next(Names.Length)]) };
        for (int i = 1; i < n; i++) args.Add(Arg());
        var w = new ArrayBufferWriter<byte>();
        RespWriter.WriteCommand(w, args);
        return w.WrittenSpan.ToArray();
    }

    private byte[] Arg() => _rng.Next(4) switch
    {
        0 => Encoding.ASCII.GetBytes(Numbers[_rng.Next(Numbers.Length)]),
        1 => Encoding.ASCII.GetBytes(Names[_rng.Next(Names.Length)]),
        2 => RandomBytes(_rng.Next(12)),
        _ => Encoding.ASCII.GetBytes("k" + _rng.Next(10)),
    };

    /// <summary>A well-formed reply value of any type, nested up to a few levels.</summary>
    public byte[] ValidValue(int depth)
    {
        var w = new ArrayBufferWriter<byte>();
        WriteValue(w, depth);
        return w.WrittenSpan.ToArray();
    }

    private void WriteValue(ArrayBufferWriter<byte> w, int depth)
    {
        switch (_rng.Next(depth < 4 ? 7 : 5))
        {
            case 0: RespWriter.WriteSimple(w, "OK"); break;
            case 1: RespWriter.WriteError(w, "ERR x " + _rng.Next()); break;
            case 2: RespWriter.WriteInteger(w, _rng.NextInt64(long.MinValue, long.MaxValue)); break;
            case 3: RespWriter.WriteBulk(w, RandomBytes(_rng.Next(20))); break;
            case 4: w.Write(_rng.Next(2) == 0 ? "$-1\r\n"u8 : "*-1\r\n"u8); break;
            default:
                int n = _rng.Next(5);
                RespWriter.WriteArrayHeader(w, n);
                for (int i = 0; i < n; i++) WriteValue(w, depth + 1);
                break;
        }
    }

    private byte[] Pipeline()
    {
        var all = new List<byte>();
        int n = 2 + _rng.Next(6);
        for (int i = 0; i < n; i++)
        {
            byte[] part = _rng.Next(3) switch
            {
                0 => ValidCommand(),
                1 => corpus[_rng.Next(corpus.Count)],
                _ => Mutate(corpus[_rng.Next(corpus.Count)]),
            };
            all.AddRange(part);
        }
        return all.ToArray();
    }

    private byte[] RandomBytes() => _rng.Next(2) == 0 ? RandomBytes(_rng.Next(64)) : BiasedBytes(_rng.Next(64));

    private byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        _rng.NextBytes(b);
        return b;
    }

    private byte[] BiasedBytes(int n)
    {
        var b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = Interesting[_rng.Next(Interesting.Length)];
        return b;
    }

    /// <summary>An array header with a huge count followed by a few elements (the rest never comes).</summary>
    private byte[] Endless()
    {
        string count = _rng.Next(3) switch { 0 => "1048576", 1 => "1048577", _ => _rng.Next(1, 2_000_000).ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var sb = new StringBuilder((_rng.Next(2) == 0 ? "*" : "*1\r\n*") + count + "\r\n");
        int k = _rng.Next(20);
        for (int i = 0; i < k; i++) sb.Append(_rng.Next(2) == 0 ? "$1\r\na\r\n" : ":1\r\n");
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    /// <summary>Arrays nested deeply (the reply reader allows 16 levels).</summary>
    private byte[] Deep()
    {
        int depth = _rng.Next(10, 60);
        var sb = new StringBuilder();
        for (int i = 0; i < depth; i++) sb.Append(_rng.Next(8) == 0 ? "*2\r\n:0\r\n" : "*1\r\n");
        sb.Append(_rng.Next(2) == 0 ? ":1\r\n" : "");
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    /// <summary>One to four mutations of <paramref name="seedFrame"/>.</summary>
    public byte[] Mutate(byte[] seedFrame)
    {
        var b = new List<byte>(seedFrame);
        int rounds = 1 + _rng.Next(4);
        for (int r = 0; r < rounds; r++)
        {
            int at = b.Count == 0 ? 0 : _rng.Next(b.Count);
            switch (_rng.Next(11))
            {
                case 0 when b.Count > 0: // bit flip
                    b[at] ^= (byte)(1 << _rng.Next(8));
                    break;
                case 1 when b.Count > 0: // interesting byte
                    b[at] = Interesting[_rng.Next(Interesting.Length)];
                    break;
                case 2: // insert bytes
                    b.InsertRange(at, _rng.Next(2) == 0 ? BiasedBytes(1 + _rng.Next(4)) : RandomBytes(1 + _rng.Next(8)));
                    break;
                case 3 when b.Count > 0: // delete a range
                    b.RemoveRange(at, Math.Min(b.Count - at, 1 + _rng.Next(8)));
                    break;
                case 4 when b.Count > 0: // duplicate a range
                    int len = Math.Min(b.Count - at, 1 + _rng.Next(16));
                    b.InsertRange(_rng.Next(b.Count + 1), b.GetRange(at, len));
                    break;
                case 5: // truncate
                    b.RemoveRange(at, b.Count - at);
                    break;
                case 6: // splice with another seed
                    byte[] other = corpus[_rng.Next(corpus.Count)];
                    int from = other.Length == 0 ? 0 : _rng.Next(other.Length);
                    b.RemoveRange(at, b.Count - at);
                    b.AddRange(other.AsSpan(from).ToArray());
                    break;
                case 7: // replace a number (a length or a count) with an interesting one
                case 8:
                    ReplaceNumber(b);
                    break;
                case 9: // wrap in arrays
                    int levels = 1 + _rng.Next(20);
                    for (int i = 0; i < levels; i++) b.InsertRange(0, "*1\r\n"u8.ToArray());
                    break;
                default: // CRLF games
                    b.InsertRange(at, _rng.Next(3) switch { 0 => "\r"u8.ToArray(), 1 => "\n"u8.ToArray(), _ => "\r\n"u8.ToArray() });
                    break;
            }
        }
        return b.ToArray();
    }

    private void ReplaceNumber(List<byte> b)
    {
        // Find a run of digits (optionally signed) and swap it.
        var starts = new List<int>();
        for (int i = 0; i < b.Count; i++)
            if ((b[i] is >= (byte)'0' and <= (byte)'9' || b[i] == (byte)'-') && (i == 0 || b[i - 1] is not (>= (byte)'0' and <= (byte)'9')))
                starts.Add(i);
        if (starts.Count == 0) return;
        int s = starts[_rng.Next(starts.Count)];
        int e = s + 1;
        while (e < b.Count && b[e] is >= (byte)'0' and <= (byte)'9') e++;
        b.RemoveRange(s, e - s);
        b.InsertRange(s, Encoding.UTF8.GetBytes(Numbers[_rng.Next(Numbers.Length)]));
    }

    /// <summary>Cuts <paramref name="data"/> into 1 to 8 random segments (as data arrives in separate reads).</summary>
    public static ReadOnlySequence<byte> Segment(byte[] data, Random rng)
    {
        int pieces = data.Length < 2 ? 1 : 1 + rng.Next(Math.Min(8, data.Length));
        if (pieces == 1) return new ReadOnlySequence<byte>(data);
        var cuts = new SortedSet<int>();
        while (cuts.Count < pieces - 1) cuts.Add(1 + rng.Next(data.Length - 1));
        Chunk? first = null, last = null;
        int prev = 0;
        foreach (int cut in cuts.Append(data.Length))
        {
            // Copy each piece so that reading past a segment's end is caught by the bounds checks.
            var chunk = new Chunk(data.AsSpan(prev, cut - prev).ToArray());
            if (first is null) first = last = chunk;
            else last = last!.Append(chunk);
            prev = cut;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Chunk : ReadOnlySequenceSegment<byte>
    {
        public Chunk(byte[] data) => Memory = data;

        public Chunk Append(Chunk next)
        {
            next.RunningIndex = RunningIndex + Memory.Length;
            Next = next;
            return next;
        }
    }
}

/// <summary>Checks the reader against one input; see <see cref="Check"/>.</summary>
public sealed class ParserFuzzer
{
    /// <summary>Allocation allowed per input byte before a parse counts as amplification.</summary>
    public const int AllocationPerInputByte = 64;

    /// <summary>Allocation always allowed for one parse.</summary>
    public const long AllocationSlack = 1024 * 1024;

    /// <summary>Limits small enough for mutations to hit them often.</summary>
    public static readonly RespLimits SmallLimits = new() { MaxBulkLength = 4096, MaxArrayLength = 4096, MaxInlineLength = 1024 };

    /// <summary>Frames parsed whole.</summary>
    public long Frames { get; private set; }

    /// <summary>Parses that ended in a protocol error.</summary>
    public long ProtocolErrors { get; private set; }

    /// <summary>Parses that ended waiting for more bytes.</summary>
    public long Incomplete { get; private set; }

    /// <summary>Whether to check the allocation bound (off to look for other findings while it is known).</summary>
    public bool CheckAllocation { get; init; } = true;

    /// <summary>
    /// Parses <paramref name="input"/> as commands and as reply values, contiguous and cut into segments, and
    /// returns a description of the first broken property, or null. Properties: only
    /// <see cref="RespProtocolException"/> is thrown; a successful read consumes bytes and a failed one consumes
    /// none; the segmentation never changes the result; a proper prefix of a frame is never a frame nor an
    /// error; a frame re-encodes to itself; a parse allocates at most
    /// <see cref="AllocationPerInputByte"/> per input byte plus <see cref="AllocationSlack"/>.
    /// </summary>
    public string? Check(byte[] input, Random rng)
    {
        foreach (bool commands in (ReadOnlySpan<bool>)[true, false])
        {
            foreach (RespLimits limits in (ReadOnlySpan<RespLimits>)[RespLimits.Default, SmallLimits])
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                Outcome whole = Parse(new ReadOnlySequence<byte>(input), commands, limits);
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                string what = (commands ? "TryReadCommand" : "TryReadValue") + (ReferenceEquals(limits, SmallLimits) ? " (small limits)" : "");
                if (whole.Finding is not null) return $"{what}: {whole.Finding}";
                if (CheckAllocation && allocated > AllocationSlack + (long)AllocationPerInputByte * input.Length)
                    return $"{what}: allocated {allocated} bytes for {input.Length} bytes of input";
                Outcome cut = Parse(RespMutator.Segment(input, rng), commands, limits);
                if (cut.Finding is not null) return $"{what} (segmented): {cut.Finding}";
                if (!cut.SameAs(whole)) return $"{what}: segmentation changed the result: {whole} vs {cut}";
                if (whole.FirstFrameLength > 1)
                {
                    int prefix = 1 + rng.Next(whole.FirstFrameLength - 1);
                    Outcome part = Parse(RespMutator.Segment(input[..prefix], rng), commands, limits, maxFrames: 1);
                    if (part.Finding is not null) return $"{what} (prefix {prefix}): {part.Finding}";
                    if (part.Frames.Count != 0 || part.End != End.NeedMore)
                        return $"{what}: the {prefix}-byte prefix of a {whole.FirstFrameLength}-byte frame gave {part}";
                }
                if (ReferenceEquals(limits, RespLimits.Default))
                {
                    Frames += whole.Frames.Count;
                    if (whole.End == End.Error) ProtocolErrors++;
                    else Incomplete++;
                }
            }
        }
        return null;
    }

    private enum End
    {
        NeedMore,
        Error,
    }

    private sealed record Outcome(List<byte[]> Frames, End End, long Offset, string? Message, string? Finding, int FirstFrameLength)
    {
        public bool SameAs(Outcome o) =>
            End == o.End && Offset == o.Offset && Message == o.Message && Frames.Count == o.Frames.Count
            && Frames.Zip(o.Frames).All(p => p.First.AsSpan().SequenceEqual(p.Second));

        public override string ToString() => $"{Frames.Count} frame(s), then {End} at {Offset}{(Message is null ? "" : ": " + Message)}";
    }

    private static Outcome Parse(ReadOnlySequence<byte> buffer, bool commands, RespLimits limits, int maxFrames = int.MaxValue)
    {
        var frames = new List<byte[]>();
        long total = buffer.Length;
        int first = 0;
        while (frames.Count < maxFrames)
        {
            long before = buffer.Length;
            ReadOnlySequence<byte> original = buffer;
            try
            {
                bool ok;
                byte[] encoded;
                if (commands)
                {
                    ok = RespReader.TryReadCommand(ref buffer, limits, out RespCommand? cmd);
                    encoded = ok ? Encode(cmd!) : [];
                }
                else
                {
                    ok = RespReader.TryReadValue(ref buffer, limits, out RespValue? value);
                    encoded = ok ? Encode(value!) : [];
                    if (ok)
                    {
                        // Writer and reader agree: the re-encoded value reads back to the same bytes.
                        var again = new ReadOnlySequence<byte>(encoded);
                        if (!RespReader.TryReadValue(ref again, RespLimits.Default, out RespValue? back) || again.Length != 0
                            || !Encode(back!).AsSpan().SequenceEqual(encoded))
                            return new Outcome(frames, End.Error, 0, null, $"re-encoded value does not read back: {Show(encoded)}", first);
                    }
                }
                if (!ok)
                {
                    if (buffer.Length != before || !buffer.Start.Equals(original.Start))
                        return new Outcome(frames, End.NeedMore, 0, null, "returned false but consumed input", first);
                    return new Outcome(frames, End.NeedMore, total - buffer.Length, null, null, first);
                }
                if (buffer.Length >= before) return new Outcome(frames, End.Error, 0, null, "returned true without consuming input", first);
                if (frames.Count == 0) first = (int)(before - buffer.Length);
                frames.Add(encoded);
            }
            catch (RespProtocolException e)
            {
                if (buffer.Length != before) return new Outcome(frames, End.Error, 0, null, "threw after consuming input", first);
                return new Outcome(frames, End.Error, total - buffer.Length, e.Message, null, first);
            }
            catch (Exception e)
            {
                return new Outcome(frames, End.Error, 0, null, $"{e.GetType().Name}: {e.Message} at {e.StackTrace?.Split('\n').FirstOrDefault()?.Trim()}", first);
            }
        }
        return new Outcome(frames, End.NeedMore, total - buffer.Length, null, null, first);
    }

    private static byte[] Encode(RespCommand cmd)
    {
        var w = new ArrayBufferWriter<byte>();
        RespWriter.WriteCommand(w, cmd.Args);
        return w.WrittenSpan.ToArray();
    }

    private static byte[] Encode(RespValue v)
    {
        var w = new ArrayBufferWriter<byte>();
        RespWriter.WriteValue(w, v);
        return w.WrittenSpan.ToArray();
    }

    /// <summary>Bytes as a C# string literal (for reproductions).</summary>
    public static string Show(ReadOnlySpan<byte> bytes, int max = 200)
    {
        var sb = new StringBuilder("\"");
        foreach (byte b in bytes[..Math.Min(bytes.Length, max)])
        {
            sb.Append(b switch
            {
                (byte)'\r' => "\\r",
                (byte)'\n' => "\\n",
                (byte)'"' => "\\\"",
                (byte)'\\' => "\\\\",
                >= 32 and < 127 => ((char)b).ToString(),
                _ => $"\\x{b:x2}",
            });
        }
        sb.Append('"');
        if (bytes.Length > max) sb.Append($" ... ({bytes.Length} bytes)");
        return sb.ToString();
    }
}
