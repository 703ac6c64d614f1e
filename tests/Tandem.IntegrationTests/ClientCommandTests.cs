using Tandem.Client;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>TandemClient's string, counter, expiry and transaction calls against a real in-process cluster.</summary>
public class ClientCommandTests
{
    [Fact]
    public async Task Increment_WhoseReplyIsLost_ThenThePrimaryDies_IsCountedExactlyOnce()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer s1, TestServer s2) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using TandemClient client = cluster.CreateClient(Patience * 2);
        Assert.Equal(1, await client.IncrAsync("n", Timeout()));

        // The second increment is applied on s1 and forwarded to s2, but its reply is lost; s1 never answers its
        // retries, and then dies. The retry that reaches s2, now primary, must get the saved reply, not a third value.
        var firstAttempt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int attempts = 0;
        s1.Faults.Rule = cmd =>
        {
            if (cmd.Name != Commands.ExactlyOnce || cmd.Count != 6 || cmd.Text(4) != "INCR") return null;
            if (Interlocked.Increment(ref attempts) > 1) return Delivery.Drop;
            firstAttempt.TrySetResult();
            return Delivery.LoseReply;
        };
        Task<long> second = client.IncrAsync("n", Timeout(Patience * 2));
        await firstAttempt.Task.WaitAsync(Timeout());
        long applied = s1.Node!.Replica.LastApplied;
        await Wait.UntilAsync(() => s2.Node?.Replica.LastApplied >= applied, Patience, "the backup applies the lost-reply increment");
        await cluster.KillAsync(s1);
        await cluster.WaitForPrimaryAsync(s2, Patience);

        Assert.Equal(2, await second);
        Assert.True(Volatile.Read(ref attempts) >= 1);
        Assert.Equal("2", await client.GetAsync("n", Timeout()));
        Assert.Equal(3, await client.IncrAsync("n", Timeout()));
    }

    [Fact]
    public async Task Transaction_WhoseReplyIsLost_ThenThePrimaryDies_IsAppliedExactlyOnce()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer s1, TestServer s2) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using TandemClient client = cluster.CreateClient(Patience * 2);
        await client.PutAsync("warm", "up", Timeout());

        int attempts = 0;
        s1.Faults.Rule = cmd =>
        {
            if (cmd.Name != Commands.ExactlyOnce || cmd.Text(4) != "EXEC") return null;
            return Interlocked.Increment(ref attempts) == 1 ? Delivery.LoseReply : Delivery.Drop;
        };
        Task<IReadOnlyList<RespValue>> tx = client.TransactionAsync([["INCRBY", "a", "5"], ["DECRBY", "b", "5"], ["GET", "a"]], Timeout(Patience * 2));
        await Wait.UntilAsync(() => Volatile.Read(ref attempts) >= 1, Patience, "the transaction reaches s1");
        long applied = s1.Node!.Replica.LastApplied;
        await Wait.UntilAsync(() => s2.Node?.Replica.LastApplied >= applied, Patience, "the backup applies the transaction");
        await cluster.KillAsync(s1);
        await cluster.WaitForPrimaryAsync(s2, Patience);

        IReadOnlyList<RespValue> replies = await tx;
        Assert.Equal("[:5, :-5, $5]", $"[{replies[0]}, {replies[1]}, ${replies[2].Text}]");
        Assert.Equal(["5", "-5"], await client.MGetAsync(["a", "b"], Timeout()));
    }

    [Fact]
    public async Task EveryNewCall_AgainstRealServers_GetsRedisReplies()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        await cluster.StartPrimaryAndBackupAsync(Patience);
        await using TandemClient client = cluster.CreateClient();
        CancellationToken ct = Timeout();

        Assert.Equal(10, await client.IncrByAsync("c", 10, ct));
        Assert.Equal(9, await client.DecrAsync("c", ct));
        Assert.Equal(6, await client.DecrByAsync("c", 3, ct));
        Assert.Equal(7, await client.IncrAsync("c", ct));
        Assert.Equal(7.5, await client.IncrByFloatAsync("c", 0.5, ct));
        await client.PutAsync("s", "text", ct);
        var notInteger = await Assert.ThrowsAsync<TandemException>(() => client.IncrAsync("s", ct));
        Assert.Equal("ERR value is not an integer or out of range", notInteger.Message);

        Assert.Equal(new SetResult(false, null), await client.SetAsync("s", "v", new SetOptions { Condition = SetCondition.IfMissing }, ct));
        Assert.Equal(new SetResult(true, "text"), await client.SetAsync("s", "v", new SetOptions { Condition = SetCondition.IfExists, ReturnOldValue = true }, ct));
        Assert.Equal(new SetResult(true, null), await client.SetAsync("t", "v", SetOptions.ExpireInSeconds(1000) with { Condition = SetCondition.IfMissing }, ct));
        Assert.InRange(await client.TtlAsync("t", ct), 990, 1000);
        Assert.InRange(await client.PTtlAsync("t", ct), 990_000, 1_000_000);
        Assert.Equal(-1, await client.TtlAsync("s", ct));
        Assert.Equal(-2, await client.TtlAsync("missing", ct));
        Assert.Equal(new SetResult(true, "v"), await client.SetAsync("t", "w", new SetOptions { Expiry = SetExpiry.KeepTtl, ReturnOldValue = true }, ct));
        Assert.InRange(await client.TtlAsync("t", ct), 900, 1000);
        Assert.False(await client.ExpireAsync("t", 5000, ExpireCondition.IfNoExpiry, ct));
        Assert.True(await client.ExpireAsync("t", 5000, ExpireCondition.IfGreater, ct));
        Assert.False(await client.PExpireAsync("t", 10, ExpireCondition.IfGreater, ct));
        Assert.True(await client.PersistAsync("t", ct));
        Assert.False(await client.PersistAsync("t", ct));
        Assert.True(await client.PExpireAsync("t", 100_000, ExpireCondition.IfLess, ct));

        Assert.Equal("w", await client.GetSetAsync("t", "x", ct));
        Assert.Equal(-1, await client.TtlAsync("t", ct)); // GETSET drops the deadline, as SET does
        Assert.Null(await client.GetSetAsync("u", "1", ct));
        Assert.Equal("1", await client.GetDelAsync("u", ct));
        Assert.Null(await client.GetDelAsync("u", ct));

        await client.MSetAsync([new("m1", "a"), new("m2", "b")], ct);
        Assert.False(await client.MSetNxAsync([new("m2", "c"), new("m3", "d")], ct));
        Assert.True(await client.MSetNxAsync([new("m3", "d"), new("m4", "e")], ct));
        Assert.Equal(["a", "b", "d", "e", null], await client.MGetAsync(["m1", "m2", "m3", "m4", "m5"], ct));
        Assert.Equal(5, await client.ExistsAsync(["m1", "m1", "m2", "m3", "m4", "m5"], ct));
        Assert.Equal(4, await client.DeleteAsync(["m1", "m2", "m3", "m4", "m5"], ct));
        Assert.Equal(0, await client.ExistsAsync(["m1"], ct));

        IReadOnlyList<RespValue> replies = await client.TransactionAsync([["SET", "x", "1"], ["INCR", "x"], ["INCR", "s"], ["GET", "x"]], ct);
        Assert.Equal(2, replies[1].Integer);
        Assert.Equal("ERR value is not an integer or out of range", replies[2].Text);
        Assert.Equal("2", replies[3].Text);
        await Assert.ThrowsAsync<TandemException>(() => client.TransactionAsync([["NOSUCHCOMMAND", "x"]], ct));
    }
}
