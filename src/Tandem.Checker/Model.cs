using System.Buffers;
using System.Globalization;
using System.Text;

namespace Tandem.Checker;

/// <summary>
/// The sequential state of one key: present or missing, its value (<c>""</c> when missing), and whether it has a
/// deadline (one too far away to pass during the history: expiry itself is checked apart, see docs/checker.md).
/// </summary>
internal readonly record struct KeyState(bool Present, string Value, long Bytes, bool HasTtl = false)
{
    public static readonly KeyState Missing = new(false, "", 0);

    public override string ToString() => Present ? Quote(Value) + (HasTtl ? " (with a deadline)" : "") : "(missing)";

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
    /// <summary>For Set and Expire: the options.</summary>
    public required SetFlags Flags { get; init; }
    /// <summary>For Incr: the increment.</summary>
    public required long Delta { get; init; }

    /// <summary>
    /// True when the op's effect does not depend on the state and it accepts any state (it has no checked output):
    /// an unknown op of that kind overwrites whatever came before it.
    /// </summary>
    public bool Overwrites => Kind is OpKind.Put or OpKind.Delete or OpKind.GetDel
        || (Kind == OpKind.Set && (Flags & (SetFlags.Nx | SetFlags.Xx | SetFlags.KeepTtl)) == 0);

    public static KeyOp From(HistoryOp op)
    {
        bool unknown = op.Outcome == Outcome.Unknown;
        string? output = unknown || op.Kind == OpKind.Put ? null : op.Output;
        long number = -1;
        if (output is not null && op.Kind is OpKind.Append or OpKind.Delete or OpKind.Expire or OpKind.Persist &&
            long.TryParse(output, NumberStyles.None, CultureInfo.InvariantCulture, out long n))
        {
            number = n;
        }
        if (output is not null && op.Kind == OpKind.Ttl)
            number = long.TryParse(output, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long t) && t >= -2 ? t : long.MinValue;
        string input = op.Input ?? "";
        long delta = 0;
        if (op.Kind == OpKind.Incr && !long.TryParse(input, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out delta))
            throw new ArgumentException($"operation {op} has an increment that is not a 64-bit integer");
        return new KeyOp
        {
            Source = op,
            Input = input,
            InputBytes = Encoding.UTF8.GetByteCount(input),
            Output = output,
            OutputNumber = number,
            Return = unknown ? long.MaxValue : op.Return,
            Flags = ParseFlags(op),
            Delta = delta,
        };
    }

    /// <summary>The options of a Set or Expire; throws <see cref="ArgumentException"/> for a word the model does not know.</summary>
    public static SetFlags ParseFlags(HistoryOp op)
    {
        var flags = SetFlags.None;
        if (op.Kind is not (OpKind.Set or OpKind.Expire)) return flags;
        foreach (string word in (op.Options ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            SetFlags f = word.ToUpperInvariant() switch
            {
                "NX" => SetFlags.Nx,
                "XX" => SetFlags.Xx,
                "GET" when op.Kind == OpKind.Set => SetFlags.Get,
                "EX" when op.Kind == OpKind.Set => SetFlags.Ex,
                "KEEPTTL" when op.Kind == OpKind.Set => SetFlags.KeepTtl,
                _ => throw new ArgumentException($"operation {op} has an option the model does not know: {word}"),
            };
            flags |= f;
        }
        if ((flags & (SetFlags.Nx | SetFlags.Xx)) == (SetFlags.Nx | SetFlags.Xx) || (flags & (SetFlags.Ex | SetFlags.KeepTtl)) == (SetFlags.Ex | SetFlags.KeepTtl))
            throw new ArgumentException($"operation {op} has options that exclude each other");
        return flags;
    }
}

/// <summary>The options of a Set (and the condition of an Expire).</summary>
[Flags]
internal enum SetFlags
{
    None = 0,
    /// <summary>Only if missing (for Expire: only without a deadline).</summary>
    Nx = 1,
    /// <summary>Only if present (for Expire: only with a deadline).</summary>
    Xx = 2,
    /// <summary>The output is the old value.</summary>
    Get = 4,
    /// <summary>Sets a (far) deadline.</summary>
    Ex = 8,
    /// <summary>Keeps the deadline.</summary>
    KeepTtl = 16,
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
                next = new KeyState(true, s.Value + op.Input, bytes, s.HasTtl);
                return op.Output is null || op.OutputNumber == bytes;
            }
            case OpKind.Delete:
                next = KeyState.Missing;
                return op.Output is null || op.OutputNumber == (s.Present ? 1 : 0);
            case OpKind.Incr:
            {
                if (!IncrResult(s, op.Delta, out string? value))
                {
                    next = s;
                    return op.Output is null || op.Output == "error";
                }
                next = new KeyState(true, value, value.Length, s.HasTtl);
                return op.Output is null || string.Equals(op.Output, value, StringComparison.Ordinal);
            }
            case OpKind.Set:
            {
                bool sets = SetApplies(op, s);
                next = !sets ? s : new KeyState(true, op.Input, op.InputBytes,
                    (op.Flags & SetFlags.Ex) != 0 || ((op.Flags & SetFlags.KeepTtl) != 0 && s.HasTtl));
                if (op.Output is null) return true;
                return (op.Flags & SetFlags.Get) != 0
                    ? string.Equals(op.Output, s.Value, StringComparison.Ordinal)
                    : op.Output == (sets ? "1" : "0");
            }
            case OpKind.GetDel:
                next = KeyState.Missing;
                return op.Output is null || string.Equals(op.Output, s.Value, StringComparison.Ordinal);
            case OpKind.Expire:
            {
                bool sets = s.Present && !((op.Flags & SetFlags.Nx) != 0 && s.HasTtl) && !((op.Flags & SetFlags.Xx) != 0 && !s.HasTtl);
                next = sets ? s with { HasTtl = true } : s;
                return op.Output is null || op.OutputNumber == (sets ? 1 : 0);
            }
            case OpKind.Persist:
            {
                bool clears = s.Present && s.HasTtl;
                next = clears ? s with { HasTtl = false } : s;
                return op.Output is null || op.OutputNumber == (clears ? 1 : 0);
            }
            case OpKind.Ttl:
                next = s;
                return op.Output is null || (!s.Present ? op.OutputNumber == -2 : !s.HasTtl ? op.OutputNumber == -1 : op.OutputNumber >= 0);
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
        OpKind.Incr => IncrResult(s, op.Delta, out string? value) ? value : "error",
        OpKind.Set when (op.Flags & SetFlags.Get) != 0 => KeyState.Quote(s.Value),
        OpKind.Set => SetApplies(op, s) ? "1" : "0",
        OpKind.GetDel => KeyState.Quote(s.Value),
        OpKind.Expire => s.Present && !((op.Flags & SetFlags.Nx) != 0 && s.HasTtl) && !((op.Flags & SetFlags.Xx) != 0 && !s.HasTtl) ? "1" : "0",
        OpKind.Persist => s.Present && s.HasTtl ? "1" : "0",
        OpKind.Ttl => !s.Present ? "-2" : !s.HasTtl ? "-1" : "a number from 0",
        _ => "?",
    };

    /// <summary>Whether a Set's condition (NX, XX) lets it set in state <paramref name="s"/>.</summary>
    public static bool SetApplies(KeyOp op, in KeyState s) =>
        !((op.Flags & SetFlags.Nx) != 0 && s.Present) && !((op.Flags & SetFlags.Xx) != 0 && !s.Present);

    /// <summary>
    /// The value after INCRBY <paramref name="delta"/> in state <paramref name="s"/>, or false when Redis refuses it: the
    /// value is not an integer as Redis reads one (no sign but a leading minus, no leading zeros, no spaces, at most 20
    /// characters, in 64 bits), or the sum overflows.
    /// </summary>
    public static bool IncrResult(in KeyState s, long delta, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? value)
    {
        value = null;
        long old = 0;
        if (s.Present && !TryParseRedisInteger(s.Value, out old)) return false;
        long sum;
        try
        {
            sum = checked(old + delta);
        }
        catch (OverflowException)
        {
            return false;
        }
        value = sum.ToString(CultureInfo.InvariantCulture);
        return true;
    }

    /// <summary>Redis's strict reading of a 64-bit integer (<c>string2ll</c>).</summary>
    public static bool TryParseRedisInteger(string s, out long value)
    {
        value = 0;
        if (s.Length is 0 or > 20) return false;
        if (s == "0") return true;
        int at = s[0] == '-' ? 1 : 0;
        if (at == s.Length || s[at] is < '1' or > '9') return false;
        for (int i = at; i < s.Length; i++)
            if (!char.IsAsciiDigit(s[i])) return false;
        return long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
    }

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
