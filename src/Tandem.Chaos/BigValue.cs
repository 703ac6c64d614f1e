using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Tandem.Chaos;

/// <summary>
/// MiB-sized values that the history can hold in a few bytes: a value is a unique token (<c>c3.17;</c>) followed by
/// filler that the token and the length determine. The history records <c>big:TOKEN LENGTH</c> for a Put's input and
/// for a Get that read exactly such a value; anything else read (a truncated, mixed or otherwise wrong value) becomes
/// <c>corrupt:...</c>, which no Put ever wrote, so the checker rejects it.
/// </summary>
internal static partial class BigValue
{
    public const int MinLength = 1 << 20, MaxLength = 4 << 20;

    /// <summary>What the history records for the value <see cref="Make"/> gives for these arguments.</summary>
    public static string Describe(string token, int length) => string.Create(CultureInfo.InvariantCulture, $"big:{token}{length}");

    /// <summary>The value: ASCII, <paramref name="token"/> then filler, <paramref name="length"/> bytes in all.</summary>
    public static string Make(string token, int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, token.Length);
        return string.Create(length, token, static (span, token) =>
        {
            token.AsSpan().CopyTo(span);
            Fill(token, span[token.Length..]);
        });
    }

    /// <summary>What the history records for a value read (<c>""</c> for none).</summary>
    public static string Decode(ReadOnlySpan<byte> value)
    {
        if (value.IsEmpty) return "";
        int end = value[..Math.Min(value.Length, 32)].IndexOf((byte)';');
        string token = end > 0 ? Encoding.ASCII.GetString(value[..(end + 1)]) : "";
        if (end > 0 && TokenPattern().IsMatch(token) && Matches(token, value[(end + 1)..])) return Describe(token, value.Length);
        return string.Create(CultureInfo.InvariantCulture, $"corrupt:{(token.Length > 0 ? token : "?")}{value.Length}:{Tandem.Protocol.Fnv1a.Hash(value, default)}");
    }

    /// <summary>As <see cref="Decode(ReadOnlySpan{byte})"/>, for a value read as a string.</summary>
    public static string Decode(string value) => Decode(Encoding.UTF8.GetBytes(value));

    private static void Fill(string token, Span<char> span)
    {
        ulong state = Seed(token);
        for (int i = 0; i < span.Length; i++) span[i] = (char)('a' + Next(ref state));
    }

    private static bool Matches(string token, ReadOnlySpan<byte> filler)
    {
        ulong state = Seed(token);
        foreach (byte b in filler)
        {
            if (b != (byte)('a' + Next(ref state))) return false;
        }
        return true;
    }

    private static ulong Seed(string token)
    {
        ulong h = 1469598103934665603UL;
        foreach (char c in token) h = (h ^ c) * 1099511628211UL;
        return h | 1;
    }

    // xorshift64: cheap, and a different token gives different filler from the first byte on.
    private static int Next(ref ulong state)
    {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return (int)(state % 26);
    }

    [GeneratedRegex(@"^c\d+\.\d+;$")]
    private static partial Regex TokenPattern();
}
