using Tandem.Checker;

namespace Tandem.Checker.Tests;

public class PropertyTests
{
    private static CheckResult Check(IReadOnlyList<HistoryOp> ops) =>
        LinearizabilityChecker.Check(ops, TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

    private static RandomHistory Generate(int seed)
    {
        var rng = new Random(seed * 7919);
        return RandomHistory.Generate(seed, operations: 60 + rng.Next(120), keys: 1 + rng.Next(3), processes: 2 + rng.Next(6),
            width: rng.Next(60), unknownRate: 0.05, ghostRate: 0.03, failedRate: 0.03);
    }

    [Fact]
    public void HistoriesFromASequentialRun_AreAlwaysLinearizable()
    {
        for (int seed = 1; seed <= 300; seed++)
        {
            var h = Generate(seed);
            var r = Check(h.Ops);
            Assert.True(r.Verdict == Verdict.Linearizable, $"seed {seed}: {r.Summary}\n{string.Join("\n", r.Keys.Select(k => k.Explanation))}");
        }
    }

    [Fact]
    public void HistoriesWithManyUnknownOutcomes_AreNeverReportedAsViolations()
    {
        // Long runs of unknown writes that did take effect, and ghosts that did not: exercises the pruning of
        // unknown ops, which must never lose a linearization. With this many unknowns a few searches may run out
        // of their small budget (Unknown, which is allowed); none may say NotLinearizable.
        int undecided = 0;
        for (int seed = 1; seed <= 200; seed++)
        {
            var h = RandomHistory.Generate(seed, operations: 60, keys: 1 + seed % 2, processes: 4, width: seed % 50,
                unknownRate: 0.3, ghostRate: 0.15, failedRate: 0.05);
            var r = LinearizabilityChecker.Check(h.Ops, TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
            Assert.True(r.Verdict != Verdict.NotLinearizable, $"seed {seed}: {r.Summary}\n{string.Join("\n", r.Keys.Select(k => k.Explanation))}");
            if (r.Verdict == Verdict.Unknown) undecided++;
        }
        Assert.True(undecided <= 10, $"{undecided} of 200 undecided");
    }

    [Fact]
    public void OneGetChangedToAValueNeverWritten_IsCaught()
    {
        int mutated = 0;
        for (int seed = 1; seed <= 300; seed++)
        {
            var h = Generate(seed);
            var rng = new Random(seed);
            var gets = Enumerable.Range(0, h.Ops.Count).Where(i => h.Ops[i] is { Kind: OpKind.Get, Outcome: Outcome.Ok }).ToList();
            if (gets.Count == 0) continue;
            int g = gets[rng.Next(gets.Count)];
            var ops = h.With(g, h.Ops[g] with { Output = $"never-written#{seed}" });
            var r = Check(ops);
            Assert.True(r.Verdict == Verdict.NotLinearizable, $"seed {seed}: {r.Summary}");
            var bad = Assert.Single(r.Keys, k => k.Verdict == Verdict.NotLinearizable);
            Assert.Equal(h.Ops[g].Key, bad.Key);
            Assert.Contains($"never-written#{seed}", bad.Explanation!, StringComparison.Ordinal);
            mutated++;
        }
        Assert.True(mutated > 250);
    }

    [Fact]
    public void OneGetChangedToAnOverwrittenValue_IsCaught()
    {
        // The Get now returns the value of an earlier completed Put that a completed write on the same key
        // definitely overwrote before the Get was called (real time, with margins wider than any interval).
        int mutated = 0;
        for (int seed = 1; seed <= 300; seed++)
        {
            var h = Generate(seed);
            int margin = 2 * h.Width / RandomHistory.Spacing + 1;
            var rng = new Random(seed);
            var candidates = new List<(int Get, string Value)>();
            for (int g = 0; g < h.Ops.Count; g++)
            {
                HistoryOp get = h.Ops[g];
                if (get is not { Kind: OpKind.Get, Outcome: Outcome.Ok }) continue;
                int gp = h.Position[g];
                for (int p = 0; p < h.Ops.Count; p++)
                {
                    HistoryOp put = h.Ops[p];
                    int pp = h.Position[p];
                    if (put is not { Kind: OpKind.Put, Outcome: Outcome.Ok } || put.Key != get.Key || pp < 0 || pp > gp - 2 * margin) continue;
                    bool overwritten = Enumerable.Range(0, h.Ops.Count).Any(b =>
                        h.Ops[b] is { Outcome: Outcome.Ok, Kind: OpKind.Put or OpKind.Append or OpKind.PutHash } w && w.Key == get.Key &&
                        h.Position[b] >= pp + margin && h.Position[b] <= gp - margin);
                    if (overwritten && put.Input != get.Output) candidates.Add((g, put.Input));
                }
            }
            if (candidates.Count == 0) continue;
            var (gi, value) = candidates[rng.Next(candidates.Count)];
            var r = Check(h.With(gi, h.Ops[gi] with { Output = value }));
            Assert.True(r.Verdict == Verdict.NotLinearizable, $"seed {seed}: Get #{gi} -> {value}: {r.Summary}");
            mutated++;
        }
        Assert.True(mutated > 100, $"only {mutated} histories mutated");
    }

    [Fact]
    public void DroppingAnAppliedCompletedWrite_IsCaughtWhenLaterObserved()
    {
        // Remove an Append that a later completed op observed through its length (Append or Get output).
        int mutated = 0;
        for (int seed = 1; seed <= 200; seed++)
        {
            var h = Generate(seed);
            var appends = Enumerable.Range(0, h.Ops.Count).Where(i => h.Ops[i] is { Kind: OpKind.Append, Outcome: Outcome.Ok }).ToList();
            if (appends.Count == 0) continue;
            int a = appends[new Random(seed).Next(appends.Count)];
            var ops = h.Ops.Where((_, i) => i != a).ToList();
            // Replay without it to see whether anything later would notice; only then insist on detection.
            // The "nothing noticed" case is still required to be linearizable.
            var r = Check(ops);
            Assert.NotEqual(Verdict.Unknown, r.Verdict);
            if (r.Verdict == Verdict.NotLinearizable) mutated++;
        }
        Assert.True(mutated > 20, $"only {mutated} histories noticed a dropped append");
    }
}

public class RedisPropertyTests
{
    private static CheckResult Check(IReadOnlyList<HistoryOp> ops, int seconds = 60) =>
        LinearizabilityChecker.Check(ops, TimeSpan.FromSeconds(seconds), TestContext.Current.CancellationToken);

    private static (int Operations, int Keys, int Processes, int Width) Shape(int seed)
    {
        var rng = new Random(seed * 7919);
        return (60 + rng.Next(120), 1 + rng.Next(3), 2 + rng.Next(6), rng.Next(60));
    }

    private static List<HistoryOp> Generate(int seed, double unknownRate = 0.05, int doubleApplyAt = -1, int loseAt = -1)
    {
        var (operations, keys, processes, width) = Shape(seed);
        return RandomRedisHistory.Generate(seed, operations, keys, processes, width, unknownRate, doubleApplyAt, loseAt);
    }

    [Fact]
    public void RedisHistoriesFromASequentialRun_AreAlwaysLinearizable()
    {
        for (int seed = 1; seed <= 300; seed++)
        {
            var r = Check(Generate(seed));
            Assert.True(r.Verdict == Verdict.Linearizable, $"seed {seed}: {r.Summary}\n{string.Join("\n", r.Keys.Select(k => k.Explanation))}");
        }
    }

    [Fact]
    public void RedisHistoriesWithManyUnknownOutcomes_AreNeverReportedAsViolations()
    {
        int undecided = 0;
        for (int seed = 1; seed <= 200; seed++)
        {
            var ops = RandomRedisHistory.Generate(seed, 60, 1 + seed % 2, 4, seed % 50, unknownRate: 0.3);
            var r = Check(ops, seconds: 1);
            Assert.True(r.Verdict != Verdict.NotLinearizable, $"seed {seed}: {r.Summary}\n{string.Join("\n", r.Keys.Select(k => k.Explanation))}");
            if (r.Verdict == Verdict.Unknown) undecided++;
        }
        Assert.True(undecided <= 10, $"{undecided} of 200 undecided");
    }

    [Fact]
    public void AnIncrementAppliedTwice_IsCaughtWhenLaterObserved()
    {
        int caught = 0, tried = 0;
        for (int seed = 1; seed <= 200; seed++)
        {
            List<HistoryOp> plain = Generate(seed, unknownRate: 0);
            int[] incrs = [.. Enumerable.Range(0, plain.Count).Where(i => plain[i].Kind == OpKind.Incr && plain[i].Output != "error")];
            if (incrs.Length == 0) continue;
            int at = incrs[new Random(seed).Next(incrs.Length)];
            var r = Check(Generate(seed, unknownRate: 0, doubleApplyAt: at));
            Assert.NotEqual(Verdict.Unknown, r.Verdict);
            tried++;
            if (r.Verdict == Verdict.NotLinearizable) caught++;
        }
        Assert.True(caught > tried / 3, $"only {caught} of {tried} double increments caught");
    }

    [Fact]
    public void ALostIncrement_IsCaughtWhenLaterObserved()
    {
        int caught = 0, tried = 0;
        for (int seed = 1; seed <= 200; seed++)
        {
            List<HistoryOp> plain = Generate(seed, unknownRate: 0);
            int[] incrs = [.. Enumerable.Range(0, plain.Count).Where(i => plain[i].Kind == OpKind.Incr && plain[i].Output != "error")];
            if (incrs.Length == 0) continue;
            int at = incrs[new Random(seed).Next(incrs.Length)];
            var r = Check(Generate(seed, unknownRate: 0, loseAt: at));
            Assert.NotEqual(Verdict.Unknown, r.Verdict);
            tried++;
            if (r.Verdict == Verdict.NotLinearizable) caught++;
        }
        Assert.True(caught > tried / 3, $"only {caught} of {tried} lost increments caught");
    }

    [Fact]
    public void OneReadChangedToAValueNeverWritten_IsCaught()
    {
        int mutated = 0;
        for (int seed = 1; seed <= 200; seed++)
        {
            List<HistoryOp> ops = Generate(seed);
            int[] reads = [.. Enumerable.Range(0, ops.Count).Where(i => ops[i] is { Outcome: Outcome.Ok, Kind: OpKind.Get or OpKind.Incr or OpKind.GetDel })];
            if (reads.Length == 0) continue;
            int at = reads[new Random(seed).Next(reads.Length)];
            ops[at] = ops[at] with { Output = "-123456789" };
            var r = Check(ops);
            Assert.True(r.Verdict == Verdict.NotLinearizable, $"seed {seed}: {ops[at]}: {r.Summary}");
            mutated++;
        }
        Assert.True(mutated > 150);
    }
}
