using System.Buffers;
using System.Globalization;
using System.Text;

namespace Tandem.Checker;

/// <summary>The sequential state of one key: present or missing, and its value (<c>""</c> when missing).</summary>
internal readonly record struct KeyState(bool Present, string Value, long Bytes)
{
    public static readonly KeyState Missing = new(false, "", 0);

    public override string ToString() => Present ? Quote(Value) : "(missing)";

    public static string Quote(string s)
    {
        const int Max = 80;
        string body = s.Length > Max ? s[..Max] + $"...({s.Length} chars)" : s;
        return "\"" + body.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
    }
}

/// <summary>One operation of one key, prepared for the search.</summary>
internal sealed class KeyOp
{
    public required HistoryOp Source { get; init; }
    public OpKind Kind => Source.Kind;
    public required string Input { get; init; }
    public required long InputBytes { get; init; }
    /// <summary>Expected output, or null when it is not checked (Put, Unknown outcome, or not observed).</summary>
    public required string? Output { get; init; }
    /// <summary>For Append and Delete: the output parsed as a number; -1 when it cannot match anything.</summary>
    public required long OutputNumber { get; init; }
    public long Call => Source.Call;
    /// <summary>Return time; <see cref="long.MaxValue"/> for Unknown outcome.</summary>
    public required long Return { get; init; }
    public bool IsUnknown => Source.Outcome == Outcome.Unknown;

    public static KeyOp From(HistoryOp op)
    {
        bool unknown = op.Outcome == Outcome.Unknown;
        string? output = unknown || op.Kind == OpKind.Put ? null : op.Output;
        long number = -1;
        if (output is not null && op.Kind is OpKind.Append or OpKind.Delete &&
            long.TryParse(output, NumberStyles.None, CultureInfo.InvariantCulture, out long n))
        {
            number = n;
        }
        string input = op.Input ?? "";
        return new KeyOp
        {
            Source = op,
            Input = input,
            InputBytes = Encoding.UTF8.GetByteCount(input),
            Output = output,
            OutputNumber = number,
            Return = unknown ? long.MaxValue : op.Return,
        };
    }
}

/// <summary>The sequential specification of one key.</summary>
internal static class KeyModel
{
    /// <summary>Applies <paramref name="op"/> to <paramref name="s"/>; false if the op's output disagrees with the model.</summary>
    public static bool Step(KeyOp op, in KeyState s, out KeyState next)
    {
        switch (op.Kind)
        {
            case OpKind.Get:
                next = s;
                return op.Output is null || string.Equals(op.Output, s.Value, StringComparison.Ordinal);
            case OpKind.Put:
                next = new KeyState(true, op.Input, op.InputBytes);
                return true;
            case OpKind.PutHash:
            {
                string hash = PutHashValue(s.Value, op.Input);
                next = new KeyState(true, hash, hash.Length);
                return op.Output is null || string.Equals(op.Output, s.Value, StringComparison.Ordinal);
            }
            case OpKind.Append:
            {
                long bytes = s.Bytes + op.InputBytes;
                next = new KeyState(true, s.Value + op.Input, bytes);
                return op.Output is null || op.OutputNumber == bytes;
            }
            case OpKind.Delete:
                next = KeyState.Missing;
                return op.Output is null || op.OutputNumber == (s.Present ? 1 : 0);
            default:
                throw new InvalidOperationException($"unknown operation kind {op.Kind}");
        }
    }

    /// <summary>What the model would return for <paramref name="op"/> in state <paramref name="s"/>, for explanations.</summary>
    public static string ExpectedOutput(KeyOp op, in KeyState s) => op.Kind switch
    {
        OpKind.Get => KeyState.Quote(s.Value),
        OpKind.Put => "(nothing)",
        OpKind.PutHash => KeyState.Quote(s.Value),
        OpKind.Append => (s.Bytes + op.InputBytes).ToString(CultureInfo.InvariantCulture),
        OpKind.Delete => s.Present ? "1" : "0",
        _ => "?",
    };

    /// <summary>Decimal of FNV-1a 32-bit over the UTF-8 bytes of <paramref name="old"/> + <paramref name="input"/>.</summary>
    public static string PutHashValue(string old, string input)
    {
        string joined = string.Concat(old, input);
        int max = Encoding.UTF8.GetMaxByteCount(joined.Length);
        byte[]? rented = null;
        Span<byte> buffer = max <= 512 ? stackalloc byte[512] : (rented = ArrayPool<byte>.Shared.Rent(max));
        int n = Encoding.UTF8.GetBytes(joined, buffer);
        uint h = 2166136261;
        foreach (byte b in buffer[..n]) h = (h ^ b) * 16777619;
        if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        return h.ToString(CultureInfo.InvariantCulture);
    }
}
