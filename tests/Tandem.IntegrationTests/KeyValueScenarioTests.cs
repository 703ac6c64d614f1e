using System.Text;
using Tandem.Client;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>The key/value scenarios of the classic primary/backup suite, with their assertions.</summary>
public class KeyValueScenarioTests
{
    [Fact]
    public async Task TestBasicFail_BackupTakesOverAndFreshServerNeverAnswers()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TandemClient ck = cluster.CreateClient();

        TestServer s1 = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(s1, Patience);
        await ck.PutAsync("111", "v1", Timeout());
        await CheckAsync(ck, "111", "v1");
        await ck.PutAsync("2", "v2", Timeout());
        await CheckAsync(ck, "2", "v2");
        await ck.PutAsync("1", "v1a", Timeout());
        await CheckAsync(ck, "1", "v1a");

        TestServer s2 = await cluster.StartServerAsync();
        await cluster.WaitForBackupAsync(s2, Patience);
        await ck.PutAsync("3", "33", Timeout());
        await CheckAsync(ck, "3", "33");
        await Task.Delay(cluster.Options.PingInterval * 3, TestContext.Current.CancellationToken);
        await ck.PutAsync("4", "44", Timeout());
        await CheckAsync(ck, "4", "44");

        await cluster.KillAsync(s1);
        await cluster.WaitForPrimaryAsync(s2, Patience);
        await CheckAsync(ck, "1", "v1a");
        await CheckAsync(ck, "3", "33");
        await CheckAsync(ck, "4", "44");

        await cluster.KillAsync(s2);
        TestServer s3 = await cluster.StartServerAsync();
        TandemClient fresh = cluster.CreateClient();
        Task<string> get = fresh.GetAsync("1", Timeout(TimeSpan.FromSeconds(5)));
        await Task.WhenAny(get, Task.Delay(TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken));
        Assert.False(get.IsCompletedSuccessfully, "a Get returned with no initialized primary");
        Assert.NotEqual(s3.Address, cluster.View.Primary);
        await Assert.ThrowsAnyAsync<Exception>(() => get);
    }

    [Fact]
    public async Task TestAtMostOnce_PutHashChainOnUnreliableServer_EachCallAppliedOnce()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TestServer s1 = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(s1, Patience);
        cluster.SetUnreliable(s1, true);
        TandemClient ck = cluster.CreateClient();

        string previous = "";
        for (int i = 0; i < 100; i++)
        {
            string old = await ck.PutHashAsync("a", i.ToString(), Timeout());
            Assert.Equal(previous, old);
            previous = Fnv(old, i.ToString());
        }
        Assert.Equal("3868028174", previous);
        await CheckAsync(ck, "a", "3868028174");
    }

    [Fact]
    public async Task TestFailPut_WritesSucceedAcrossBackupAndPrimaryDeaths()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TestServer s1 = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(s1, Patience);
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        TestServer s2 = await cluster.StartServerAsync();
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        TestServer s3 = await cluster.StartServerAsync();
        await cluster.WaitForBackupAsync(s2, Patience);
        Assert.Equal(s1.Address, cluster.View.Primary);

        TandemClient ck = cluster.CreateClient();
        await ck.PutAsync("a", "aa", Timeout());
        await ck.PutAsync("b", "bb", Timeout());
        await ck.PutAsync("c", "cc", Timeout());
        await CheckAsync(ck, "a", "aa");
        await CheckAsync(ck, "b", "bb");
        await CheckAsync(ck, "c", "cc");

        await cluster.KillAsync(s2);
        await ck.PutAsync("a", "aaa", Timeout());
        await CheckAsync(ck, "a", "aaa");
        await cluster.WaitForBackupAsync(s3, Patience);
        Assert.Equal(s1.Address, cluster.View.Primary);

        await cluster.KillAsync(s1);
        await ck.PutAsync("b", "bbb", Timeout());
        await CheckAsync(ck, "a", "aaa");
        await CheckAsync(ck, "b", "bbb");
        await CheckAsync(ck, "c", "cc");
        Assert.Equal(s3.Address, cluster.View.Primary);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TestConcurrentSame_PrimaryAndBackupApplyTheSameOrder(bool unreliable)
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer s1, TestServer s2) = await cluster.StartPrimaryAndBackupAsync(Patience);
        cluster.SetUnreliable(s1, unreliable);
        cluster.SetUnreliable(s2, unreliable);

        DateTime end = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        var writers = Enumerable.Range(0, 3).Select(w => Task.Run(async () =>
        {
            TandemClient ck = cluster.CreateClient();
            var random = new Random(w);
            while (DateTime.UtcNow < end)
                await ck.PutAsync(random.Next(2).ToString(), random.Next().ToString(), Timeout());
        })).ToArray();
        await Task.WhenAll(writers);

        cluster.SetUnreliable(s1, false);
        cluster.SetUnreliable(s2, false);
        TandemClient reader = cluster.CreateClient();
        string v0 = await reader.GetAsync("0", Timeout());
        string v1 = await reader.GetAsync("1", Timeout());
        Assert.NotEqual("", v0);
        Assert.NotEqual("", v1);

        await cluster.KillAsync(s1);
        await cluster.WaitForPrimaryAsync(s2, Patience);
        await CheckAsync(reader, "0", v0);
        await CheckAsync(reader, "1", v1);
    }

    [Fact]
    public async Task TestRepeatedCrash_ReadsSeeLastWritesWhileServersCrash()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        List<TestServer> servers = await StartThreeServersAsync(cluster);

        using var done = new CancellationTokenSource();
        Task killer = KillerAsync(cluster, servers, TimeSpan.FromSeconds(20), done);
        var clients = Enumerable.Range(0, 2).Select(c => Task.Run(async () =>
        {
            TandemClient ck = cluster.CreateClient();
            var last = new Dictionary<string, string>();
            var random = new Random(c);
            int ops = 0;
            while (!done.IsCancellationRequested)
            {
                string key = $"{c}-{random.Next(10)}";
                if (last.TryGetValue(key, out string? expected))
                    Assert.Equal(expected, await ck.GetAsync(key, Timeout(TimeSpan.FromSeconds(30))));
                string value = random.Next().ToString();
                await ck.PutAsync(key, value, Timeout(TimeSpan.FromSeconds(30)));
                last[key] = value;
                ops++;
                await Task.Delay(10, TestContext.Current.CancellationToken);
            }
            return ops;
        })).ToArray();

        await killer;
        int[] counts = await Task.WhenAll(clients);
        Assert.All(counts, n => Assert.True(n > 10, $"a client made only {n} operations"));

        TandemClient final = cluster.CreateClient();
        await final.PutAsync("aaa", "bbb", Timeout());
        await CheckAsync(final, "aaa", "bbb");
    }

    [Fact]
    public async Task TestRepeatedCrashUnreliable_PutHashChainsStayExact()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        List<TestServer> servers = await StartThreeServersAsync(cluster);
        foreach (TestServer s in servers) cluster.SetUnreliable(s, true);

        using var done = new CancellationTokenSource();
        Task killer = KillerAsync(cluster, servers, TimeSpan.FromSeconds(20), done);
        var clients = Enumerable.Range(0, 2).Select(c => Task.Run(async () =>
        {
            TandemClient ck = cluster.CreateClient();
            string key = $"chain-{c}", previous = "";
            int n = 0;
            while (!done.IsCancellationRequested)
            {
                string arg = n.ToString();
                string old = await ck.PutHashAsync(key, arg, Timeout(TimeSpan.FromSeconds(30)));
                Assert.Equal(previous, old);
                previous = Fnv(old, arg);
                Assert.Equal(previous, await ck.GetAsync(key, Timeout(TimeSpan.FromSeconds(30))));
                n++;
            }
            return n;
        })).ToArray();

        await killer;
        int[] counts = await Task.WhenAll(clients);
        Assert.All(counts, n => Assert.True(n > 5, $"a client made only {n} PutHash calls"));

        foreach (TestServer s in servers) cluster.SetUnreliable(s, false);
        TandemClient final = cluster.CreateClient();
        await final.PutAsync("aaa", "bbb", Timeout());
        await CheckAsync(final, "aaa", "bbb");
    }

    [Fact]
    public async Task TestPartition1_OldPrimaryDoesNotServeGets()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (_, _, _, Task<RespValue> staleGet) = await PartitionOldPrimaryAsync(cluster, TimeSpan.FromSeconds(4));
        TandemClient ck2 = cluster.CreateClient();
        await ck2.PutAsync("a", "111", Timeout());
        await CheckAsync(ck2, "a", "111");

        await Task.Delay(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        AssertNotAnswered(staleGet);
        await CheckAsync(ck2, "a", "111");
    }

    [Fact]
    public async Task TestPartition2_PartitionedOldPrimaryDoesNotCompleteGets()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (_, TestServer s2, TandemClient ck, Task<RespValue> staleGet) = await PartitionOldPrimaryAsync(cluster, TimeSpan.FromSeconds(5));
        TestServer s3 = await cluster.StartServerAsync();
        await cluster.WaitForBackupAsync(s3, Patience);
        await ck.PutAsync("a", "2", Timeout());
        await cluster.KillAsync(s2);

        await Task.Delay(TimeSpan.FromSeconds(6), TestContext.Current.CancellationToken);
        AssertNotAnswered(staleGet);
        await CheckAsync(ck, "a", "2");
    }

    /// <summary>
    /// The start both partition scenarios share: s1 primary, s2 backup, a=1; then s1 is cut from the coordinator
    /// only, a Get of a is sent to s1 through a proxy that holds it for <paramref name="delay"/>, and s2 takes over.
    /// </summary>
    private static async Task<(TestServer S1, TestServer S2, TandemClient Client, Task<RespValue> StaleGet)> PartitionOldPrimaryAsync(
        TestCluster cluster, TimeSpan delay)
    {
        (TestServer s1, TestServer s2) = await cluster.StartPrimaryAndBackupAsync(Patience);
        TandemClient ck = cluster.CreateClient();
        await ck.PutAsync("a", "1", Timeout());
        await CheckAsync(ck, "a", "1");

        cluster.IsolateFromCoordinator(s1);
        DelayProxy proxy = await cluster.DelayClientsAsync(s1, delay);
        Task<RespValue> staleGet = SendAsync(proxy.Address, "GET", "a");
        await cluster.WaitForPrimaryAsync(s2, Patience);
        return (s1, s2, ck, staleGet);
    }

    /// <summary>The Get sent to a deposed primary has not returned a value (an error reply or no reply is fine).</summary>
    private static void AssertNotAnswered(Task<RespValue> staleGet)
    {
        if (!staleGet.IsCompletedSuccessfully) return;
        RespValue reply = staleGet.Result;
        Assert.True(reply.IsError, $"the deposed primary answered the Get with {reply}");
    }

    internal static string Fnv(string old, string value) =>
        Encoding.ASCII.GetString(Fnv1a.PutHashValue(Encoding.UTF8.GetBytes(old), Encoding.UTF8.GetBytes(value)));

    /// <summary>Three servers: a primary, a synced backup and a spare.</summary>
    private static async Task<List<TestServer>> StartThreeServersAsync(TestCluster cluster)
    {
        (TestServer primary, TestServer backup) = await cluster.StartPrimaryAndBackupAsync(Patience);
        return [primary, backup, await cluster.StartServerAsync()];
    }

    internal static async Task KillerAsync(TestCluster cluster, List<TestServer> servers, TimeSpan duration, CancellationTokenSource done)
    {
        var random = new Random(42);
        DateTime end = DateTime.UtcNow + duration;
        try
        {
            while (DateTime.UtcNow < end)
            {
                TestServer victim = servers[random.Next(servers.Count)];
                await cluster.KillAsync(victim);
                await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
                await cluster.RestartAsync(victim);
                await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
            }
        }
        finally
        {
            done.Cancel();
        }
    }
}
