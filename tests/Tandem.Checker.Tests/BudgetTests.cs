using Tandem.Checker;

namespace Tandem.Checker.Tests;

public class BudgetTests
{
    [Fact]
    public void ZeroBudget_GivesUnknown()
    {
        var ops = new HistoryBuilder().Put(1, "a", 0, 10).Get(2, "a", 20, 30).Ops;
        var r = LinearizabilityChecker.Check(ops, TimeSpan.Zero, TestContext.Current.CancellationToken);
        Assert.Equal(Verdict.Unknown, r.Verdict);
        Assert.Equal(Verdict.Unknown, r.Keys[0].Verdict);
        Assert.Contains("budget", r.Keys[0].Explanation!, StringComparison.Ordinal);
    }

    [Fact]
    public void HardHistory_OutOfBudget_GivesUnknown_NotAPass()
    {
        // 40 fully concurrent puts, then a read of a value none of them wrote: refuting it means trying every
        // subset of the puts, far more than 200 ms allows.
        var b = new HistoryBuilder();
        for (int i = 0; i < 40; i++) b.Put(i, "v" + i, 0, 1000);
        b.Get(99, "nobody", 2000, 2010);
        var r = LinearizabilityChecker.Check(b.Ops, TimeSpan.FromMilliseconds(200), TestContext.Current.CancellationToken);
        Assert.Equal(Verdict.Unknown, r.Verdict);
        Assert.StartsWith("Unknown:", r.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownKey_DoesNotHideAViolationElsewhere()
    {
        var b = new HistoryBuilder();
        for (int i = 0; i < 40; i++) b.Put(i, "v" + i, 0, 1000);
        b.Get(99, "nobody", 2000, 2010);
        b.Put(1, "a", 0, 10, key: "other").Get(2, "stale", 20, 30, key: "other");
        var r = LinearizabilityChecker.Check(b.Ops, TimeSpan.FromMilliseconds(200), TestContext.Current.CancellationToken);
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);
    }

    [Fact]
    public void Cancellation_Throws()
    {
        var b = new HistoryBuilder();
        for (int i = 0; i < 40; i++) b.Put(i, "v" + i, 0, 1000);
        b.Get(99, "nobody", 2000, 2010);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        Assert.ThrowsAny<OperationCanceledException>(() => LinearizabilityChecker.Check(b.Ops, Timeout.InfiniteTimeSpan, cts.Token));
    }
}
