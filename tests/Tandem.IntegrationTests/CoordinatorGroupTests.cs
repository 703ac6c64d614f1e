using System.Diagnostics;
using System.Text.Json;
using Tandem.Client;
using Tandem.Protocol;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>
/// The coordinator as a replicated, persistent group (real Raft members on loopback, each with a data
/// directory): restarts keep the view history, a leader change causes no failover by itself and delays one by
/// at most an election, members are replaced without downtime, and lost data is said, never papered over.
/// </summary>
public class CoordinatorGroupTests(ITestOutputHelper output)
{
    [Fact]
    public async Task GroupOfOne_RestartedOnItsDirectory_KeepsTheView_AndALaterFailoverKeepsTheData()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        TandemClient client = cluster.CreateClient();
        for (int i = 0; i < 50; i++) await client.PutAsync($"k{i}", $"v{i}", Timeout());
        View before = cluster.View;

        // A coordinator that forgot its views would start a new history at view 1, which the serving
        // primary never acknowledges, and a later failover would wedge or lose the data.
        await cluster.RestartCoordinatorAsync(cluster.Coordinators[0]);
        await cluster.WaitForLeaderAsync(Patience);
        Assert.True(cluster.View.Number >= before.Number, $"view {cluster.View.Number} after a restart at view {before.Number}");
        Assert.Equal(before.Primary, cluster.View.Primary);

        await cluster.KillAsync(p);
        await client.PutAsync("after", "1", Timeout());
        Assert.Equal(b.Address, cluster.View.Primary);
        for (int i = 0; i < 50; i++) Assert.Equal($"v{i}", await client.GetAsync($"k{i}", Timeout()));
    }

    [Fact]
    public async Task LeaderKilled_CausesNoFailover_AndAPrimaryKilledWithIt_FailsOverWithinAnElection()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Coordinators = 3 });
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        TandemClient client = cluster.CreateClient();
        await client.PutAsync("k", "v", Timeout());
        View before = cluster.View;

        // A leader change alone: the new leader takes the view's servers as alive for a dead time, so the view stays.
        TestCoordinator leader = await cluster.WaitForLeaderAsync(Patience);
        var election = Stopwatch.StartNew();
        await cluster.KillCoordinatorAsync(leader);
        TestCoordinator next = await cluster.WaitForLeaderAsync(Patience);
        election.Stop();
        Assert.NotSame(leader, next);
        await Task.Delay(cluster.DeadTime * 3, TestContext.Current.CancellationToken); // let any wrong failover happen
        Assert.Equal(before, cluster.View);
        Assert.Equal("v", await client.GetAsync("k", Timeout()));
        await cluster.RestartCoordinatorAsync(leader);

        // The leader and the primary die together: the backup is promoted once a leader is elected and the dead
        // time has passed.
        leader = await cluster.WaitForLeaderAsync(Patience);
        var failover = Stopwatch.StartNew();
        await Task.WhenAll(cluster.KillCoordinatorAsync(leader), cluster.KillAsync(p));
        await client.PutAsync("k", "after", Timeout());
        failover.Stop();
        Assert.Equal(b.Address, cluster.View.Primary);
        output.WriteLine($"re-election after the leader's death: {election.ElapsedMilliseconds} ms; " +
                         $"leader and primary killed together -> first write accepted: {failover.ElapsedMilliseconds} ms " +
                         $"(dead time {cluster.DeadTime.TotalMilliseconds} ms)");
    }

    [Fact]
    public async Task FollowerThatWasDown_CatchesUpOnEveryViewItMissed()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Coordinators = 3 });
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        TestCoordinator leader = await cluster.WaitForLeaderAsync(Patience);
        TestCoordinator follower = cluster.Coordinators.First(c => c != leader);
        await cluster.KillCoordinatorAsync(follower);

        TestServer spare = await cluster.StartServerAsync();
        await cluster.KillAsync(p);
        await cluster.WaitForBackupAsync(spare, Patience);
        View now = cluster.View;

        await cluster.RestartCoordinatorAsync(follower);
        await Wait.UntilAsync(() => follower.Node?.ViewService.CurrentView == now ? now : (View?)null, Patience,
            "the restarted follower to apply the views it missed");
        Assert.True(follower.Node!.ViewService.PrimaryAcked);
        Assert.False(follower.Node.ViewService.IsLeading);
    }

    [Fact]
    public async Task FollowersRedirectToTheLeader_AndStatusListsEveryMember()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Coordinators = 3 });
        await cluster.StartServerAsync();
        TestCoordinator leader = await cluster.WaitForLeaderAsync(Patience);
        TestCoordinator follower = cluster.Coordinators.First(c => c != leader);
        // A follower learns who leads from the leader's first heartbeat to it.
        await Wait.UntilAsync(() => follower.Node!.Group!.LeaderAddress == leader.Address ? true : (bool?)null, Patience,
            "the follower to know the leader");

        RespValue redirect = await SendAsync(follower.Address, Commands.VsView);
        Assert.True(redirect.IsError);
        Assert.Equal($"NOTLEADER leader {leader.Address}", redirect.Text);
        Assert.Equal("PONG", (await SendAsync(follower.Address, "PING")).Text);

        // A client given only a follower still finds the leader.
        await using var client = new TandemClient(new TandemClientOptions { Coordinator = follower.Address, OperationTimeout = Patience });
        await client.PutAsync("k", "v", Timeout());
        IReadOnlyList<CoordinatorMemberStatus> members = await new TandemClient(new TandemClientOptions { Coordinator = cluster.CoordinatorAddress })
            .GetCoordinatorMembersAsync(Timeout());
        Assert.Equal(3, members.Count);
        Assert.Single(members, m => m.Role == "leader" && m.Address == leader.Address);
        Assert.Equal(2, members.Count(m => m.Role == "follower" && m.Leader == leader.Address));
        Assert.All(members, m => Assert.True(m.Term >= 1));

        await cluster.KillCoordinatorAsync(follower);
        members = await new TandemClient(new TandemClientOptions { Coordinator = cluster.CoordinatorAddress }).GetCoordinatorMembersAsync(Timeout());
        Assert.Equal("unreachable", members.Single(m => m.Address == follower.Address).Role);
    }

    [Fact]
    public async Task Member_ReplacedByANewOne_WithoutDowntime_AndTheNewGroupSurvivesItsLeadersDeath()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Coordinators = 3 });
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        TandemClient client = cluster.CreateClient(TimeSpan.FromSeconds(10));
        using var stop = new CancellationTokenSource();
        int writes = 0;
        Task writer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await client.PutAsync("counter", (++writes).ToString(System.Globalization.CultureInfo.InvariantCulture), Timeout());
                await Task.Delay(5, TestContext.Current.CancellationToken);
            }
        }, TestContext.Current.CancellationToken);

        // A member is lost for good; a new one on another address replaces it: add the new one, remove the dead.
        TestCoordinator leader = await cluster.WaitForLeaderAsync(Patience);
        TestCoordinator dead = cluster.Coordinators.First(c => c != leader);
        await cluster.KillCoordinatorAsync(dead);
        TestCoordinator[] kept = cluster.Coordinators.Where(c => c != dead).ToArray();
        TestCoordinator added = await cluster.StartNewCoordinatorAsync(kept);
        await using var admin = new TandemClient(new TandemClientOptions { Coordinator = cluster.CoordinatorAddress, OperationTimeout = TimeSpan.FromSeconds(60) });
        await admin.ChangeCoordinatorGroupAsync(add: true, added.Peer.RaftEndPoint.ToString(), Timeout(TimeSpan.FromSeconds(60)));
        await admin.ChangeCoordinatorGroupAsync(add: false, dead.Peer.RaftEndPoint.ToString(), Timeout(TimeSpan.FromSeconds(60)));
        await Wait.UntilAsync(() => added.Node?.ViewService.CurrentView == cluster.View ? cluster.View : (View?)null, Patience,
            "the new member to hold the views");
        foreach (TestCoordinator member in (TestCoordinator[])[.. kept, added])
        {
            IReadOnlyList<System.Net.EndPoint> configuration = member.Node!.Group!.Configuration;
            Assert.Equal(3, configuration.Count);
            Assert.DoesNotContain(dead.Peer.RaftEndPoint, configuration);
            Assert.Contains(added.Peer.RaftEndPoint, configuration);
        }

        // The group is now {kept..., added}: with its leader dead, the two others still elect and fail over.
        leader = await cluster.WaitForLeaderAsync(Patience);
        await cluster.KillCoordinatorAsync(leader);
        await cluster.WaitForLeaderAsync(Patience);
        await cluster.KillAsync(p);
        await Wait.UntilAsync(() => cluster.View.Primary == b.Address ? cluster.View : (View?)null, Patience, "the backup to be promoted");
        int before = writes;
        await Wait.UntilAsync(() => writes > before + 10 ? writes : (int?)null, Patience, "writes to go on");
        stop.Cancel();
        await writer; // every write of the run succeeded within its timeout: no downtime
        Assert.Equal(writes.ToString(System.Globalization.CultureInfo.InvariantCulture), await client.GetAsync("counter", Timeout()));
    }

    [Fact]
    public async Task EveryCopyLost_StatusSaysTheDataIsLost_AndOnlyTheOperatorStartsANewHistory()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        TandemClient client = cluster.CreateClient();
        await client.PutAsync("k", "v", Timeout());
        await using var admin = new TandemClient(new TandemClientOptions { Coordinator = cluster.CoordinatorAddress, OperationTimeout = Patience });
        TandemException refused = await Assert.ThrowsAsync<TandemException>(() => admin.StartNewHistoryAsync(false, Timeout()));
        Assert.Contains("the data is not lost", refused.Message);

        // Both servers of the view restart empty: nobody holds the data any more.
        await Task.WhenAll(cluster.RestartAsync(p), cluster.RestartAsync(b));
        await Wait.UntilAsync(() => DataLost(admin) ? true : (bool?)null, Patience, "the status to say the data is lost");
        await Task.Delay(cluster.DeadTime * 3, TestContext.Current.CancellationToken);
        Assert.True(DataLost(admin)); // and nothing was promoted silently
        Assert.NotEqual("", cluster.View.Primary);
        Assert.False(p.Node!.Replica.IsServingPrimary || b.Node!.Replica.IsServingPrimary);

        View fresh = await admin.StartNewHistoryAsync(false, Timeout());
        Assert.Contains(fresh.Primary, new[] { p.Address, b.Address });
        Assert.Equal("", await client.GetAsync("k", Timeout())); // the new history starts empty
        await client.PutAsync("k", "new", Timeout());
        Assert.Equal("new", await client.GetAsync("k", Timeout()));
        Assert.False(DataLost(admin));
    }

    private static bool DataLost(TandemClient admin)
    {
        string json = admin.GetStatusJsonAsync(Timeout()).GetAwaiter().GetResult();
        using JsonDocument status = JsonDocument.Parse(json);
        return status.RootElement.GetProperty("dataLost").GetBoolean();
    }
}
