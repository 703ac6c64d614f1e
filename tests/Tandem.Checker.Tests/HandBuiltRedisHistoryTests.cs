using Tandem.Checker;

namespace Tandem.Checker.Tests;

/// <summary>The Redis operations (Incr, Set with options, GetDel, Expire, Persist, Ttl) on hand-written histories.</summary>
public class HandBuiltRedisHistoryTests
{
    [Fact]
    public void SequentialHistoryOfEveryOperation_IsLinearizable()
    {
        var r = new HistoryBuilder()
            .Incr(1, "1", "1", 0, 10)
            .Incr(1, "5", "6", 20, 30)
            .Incr(2, "-7", "-1", 40, 50)
            .Get(2, "-1", 60, 70)
            .Ttl(1, "-1", 80, 90)
            .Set(1, "abc", "NX", "0", 100, 110)
            .Set(1, "abc", "XX GET EX", "-1", 120, 130)
            .Ttl(2, "99999", 140, 150)
            .Incr(2, "1", "error", 160, 170)
            .Set(2, "10", "KEEPTTL", "1", 180, 190)
            .Ttl(1, "99998", 200, 210)
            .Incr(1, "1", "11", 220, 230)
            .Ttl(1, "99997", 240, 250)
            .Persist(2, "1", 260, 270)
            .Persist(2, "0", 280, 290)
            .Ttl(1, "-1", 300, 310)
            .Expire(1, "XX", "0", 320, 330)
            .Expire(1, "NX", "1", 340, 350)
            .Expire(1, "NX", "0", 360, 370)
            .Set(2, "z", "GET", "11", 380, 390)
            .Ttl(1, "-1", 400, 410)
            .GetDel(1, "z", 420, 430)
            .GetDel(1, "", 440, 450)
            .Ttl(2, "-2", 460, 470)
            .Expire(2, "", "0", 480, 490)
            .Set(1, "n", "XX", "0", 500, 510)
            .Set(1, "n", "NX GET", "", 520, 530)
            .Get(2, "n", 540, 550)
            .Check();
        Assert.True(r.Verdict == Verdict.Linearizable, r.Keys[0].Explanation);
    }

    [Fact]
    public void LostIncrement_IsNotLinearizable()
    {
        var r = new HistoryBuilder()
            .Incr(1, "1", "1", 0, 10)
            .Incr(2, "1", "2", 20, 30)
            .Get(1, "1", 40, 50)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);
        Assert.Contains("the model would return \"2\"", r.Keys[0].Explanation);
    }

    [Fact]
    public void IncrementAppliedTwice_IsNotLinearizable()
    {
        var r = new HistoryBuilder()
            .Incr(1, "1", "1", 0, 10)
            .Get(2, "2", 20, 30)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);

        var counted = new HistoryBuilder()
            .Incr(1, "1", "1", 0, 10)
            .Incr(2, "1", "3", 20, 30) // sees a second, hidden increment
            .Check();
        Assert.Equal(Verdict.NotLinearizable, counted.Verdict);
    }

    [Fact]
    public void ConcurrentIncrements_ReturningTheSameValue_AreNotLinearizable()
    {
        var r = new HistoryBuilder()
            .Incr(1, "1", "1", 0, 100)
            .Incr(2, "1", "1", 10, 90)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);

        var ok = new HistoryBuilder()
            .Incr(1, "1", "2", 0, 100)
            .Incr(2, "1", "1", 10, 90)
            .Check();
        Assert.Equal(Verdict.Linearizable, ok.Verdict);
    }

    [Fact]
    public void StaleReadAfterAnIncrement_IsNotLinearizable()
    {
        var r = new HistoryBuilder()
            .Put(1, "4", 0, 10)
            .Incr(1, "1", "5", 20, 30)
            .Get(2, "4", 40, 50)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);
    }

    [Fact]
    public void UnknownIncrements_ExplainAtMostTheirOwnCount()
    {
        var ok = new HistoryBuilder()
            .Incr(1, "1", "1", 0, 10)
            .Incr(2, "1", null, 5, 0, Outcome.Unknown)
            .Incr(3, "1", null, 6, 0, Outcome.Unknown)
            .Get(1, "3", 40, 50)
            .Get(1, "3", 60, 70)
            .Check();
        Assert.Equal(Verdict.Linearizable, ok.Verdict);

        var tooMany = new HistoryBuilder()
            .Incr(1, "1", "1", 0, 10)
            .Incr(2, "1", null, 5, 0, Outcome.Unknown)
            .Incr(3, "1", null, 6, 0, Outcome.Unknown)
            .Get(1, "4", 40, 50)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, tooMany.Verdict);
    }

    [Fact]
    public void IncrementOfANonInteger_IsAnError_AndLeavesTheValue()
    {
        foreach (string value in new[] { "abc", "007", "-0", " 1", "+1", "1.5", "99999999999999999999" })
        {
            var error = new HistoryBuilder()
                .Put(1, value, 0, 10)
                .Incr(1, "1", "error", 20, 30)
                .Get(1, value, 40, 50)
                .Check();
            Assert.True(error.Verdict == Verdict.Linearizable, $"{value}: {error.Keys[0].Explanation}");
            var counted = new HistoryBuilder()
                .Put(1, value, 0, 10)
                .Incr(1, "1", "1", 20, 30)
                .Check();
            Assert.Equal(Verdict.NotLinearizable, counted.Verdict);
        }
        var overflow = new HistoryBuilder()
            .Put(1, "9223372036854775807", 0, 10)
            .Incr(1, "1", "error", 20, 30)
            .Incr(1, "-1", "9223372036854775806", 40, 50)
            .Check();
        Assert.Equal(Verdict.Linearizable, overflow.Verdict);
    }

    [Fact]
    public void TwoConcurrentSetNx_OnAMissingKey_CannotBothWin()
    {
        var r = new HistoryBuilder()
            .Set(1, "a", "NX", "1", 0, 100)
            .Set(2, "b", "NX", "1", 10, 90)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);

        var ok = new HistoryBuilder()
            .Set(1, "a", "NX", "1", 0, 100)
            .Set(2, "b", "NX", "0", 10, 90)
            .Get(1, "a", 110, 120)
            .Check();
        Assert.Equal(Verdict.Linearizable, ok.Verdict);
    }

    [Fact]
    public void GetSet_ThatReturnsAnOverwrittenValue_IsNotLinearizable()
    {
        var r = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .Put(1, "b", 20, 30)
            .Set(2, "c", "GET", "a", 40, 50)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);

        var twice = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .Set(2, "b", "GET", "a", 20, 100)
            .Set(3, "c", "GET", "a", 30, 90) // both cannot have replaced "a"
            .Check();
        Assert.Equal(Verdict.NotLinearizable, twice.Verdict);
    }

    [Fact]
    public void GetDel_ThatReturnsAValueTwice_IsNotLinearizable()
    {
        var r = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .GetDel(2, "a", 20, 30)
            .GetDel(3, "a", 40, 50)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);
    }

    [Fact]
    public void Ttl_FollowsTheDeadlineFlag_ThroughSetExpirePersistAndKeepTtl()
    {
        Verdict V(HistoryBuilder b) => b.Check().Verdict;
        Assert.Equal(Verdict.NotLinearizable, V(new HistoryBuilder().Set(1, "a", "EX", "1", 0, 10).Ttl(1, "-1", 20, 30)));
        Assert.Equal(Verdict.NotLinearizable, V(new HistoryBuilder().Set(1, "a", "EX", "1", 0, 10).Put(1, "b", 20, 30).Ttl(1, "5", 40, 50)));
        Assert.Equal(Verdict.Linearizable, V(new HistoryBuilder().Set(1, "a", "EX", "1", 0, 10).Set(1, "b", "KEEPTTL", "1", 20, 30).Ttl(1, "5", 40, 50)));
        Assert.Equal(Verdict.Linearizable, V(new HistoryBuilder().Set(1, "a", "EX", "1", 0, 10).Incr(1, "1", "error", 20, 30).Append(1, "b", "2", 40, 50).Ttl(1, "5", 60, 70)));
        Assert.Equal(Verdict.NotLinearizable, V(new HistoryBuilder().Set(1, "a", "EX", "1", 0, 10).Persist(1, "1", 20, 30).Ttl(1, "5", 40, 50)));
        Assert.Equal(Verdict.NotLinearizable, V(new HistoryBuilder().Ttl(1, "-1", 0, 10)));
        Assert.Equal(Verdict.NotLinearizable, V(new HistoryBuilder().Put(1, "a", 0, 10).Ttl(1, "-2", 20, 30)));
        Assert.Equal(Verdict.NotLinearizable, V(new HistoryBuilder().Put(1, "a", 0, 10).Expire(1, "", "1", 20, 30).Expire(2, "NX", "1", 40, 50)));
        Assert.Equal(Verdict.NotLinearizable, V(new HistoryBuilder().Expire(1, "", "1", 0, 10)));
        Assert.Equal(Verdict.Linearizable, V(new HistoryBuilder().Put(1, "a", 0, 10).Expire(1, "", "1", 20, 100).Ttl(2, "-1", 30, 40).Ttl(2, "50", 110, 120)));
    }

    [Fact]
    public void UnknownSetNx_MayOrMayNotHaveWon()
    {
        var r = new HistoryBuilder()
            .Set(1, "a", "NX", null, 0, 0, Outcome.Unknown)
            .Get(2, "a", 20, 30)
            .Set(3, "b", "NX", "0", 40, 50)
            .Get(2, "a", 60, 70)
            .Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);

        var neither = new HistoryBuilder()
            .Set(1, "a", "NX", null, 0, 0, Outcome.Unknown)
            .Set(3, "b", "NX", "1", 40, 50)
            .Get(2, "a", 60, 70)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, neither.Verdict);
    }

    [Fact]
    public void UnknownOptionsOrIncrements_AreRefused()
    {
        HistoryOp[] badOption = [new(1, OpKind.Set, "k", "v", "1", 0, 10, Outcome.Ok, "PX")];
        Assert.Throws<ArgumentException>(() => LinearizabilityChecker.Check(badOption, TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken));
        HistoryOp[] both = [new(1, OpKind.Set, "k", "v", "1", 0, 10, Outcome.Ok, "NX XX")];
        Assert.Throws<ArgumentException>(() => LinearizabilityChecker.Check(both, TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken));
        HistoryOp[] badIncr = [new(1, OpKind.Incr, "k", "one", "1", 0, 10, Outcome.Ok)];
        Assert.Throws<ArgumentException>(() => LinearizabilityChecker.Check(badIncr, TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken));
    }
}
