using System.Text;

namespace Tandem.Protocol;

/// <summary>
/// Redis's glob patterns, the one matcher of every node: KEYS and SCAN MATCH, PSUBSCRIBE, CONFIG GET and
/// COMMAND LIST FILTERBY PATTERN (callers lower-case both sides where Redis does).
/// </summary>
public static class Glob
{
    /// <summary>True when <paramref name="text"/> matches <paramref name="pattern"/> (both compared as UTF-8).</summary>
    public static bool Match(string pattern, string text)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(text);
        return Match(Encoding.UTF8.GetBytes(pattern), Encoding.UTF8.GetBytes(text));
    }

    /// <summary>
    /// True when <paramref name="text"/> matches <paramref name="pattern"/>, byte by byte: <c>*</c>, <c>?</c>,
    /// <c>[abc]</c>, <c>[^a]</c>, <c>[a-z]</c> and <c>\x</c>. Backtracks only to the last <c>*</c>, so it is never
    /// exponential.
    /// </summary>
    public static bool Match(ReadOnlySpan<byte> pattern, ReadOnlySpan<byte> text)
    {
        int p = 0, t = 0, starP = -1, starT = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length)
            {
                byte c = pattern[p];
                if (c == '*')
                {
                    while (p < pattern.Length && pattern[p] == '*') p++;
                    if (p == pattern.Length) return true;
                    starP = p;
                    starT = t;
                    continue;
                }
                if (c == '?')
                {
                    p++;
                    t++;
                    continue;
                }
                if (c == '[')
                {
                    if (MatchClass(pattern, ref p, text[t]))
                    {
                        t++;
                        continue;
                    }
                }
                else
                {
                    if (c == '\\' && p + 1 < pattern.Length) c = pattern[++p];
                    if (c == text[t])
                    {
                        p++;
                        t++;
                        continue;
                    }
                }
            }
            if (starP < 0) return false;
            p = starP;
            t = ++starT;
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }

    // Matches one byte against the class starting at pattern[p] == '['; on a match moves p past the class.
    private static bool MatchClass(ReadOnlySpan<byte> pattern, ref int p, byte b)
    {
        int at = p + 1;
        bool not = at < pattern.Length && pattern[at] == '^';
        if (not) at++;
        bool match = false;
        while (at < pattern.Length && pattern[at] != ']')
        {
            if (pattern[at] == '\\' && at + 1 < pattern.Length)
            {
                at++;
                if (pattern[at] == b) match = true;
                at++;
            }
            else if (at + 2 < pattern.Length && pattern[at + 1] == '-')
            {
                byte lo = pattern[at], hi = pattern[at + 2];
                if (lo > hi) (lo, hi) = (hi, lo);
                if (b >= lo && b <= hi) match = true;
                at += 3;
            }
            else
            {
                if (pattern[at] == b) match = true;
                at++;
            }
        }
        // An unclosed class ends the pattern (Redis treats the rest as the class).
        p = at < pattern.Length ? at + 1 : at;
        return not ? !match : match;
    }
}
