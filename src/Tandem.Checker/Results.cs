using System.Globalization;
using System.Text;

namespace Tandem.Checker;

/// <summary>The answer for a key or a whole history.</summary>
public enum Verdict
{
    /// <summary>Some sequential order respects real time and the key-value model.</summary>
    Linearizable,
    /// <summary>No such order exists: the history is a violation.</summary>
    NotLinearizable,
    /// <summary>The search ran out of time or memory before deciding. Never read this as a pass.</summary>
    Unknown,
}

/// <summary>The verdict for the operations on one key.</summary>
/// <param name="Key">The key.</param>
/// <param name="Verdict">The verdict for this key.</param>
/// <param name="Operations">Operations on this key that took part (every outcome except <see cref="Outcome.Failed"/>).</param>
/// <param name="Explanation">
/// For <see cref="Verdict.NotLinearizable"/>: the longest linearizable prefix found, the operations that could not be
/// placed next and the states reachable at that point. For <see cref="Verdict.Unknown"/>: why the search stopped.
/// <c>null</c> for <see cref="Verdict.Linearizable"/>.
/// </param>
public sealed record KeyResult(string Key, Verdict Verdict, int Operations, string? Explanation);

/// <summary>The verdict for a whole history.</summary>
/// <param name="Verdict">
/// <see cref="Verdict.NotLinearizable"/> if any key is; else <see cref="Verdict.Unknown"/> if any key ran out of budget;
/// else <see cref="Verdict.Linearizable"/>.
/// </param>
/// <param name="Keys">One result per key, ordered by key (ordinal).</param>
/// <param name="Elapsed">Wall-clock time the check took.</param>
public sealed record CheckResult(Verdict Verdict, IReadOnlyList<KeyResult> Keys, TimeSpan Elapsed)
{
    /// <summary>One line: the verdict, the keys that failed or were undecided, operation count and time.</summary>
    public string Summary
    {
        get
        {
            var bad = Keys.Where(k => k.Verdict == Verdict.NotLinearizable).Select(k => k.Key).ToList();
            var unknown = Keys.Where(k => k.Verdict == Verdict.Unknown).Select(k => k.Key).ToList();
            var sb = new StringBuilder();
            sb.Append(CultureInfo.InvariantCulture, $"{Verdict}: {Keys.Count} keys, {Keys.Sum(k => (long)k.Operations)} operations, ");
            sb.Append(CultureInfo.InvariantCulture, $"{bad.Count} not linearizable{List(bad)}, {unknown.Count} unknown{List(unknown)}, ");
            sb.Append(CultureInfo.InvariantCulture, $"{Elapsed.TotalSeconds:0.000} s");
            return sb.ToString();
        }
    }

    private static string List(List<string> keys) =>
        keys.Count == 0 ? "" : " (" + string.Join(", ", keys.Take(5)) + (keys.Count > 5 ? ", ..." : "") + ")";
}
