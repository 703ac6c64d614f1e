using System.Diagnostics;
using Tandem.Checker;

namespace Tandem.Checker.Tests;

/// <summary>
/// Size benchmarks. They print their time and assert only the verdict, never the time (the machine is shared).
/// </summary>
public class BenchmarkTests
{
    /// <summary>The reference figure: 100,000 ops over 20 keys, ~8 concurrent processes, a few hundred Unknown ops.</summary>
    [Fact]
    public void Benchmark_100kOps_20Keys_8Processes()
    {
        Run(operations: 100_000, width: 40, unknownRate: 0.0015, ghostRate: 0.0015);
    }

    /// <summary>The same history with one read in the middle changed to a value never written.</summary>
    [Fact]
    public void Benchmark_100kOps_20Keys_8Processes_OneBadRead()
    {
        Run(operations: 100_000, width: 40, unknownRate: 0.0015, ghostRate: 0.0015, mutate: true);
    }

    private static void Run(int operations, int width, double unknownRate, double ghostRate, bool mutate = false)
    {
        // Intervals are up to 2*width wide and points 10 apart: ~8 ops in flight at once across all keys.
        var h = RandomHistory.Generate(seed: 42, operations, keys: 20, processes: 8, width, unknownRate, ghostRate, failedRate: 0.001);
        int unknown = h.Ops.Count(o => o.Outcome == Outcome.Unknown);
        IReadOnlyList<HistoryOp> ops = h.Ops;
        if (mutate)
        {
            int i = ops.Count / 2;
            while (ops[i] is not { Kind: OpKind.Get, Outcome: Outcome.Ok }) i++;
            ops = h.With(i, ops[i] with { Output = "bogus" });
        }
        var sw = Stopwatch.StartNew();
        var r = LinearizabilityChecker.Check(ops, TimeSpan.FromMinutes(5), TestContext.Current.CancellationToken);
        sw.Stop();
        string line = $"{ops.Count} ops ({unknown} unknown), {Environment.ProcessorCount} cores: {r.Summary}; wall {sw.Elapsed.TotalSeconds:0.00} s";
        TestContext.Current.SendDiagnosticMessage(line);
        TestContext.Current.TestOutputHelper?.WriteLine(line);
        Console.WriteLine(line);
        Assert.Equal(mutate ? Verdict.NotLinearizable : Verdict.Linearizable, r.Verdict);
    }
}
