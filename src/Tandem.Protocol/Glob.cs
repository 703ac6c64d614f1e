namespace Tandem.Protocol;

/// <summary>Redis's glob patterns as far as <c>CONFIG GET</c> and <c>COMMAND LIST FILTERBY PATTERN</c> need them.</summary>
public static class Glob
{
    /// <summary>
    /// True when <paramref name="text"/> matches <paramref name="pattern"/>: <c>*</c> any run, <c>?</c> any one
    /// character, anything else itself (case-sensitive; callers lower-case both sides as Redis does).
    /// </summary>
    public static bool Match(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        // Two pointers, backtracking only to the last '*': linear in practice, never exponential.
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t])) { p++; t++; }
            else if (p < pattern.Length && pattern[p] == '*') { star = p++; mark = t; }
            else if (star >= 0) { p = star + 1; t = ++mark; }
            else return false;
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }
}
