using Tandem.Client;
using Tandem.Protocol;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>Regression tests for the known bugs of a published implementation of this design.</summary>
public class SeedBugTests
{
    [Fact]
    public async Task Write_WhenBackupCannotBeReached_IsNeverAnsweredOk()
    {
        // A backup timeout far beyond the commit timeout keeps the unreachable backup in the view for the test
        // (its replacement is FaultToleranceTests' subject).
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions
        {
            ConfigureServer = o => o with { BackupTimeout = TimeSpan.FromMinutes(2) },
        });
        (TestServer s1, TestServer s2) = await cluster.StartPrimaryAndBackupAsync(Patience);

        // s2 stays alive for the coordinator but drops everything the primary forwards.
        s2.Faults.DropAllRequests = true;
        RespValue reply = await SendAsync(s1.Address, "SET", "k", "v");
        Assert.True(reply.IsError, $"the primary answered {reply} although its backup never took the write");
        Assert.Equal(ErrorCodes.TryAgain, reply.ErrorCode);
        Assert.Equal(s2.Address, cluster.View.Backup);

        s2.Faults.DropAllRequests = false;
        TandemClient ck = cluster.CreateClient();
        await ck.PutAsync("k", "v2", Timeout());
        await cluster.KillAsync(s1);
        await cluster.WaitForPrimaryAsync(s2, Patience);
        await CheckAsync(ck, "k", "v2");
    }

    [Fact]
    public async Task ConcurrentPutHash_OnOneKey_NeverReadTheSameOldValue()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer s1, TestServer s2) = await cluster.StartPrimaryAndBackupAsync(Patience);

        var calls = await Task.WhenAll(Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
        {
            TandemClient ck = cluster.CreateClient();
            var mine = new List<(string Old, string Arg)>();
            for (int i = 0; i < 50; i++)
            {
                string arg = $"{c}.{i}";
                mine.Add((await ck.PutHashAsync("h", arg, Timeout()), arg));
            }
            return mine;
        })));

        // Every call saw a distinct old value, and together the calls form one chain from "" to the final value.
        var byOld = calls.SelectMany(c => c).ToDictionary(c => c.Old, c => c.Arg);
        string value = "";
        for (int i = 0; i < byOld.Count; i++)
            value = KeyValueScenarioTests.Fnv(value, byOld[value]);
        TandemClient reader = cluster.CreateClient();
        await CheckAsync(reader, "h", value);

        await cluster.KillAsync(s1);
        await cluster.WaitForPrimaryAsync(s2, Patience);
        await CheckAsync(reader, "h", value);
    }

    [Fact]
    public async Task RetriedPutHash_AfterStateTransferAndFailover_ReturnsTheSavedOldValue()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TestServer s1 = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(s1, Patience);
        await SendAsync(s1.Address, "SET", "k", "first");

        // Applied while s1 is alone: the saved reply reaches the backup only through the snapshot.
        RespValue original = await SendAsync(s1.Address, "XREQ", "77", "1", "0", "PUTHASH", "k", "x");
        Assert.Equal("first", original.Text);
        TestServer s2 = await cluster.StartServerAsync();
        await cluster.WaitForBackupAsync(s2, Patience);

        await cluster.KillAsync(s1);
        await cluster.WaitForPrimaryAsync(s2, Patience);
        RespValue retried = await SendAsync(s2.Address, "XREQ", "77", "1", "0", "PUTHASH", "k", "x");
        Assert.Equal("first", retried.Text);
        RespValue value = await SendAsync(s2.Address, "GET", "k");
        Assert.Equal(KeyValueScenarioTests.Fnv("first", "x"), value.Text);
    }

    [Fact]
    public async Task BackupRestartedWithinDeadWindow_IsResyncedBeforeItCanBePromoted()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer s1, TestServer s2) = await cluster.StartPrimaryAndBackupAsync(Patience);
        TandemClient ck = cluster.CreateClient();
        for (int i = 0; i < 50; i++) await ck.PutAsync($"k{i}", $"v{i}", Timeout());

        long viewBefore = cluster.View.Number;
        await cluster.RestartAsync(s2); // far quicker than the dead time
        await cluster.WaitForViewAsync(v => v.Number > viewBefore, Patience, "a new view after the backup restarted");
        await cluster.WaitForBackupAsync(s2, Patience);

        await cluster.KillAsync(s1);
        await cluster.WaitForPrimaryAsync(s2, Patience);
        for (int i = 0; i < 50; i++) await CheckAsync(ck, $"k{i}", $"v{i}");
    }

    [Fact]
    public async Task ViewAcknowledged_OnlyAfterNewBackupHoldsAllState()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TestServer s1 = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(s1, Patience);
        TandemClient ck = cluster.CreateClient();
        await Task.WhenAll(Enumerable.Range(0, 20_000).Select(i => ck.PutAsync($"key{i}", $"value{i}", Timeout())));

        TestServer s2 = await cluster.StartServerAsync();
        await cluster.WaitForBackupAsync(s2, Patience); // the primary acked the view
        await cluster.KillAsync(s1);                     // at once
        await cluster.WaitForPrimaryAsync(s2, Patience);
        Assert.Equal(20_000, s2.Node!.Replica.KeyCount);
        await CheckAsync(ck, "key0", "value0");
        await CheckAsync(ck, "key19999", "value19999");
    }
}
