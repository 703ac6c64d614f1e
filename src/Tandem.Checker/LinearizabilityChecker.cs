using System.Diagnostics;

namespace Tandem.Checker;

/// <summary>
/// Checks concurrent key-value histories for linearizability against the sequential model of a Tandem key
/// (Get, Put, PutHash, Append, Delete). See docs/checker.md.
/// </summary>
public static class LinearizabilityChecker
{
    /// <summary>Upper bound on the memo of one key's search; past it the key's verdict is <see cref="Verdict.Unknown"/>.</summary>
    internal const long MaxMemoBytesPerKey = 256L << 20;

    /// <summary>
    /// Checks <paramref name="history"/>. The history is split by key (linearizability is compositional) and the
    /// keys are searched in parallel, one per core.
    /// </summary>
    /// <param name="history">Every operation observed, in any order. <see cref="Outcome.Failed"/> ones are dropped.</param>
    /// <param name="budget">
    /// Total wall-clock budget, shared by all keys: a key still undecided when it runs out (or whose search has not
    /// started by then) gets <see cref="Verdict.Unknown"/>. <see cref="Timeout.InfiniteTimeSpan"/> means no limit.
    /// </param>
    /// <param name="ct">Cancels the check by throwing <see cref="OperationCanceledException"/>.</param>
    /// <returns>The overall verdict and one result per key.</returns>
    /// <exception cref="ArgumentException">An <see cref="Outcome.Ok"/> operation returns before its call, or a key is null.</exception>
    public static CheckResult Check(IReadOnlyList<HistoryOp> history, TimeSpan budget, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(history);
        long start = Stopwatch.GetTimestamp();
        long deadline = Deadline(start, budget);

        var byKey = new Dictionary<string, List<HistoryOp>>(StringComparer.Ordinal);
        foreach (HistoryOp op in history)
        {
            ArgumentNullException.ThrowIfNull(op);
            if (op.Key is null) throw new ArgumentException("an operation has a null key", nameof(history));
            if (op.Outcome == Outcome.Failed) continue;
            if (!Enum.IsDefined(op.Kind) || !Enum.IsDefined(op.Outcome))
            {
                throw new ArgumentException($"operation {op} has an undefined kind or outcome", nameof(history));
            }
            KeyOp.ParseFlags(op); // an option the model does not know is refused here, not mid-search
            if (op.Kind == OpKind.Incr && !long.TryParse(op.Input, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out _))
                throw new ArgumentException($"operation {op} has an increment that is not a 64-bit integer", nameof(history));
            if (op.Outcome == Outcome.Ok && op.Return < op.Call)
            {
                throw new ArgumentException($"operation {op} returns before its call", nameof(history));
            }
            if (!byKey.TryGetValue(op.Key, out var list)) byKey[op.Key] = list = [];
            list.Add(op);
        }

        // Biggest keys first, so a long key does not start last.
        var keys = byKey.OrderByDescending(kv => kv.Value.Count).ThenBy(kv => kv.Key, StringComparer.Ordinal).ToArray();
        var results = new KeyResult[keys.Length];
        var options = new ParallelOptions { CancellationToken = ct, MaxDegreeOfParallelism = Environment.ProcessorCount };
        Parallel.For(0, keys.Length, options, i =>
        {
            var (key, ops) = keys[i];
            results[i] = Stopwatch.GetTimestamp() > deadline
                ? new KeyResult(key, Verdict.Unknown, ops.Count, $"key {KeyState.Quote(key)}: undecided: the time budget ran out before its search started.")
                : new KeySearch(key, ops, deadline, MaxMemoBytesPerKey, ct).Run();
        });
        ct.ThrowIfCancellationRequested();

        Array.Sort(results, (a, b) => string.CompareOrdinal(a.Key, b.Key));
        Verdict verdict =
            results.Any(r => r.Verdict == Verdict.NotLinearizable) ? Verdict.NotLinearizable :
            results.Any(r => r.Verdict == Verdict.Unknown) ? Verdict.Unknown :
            Verdict.Linearizable;
        return new CheckResult(verdict, results, Stopwatch.GetElapsedTime(start));
    }

    /// <summary>
    /// Writes a self-contained HTML page (inline SVG) with the timeline of one key: a row per process, a bar from
    /// call to return for each operation, labelled with the operation, its input and output. Unknown-outcome
    /// operations run open-ended to the right edge; failed ones are drawn faded.
    /// </summary>
    /// <param name="history">The history (operations on other keys are ignored).</param>
    /// <param name="key">The key to draw.</param>
    /// <param name="path">The file to write (overwritten).</param>
    public static void WriteTimelineHtml(IReadOnlyList<HistoryOp> history, string key, string path)
    {
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(path);
        File.WriteAllText(path, Timeline.Render(history, key));
    }

    private static long Deadline(long start, TimeSpan budget)
    {
        if (budget == Timeout.InfiniteTimeSpan) return long.MaxValue;
        if (budget <= TimeSpan.Zero) return start - 1;
        double ticks = budget.TotalSeconds * Stopwatch.Frequency;
        return ticks >= long.MaxValue - (double)start ? long.MaxValue : start + (long)ticks;
    }
}
