using Tandem.Checker;

namespace Tandem.Checker.Tests;

public class HandBuiltHistoryTests
{
    [Fact]
    public void SequentialHistory_IsLinearizable()
    {
        var r = new HistoryBuilder()
            .Get(1, "", 0, 10)
            .Put(1, "x", 20, 30)
            .Get(2, "x", 40, 50)
            .PutHash(2, "b", "x", 60, 70)
            .Get(1, "1063475327", 80, 90)
            .Append(1, "!", "11", 100, 110)
            .Delete(2, "1", 120, 130)
            .Delete(2, "0", 140, 150)
            .Get(1, "", 160, 170)
            .Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);
        Assert.Equal(9, Assert.Single(r.Keys).Operations);
        Assert.Null(r.Keys[0].Explanation);
    }

    [Fact]
    public void EmptyHistory_IsLinearizable()
    {
        var r = LinearizabilityChecker.Check([], TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        Assert.Equal(Verdict.Linearizable, r.Verdict);
        Assert.Empty(r.Keys);
    }

    [Fact]
    public void PutOfEmptyValue_MakesTheKeyPresent()
    {
        var r = new HistoryBuilder()
            .Put(1, "", 0, 10)
            .Get(1, "", 20, 30)
            .Delete(1, "1", 40, 50)
            .Append(1, "", "0", 60, 70)
            .Delete(1, "1", 80, 90)
            .Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);

        var wrong = new HistoryBuilder()
            .Put(1, "", 0, 10)
            .Delete(1, "0", 20, 30)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, wrong.Verdict);
    }

    [Fact]
    public void StaleRead_IsNotLinearizable()
    {
        var r = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .Put(1, "b", 20, 30)
            .Get(2, "a", 40, 50)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);
        string explanation = r.Keys[0].Explanation!;
        Assert.Contains("\"k\"", explanation, StringComparison.Ordinal);
        Assert.Contains("Get() -> \"a\"", explanation, StringComparison.Ordinal);
        Assert.Contains("\"b\"", explanation, StringComparison.Ordinal); // the state reachable
        Assert.Contains("call 40", explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void StaleRead_ConcurrentWithTheWrite_IsLinearizable()
    {
        var r = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .Put(1, "b", 20, 60)
            .Get(2, "a", 40, 50)
            .Get(3, "b", 70, 80)
            .Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);
    }

    [Fact]
    public void LostWrite_IsNotLinearizable()
    {
        var r = new HistoryBuilder()
            .Append(1, "a", "1", 0, 10)
            .Append(2, "b", "2", 20, 30)
            .Get(3, "a", 40, 50)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);
    }

    [Fact]
    public void DuplicatedPutHash_IsNotLinearizable()
    {
        // PutHash(x) applied twice: the next reader sees hash(hash("" + x) + x).
        string once = RandomHistory.Fnv1a32("x"u8.ToArray()).ToString(System.Globalization.CultureInfo.InvariantCulture);
        string twice = RandomHistory.Fnv1a32(System.Text.Encoding.UTF8.GetBytes(once + "x")).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var good = new HistoryBuilder().PutHash(1, "x", "", 0, 10).Get(2, once, 20, 30).Check();
        Assert.Equal(Verdict.Linearizable, good.Verdict);

        var bad = new HistoryBuilder().PutHash(1, "x", "", 0, 10).Get(2, twice, 20, 30).Check();
        Assert.Equal(Verdict.NotLinearizable, bad.Verdict);

        // Two PutHash calls that both read the same old value: one of them was lost.
        var both = new HistoryBuilder().PutHash(1, "x", "", 0, 10).PutHash(2, "y", "", 5, 15).Check();
        Assert.Equal(Verdict.NotLinearizable, both.Verdict);
    }

    [Fact]
    public void PutHash_StoresTheDecimalFnv1aOfOldPlusInput()
    {
        var r = new HistoryBuilder().Put(1, "x", 0, 10).PutHash(1, "b", "x", 20, 30).Get(1, "1063475327", 40, 50).Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);
    }

    [Fact]
    public void ReadOfAValueNeverWritten_IsNotLinearizable()
    {
        var r = new HistoryBuilder()
            .Put(1, "a", 0, 100)
            .Put(2, "b", 0, 100)
            .Get(3, "c", 50, 150)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);
        Assert.Contains("\"c\"", r.Keys[0].Explanation!, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownWriteThatHappened_IsLinearizable()
    {
        var r = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .Put(2, "b", 20, -1, Outcome.Unknown)
            .Get(3, "b", 1000, 1010)
            .Get(3, "b", 1020, 1030)
            .Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);
    }

    [Fact]
    public void UnknownWriteThatDidNotHappen_IsLinearizable()
    {
        var r = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .Put(2, "b", 20, 0, Outcome.Unknown)
            .Get(3, "a", 1000, 1010)
            .Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);
    }

    [Fact]
    public void UnknownWrite_TakesEffectOnlyAfterItsCall()
    {
        var r = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .Get(3, "b", 20, 30)
            .Put(2, "b", 40, 0, Outcome.Unknown)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);
    }

    [Fact]
    public void UnknownAppend_TakesEffectAtMostOnce()
    {
        var once = new HistoryBuilder()
            .Append(2, "a", null, 0, 0, Outcome.Unknown)
            .Get(1, "a", 20, 30)
            .Get(1, "a", 40, 50)
            .Check();
        Assert.Equal(Verdict.Linearizable, once.Verdict);

        var twice = new HistoryBuilder()
            .Append(2, "a", null, 0, 0, Outcome.Unknown)
            .Get(1, "a", 20, 30)
            .Get(1, "aa", 40, 50)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, twice.Verdict);
    }

    [Fact]
    public void LongRunOfUnknownWrites_IsFound()
    {
        // Five unknown writes in a row must all be placed before the read (longer than the quick first pass allows).
        var r = new HistoryBuilder()
            .Put(1, "s", 0, 10)
            .Put(2, "x", 20, 0, Outcome.Unknown)
            .Append(3, "a", null, 21, 0, Outcome.Unknown)
            .PutHash(4, "h", null, 22, 0, Outcome.Unknown)
            .Append(5, "b", null, 23, 0, Outcome.Unknown)
            .Append(6, "c", null, 24, 0, Outcome.Unknown)
            .Append(7, "never", null, 25, 0, Outcome.Unknown)
            .Get(8, RandomHistory.Fnv1a32("xah"u8.ToArray()).ToString(System.Globalization.CultureInfo.InvariantCulture) + "cb", 100, 110)
            .Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);
    }

    [Fact]
    public void UnknownWrite_OutputIsNotChecked()
    {
        var r = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .PutHash(2, "z", "nonsense", 20, 0, Outcome.Unknown)
            .Get(3, "a", 1000, 1010)
            .Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);
    }

    [Fact]
    public void FailedWrite_IsExcluded()
    {
        var notApplied = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .Put(2, "b", 20, 30, Outcome.Failed)
            .Get(3, "a", 40, 50)
            .Check();
        Assert.Equal(Verdict.Linearizable, notApplied.Verdict);
        Assert.Equal(2, notApplied.Keys[0].Operations);

        var seen = new HistoryBuilder()
            .Put(1, "a", 0, 10)
            .Put(2, "b", 20, 30, Outcome.Failed)
            .Get(3, "b", 40, 50)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, seen.Verdict);
    }

    [Fact]
    public void ConcurrentAppends_AreLinearizableOnlyInTheOrderTheOutputsShow()
    {
        // x and y overlap; the lengths say y went first, and the later read agrees.
        var r = new HistoryBuilder()
            .Append(1, "x", "2", 0, 100)
            .Append(2, "y", "1", 10, 90)
            .Get(3, "yx", 200, 210)
            .Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);

        var contradiction = new HistoryBuilder()
            .Append(1, "x", "2", 0, 100)
            .Append(2, "y", "1", 10, 90)
            .Get(3, "xy", 200, 210)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, contradiction.Verdict);
    }

    [Fact]
    public void ConcurrentPutAndGets_NeedTheWriteBetweenTheReads()
    {
        // Get "" must go before Put b, Get "b" after it; the reads overlap the write, not each other.
        var r = new HistoryBuilder()
            .Put(1, "b", 0, 100)
            .Get(2, "b", 10, 20)
            .Get(3, "", 30, 40)
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);

        var ok = new HistoryBuilder()
            .Put(1, "b", 0, 100)
            .Get(2, "", 10, 20)
            .Get(3, "b", 30, 40)
            .Check();
        Assert.Equal(Verdict.Linearizable, ok.Verdict);
    }

    [Fact]
    public void TouchingIntervals_CountAsConcurrent()
    {
        var r = new HistoryBuilder().Get(1, "a", 0, 10).Put(2, "a", 10, 20).Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);
        var apart = new HistoryBuilder().Get(1, "a", 0, 9).Put(2, "a", 10, 20).Check();
        Assert.Equal(Verdict.NotLinearizable, apart.Verdict);
    }

    [Fact]
    public void NullOutputOnACompletedOp_IsNotCheckedButStillOrdered()
    {
        var r = new HistoryBuilder().Put(1, "a", 0, 10).Add(2, OpKind.Get, "", null, 20, 30).Get(3, "a", 40, 50).Check();
        Assert.Equal(Verdict.Linearizable, r.Verdict);
    }

    [Fact]
    public void Keys_AreCheckedIndependently()
    {
        var r = new HistoryBuilder()
            .Put(1, "a", 0, 10, key: "good")
            .Get(2, "a", 20, 30, key: "good")
            .Put(1, "a", 0, 10, key: "bad")
            .Get(2, "zzz", 20, 30, key: "bad")
            .Check();
        Assert.Equal(Verdict.NotLinearizable, r.Verdict);
        Assert.Equal(["bad", "good"], r.Keys.Select(k => k.Key));
        Assert.Equal(Verdict.NotLinearizable, r.Keys[0].Verdict);
        Assert.Equal(Verdict.Linearizable, r.Keys[1].Verdict);
        Assert.StartsWith("NotLinearizable:", r.Summary, StringComparison.Ordinal);
        Assert.Contains("bad", r.Summary, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', r.Summary);
    }

    [Fact]
    public void ReturnBeforeCall_IsRejected()
    {
        var b = new HistoryBuilder().Put(1, "a", 10, 5);
        Assert.Throws<ArgumentException>(() => b.Check());
    }
}
