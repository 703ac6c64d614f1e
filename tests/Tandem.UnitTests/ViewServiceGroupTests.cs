using Microsoft.Extensions.Time.Testing;
using Tandem.Coordinator;
using Tandem.Protocol;
using Xunit;

namespace Tandem.UnitTests;

/// <summary>
/// The view service as a member of the coordinator group, on a fake clock, with a log whose commits the test
/// controls (held, committed, dropped) and whose leadership it moves: the rules must hold across leader changes.
/// The real group (DotNext Raft, on disk) is exercised by the integration tests.
/// </summary>
public class ViewServiceGroupTests
{
    private static readonly TimeSpan P = TimeSpan.FromMilliseconds(100);
    private const int D = 5;

    /// <summary>A log shared by the members: one leader; commits may be held until the test lets them go.</summary>
    private sealed class Group
    {
        private readonly List<ViewService> _members = new();
        private readonly Dictionary<ViewService, int> _appliedUpTo = new();

        /// <summary>Members cut off from the leader: they apply nothing until reconnected.</summary>
        public HashSet<ViewService> Partitioned { get; } = new();
        private readonly List<(ViewService From, ViewRecord Record, TaskCompletionSource<bool> Done)> _held = new();

        public FakeTimeProvider Clock { get; } = new();
        public bool HoldCommits { get; set; }
        public ViewService? Leader { get; private set; }
        public List<ViewRecord> Committed { get; } = new();

        public ViewService AddMember()
        {
            var log = new MemberLog(this);
            var member = new ViewService(new ViewServiceOptions { PingInterval = P, DeadPings = D, TimeProvider = Clock }, log);
            log.Self = member;
            _members.Add(member);
            return member;
        }

        /// <summary>A new member that has applied every record committed so far.</summary>
        public ViewService AddCaughtUpMember()
        {
            ViewService member = AddMember();
            CatchUp();
            return member;
        }

        /// <summary>Moves the leadership to <paramref name="next"/>, which has applied every committed record.</summary>
        public void Elect(ViewService next)
        {
            Leader?.StopLeading();
            Leader = next;
            next.StartLeading();
        }

        public Task<bool> Commit(ViewService from, ViewRecord record)
        {
            if (from != Leader) return Task.FromResult(false);
            var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            _held.Add((from, record, done));
            if (!HoldCommits) ReleaseAll();
            return done.Task;
        }

        /// <summary>Every held commit is committed in order and applied on every member.</summary>
        public void ReleaseAll()
        {
            foreach ((ViewService _, ViewRecord record, TaskCompletionSource<bool> done) in _held.ToArray())
            {
                Committed.Add(record);
                CatchUp();
                done.SetResult(true);
            }
            _held.Clear();
        }

        /// <summary>Every connected member applies the committed records it has not applied yet, in log order.</summary>
        public void CatchUp()
        {
            foreach (ViewService m in _members.Where(m => !Partitioned.Contains(m)))
            {
                int from = _appliedUpTo.GetValueOrDefault(m);
                for (int i = from; i < Committed.Count; i++) m.Apply(Committed[i]);
                _appliedUpTo[m] = Committed.Count;
            }
        }

        /// <summary>Every held commit is lost (its leader was deposed before a majority had it).</summary>
        public void DropAll()
        {
            foreach ((ViewService _, ViewRecord _, TaskCompletionSource<bool> done) in _held) done.SetResult(false);
            _held.Clear();
        }

        public int HeldCount => _held.Count;

        public void Sleep(int intervals = 1)
        {
            for (int i = 0; i < intervals; i++) Clock.Advance(P);
        }

        private sealed class MemberLog(Group group) : IViewLog
        {
            public ViewService? Self { get; set; }

            public Task<bool> CommitAsync(ViewRecord record) => group.Commit(Self!, record);
        }
    }

    /// <summary>Waits for the engine's in-flight proposal to reach the log (it commits off the engine's lock).</summary>
    private static async Task ProposalReachedAsync(Group group, int held)
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (group.HeldCount < held)
        {
            Assert.True(DateTime.UtcNow < deadline, "the proposal never reached the log");
            await Task.Delay(1);
        }
    }

    private static async Task SettleAsync(ViewService vs)
    {
        if (vs.PendingCommit is { } pending) await pending.WaitAsync(TimeSpan.FromSeconds(10));
    }

    /// <summary>Runs the cluster to view 2 (a primary, b backup), acknowledged.</summary>
    private static async Task<ViewService> StartAsync(Group group)
    {
        ViewService leader = group.AddMember();
        group.Elect(leader);
        leader.Ping("a:1", 0);
        group.Sleep();
        leader.Tick();
        await SettleAsync(leader);
        leader.Ping("a:1", 1);
        await SettleAsync(leader);
        leader.Ping("b:2", 0);
        group.Sleep();
        leader.Tick();
        await SettleAsync(leader);
        leader.Ping("a:1", 2);
        await SettleAsync(leader);
        Assert.Equal(new View(2, "a:1", "b:2"), leader.CurrentView);
        Assert.True(leader.PrimaryAcked);
        return leader;
    }

    [Fact]
    public async Task ViewChange_IsSeenByNoOne_UntilCommitted()
    {
        var group = new Group();
        ViewService leader = await StartAsync(group);
        ViewService follower = group.AddCaughtUpMember();

        group.HoldCommits = true;
        group.Sleep(D); // a silent; b pings
        leader.Ping("b:2", 2);
        leader.Tick();
        await ProposalReachedAsync(group, 1);
        // The decision is made but not committed: pings still get the old view, on every member.
        Assert.Equal(new View(2, "a:1", "b:2"), leader.Ping("b:2", 2));
        Assert.Equal(2, follower.CurrentView.Number);
        leader.Tick(); // one proposal at a time
        Assert.Equal(1, group.HeldCount);

        group.ReleaseAll();
        await SettleAsync(leader);
        Assert.Equal(new View(3, "b:2", ""), leader.CurrentView);
        Assert.Equal(new View(3, "b:2", ""), follower.CurrentView);
        Assert.False(follower.PrimaryAcked);
    }

    [Fact]
    public async Task PartitionedFollower_CatchesUpOnEveryRecordInOrder()
    {
        var group = new Group();
        ViewService leader = await StartAsync(group);
        ViewService follower = group.AddCaughtUpMember();
        Assert.Equal(new View(2, "a:1", "b:2"), follower.CurrentView);
        var seen = new List<View>();
        follower.ViewChanged += seen.Add;

        group.Partitioned.Add(follower);
        group.Sleep(D); // a dies: b is promoted, then c becomes the backup and b acks
        leader.Ping("b:2", 2);
        leader.Tick();
        await SettleAsync(leader);
        leader.Ping("b:2", 3);
        await SettleAsync(leader);
        group.Sleep();
        leader.Ping("b:2", 3);
        leader.Ping("c:3", 0);
        leader.Tick();
        await SettleAsync(leader);
        Assert.Equal(new View(4, "b:2", "c:3"), leader.CurrentView);
        Assert.Equal(new View(2, "a:1", "b:2"), follower.CurrentView); // it heard nothing

        group.Partitioned.Clear();
        group.CatchUp();
        Assert.Equal(leader.CurrentView, follower.CurrentView);
        Assert.Equal(leader.PrimaryAcked, follower.PrimaryAcked);
        Assert.Equal(3, follower.GetStatus().LastAcked?.Number);
        Assert.Equal([new View(3, "b:2", ""), new View(4, "b:2", "c:3")], seen);
    }

    [Fact]
    public async Task Ack_CountsOnlyOnceCommitted_AndOnEveryMember()
    {
        var group = new Group();
        ViewService leader = group.AddMember();
        ViewService follower = group.AddMember();
        group.Elect(leader);
        leader.Ping("a:1", 0);
        group.Sleep();
        leader.Tick();
        await SettleAsync(leader);

        group.HoldCommits = true;
        leader.Ping("a:1", 1, -1, out bool acked);
        Assert.False(acked);
        await ProposalReachedAsync(group, 1);
        leader.Ping("a:1", 1, -1, out acked);
        Assert.False(acked);
        group.ReleaseAll();
        await SettleAsync(leader);
        leader.Ping("a:1", 1, -1, out acked);
        Assert.True(acked);
        Assert.True(follower.PrimaryAcked);
        Assert.Equal(1, follower.GetStatus().LastAcked?.Number);
    }

    [Fact]
    public async Task LeaderChange_InTheMiddleOfAViewChange_TheLostProposalNeverTakesEffect()
    {
        var group = new Group();
        ViewService first = await StartAsync(group);
        ViewService second = group.AddCaughtUpMember();

        group.HoldCommits = true;
        group.Sleep(D); // a silent: the first leader decides to promote b
        first.Ping("b:2", 2);
        first.Tick();
        await ProposalReachedAsync(group, 1);

        // The first leader is deposed before a majority had the record: it is lost.
        group.Elect(second);
        group.DropAll();
        await SettleAsync(first);
        Assert.Equal(new View(2, "a:1", "b:2"), second.CurrentView);
        Assert.False(first.IsLeading);
        first.Tick();
        Assert.Equal(0, group.HeldCount); // a deposed leader decides nothing

        // The new leader takes a and b as alive for one dead time: the leader change alone causes no failover.
        group.HoldCommits = false;
        for (int i = 0; i < D - 1; i++)
        {
            second.Ping("b:2", 2);
            group.Sleep();
            second.Tick();
        }
        Assert.Equal(2, second.CurrentView.Number);
        // Then a, silent all along, is dead: b, which pinged this leader, is promoted.
        group.Sleep(2);
        second.Ping("b:2", 2);
        second.Tick();
        await SettleAsync(second);
        Assert.Equal(new View(3, "b:2", ""), second.CurrentView);
    }

    [Fact]
    public async Task LeaderChange_AfterTheRecordReachedAMajority_TheNewLeaderAppliesItFirst()
    {
        var group = new Group();
        ViewService first = await StartAsync(group);
        ViewService second = group.AddCaughtUpMember();

        group.HoldCommits = true;
        group.Sleep(D);
        first.Ping("b:2", 2);
        first.Tick();
        await ProposalReachedAsync(group, 1);
        // The record is committed (the next leader commits it in its term), then the leadership moves.
        group.ReleaseAll();
        group.Elect(second);
        Assert.Equal(new View(3, "b:2", ""), second.CurrentView);
        Assert.False(second.PrimaryAcked);
    }

    [Fact]
    public async Task NewLeader_NeverPromotesAServer_ItHasNotHeardFrom()
    {
        var group = new Group();
        ViewService first = await StartAsync(group);
        ViewService second = group.AddCaughtUpMember();
        group.Elect(second);

        // Neither a nor b pings the new leader: a is dead after the grace interval, but b is never promoted.
        for (int i = 0; i < D * 4; i++)
        {
            group.Sleep();
            second.Tick();
        }
        await SettleAsync(second);
        Assert.Equal(new View(2, "a:1", "b:2"), second.CurrentView);

        // Nor is an idle server taken as backup before it pinged.
        second.Ping("b:2", 2);
        second.Tick();
        await SettleAsync(second);
        Assert.Equal(new View(3, "b:2", ""), second.CurrentView);
    }

    [Fact]
    public async Task PrimaryThatRestartsWhileItsAckCommits_IsNotTakenAsUsable()
    {
        var group = new Group();
        ViewService leader = group.AddMember();
        group.Elect(leader);
        leader.Ping("a:1", 0);
        leader.Ping("b:2", 0);
        group.Sleep();
        leader.Tick();
        await SettleAsync(leader);
        leader.Ping("a:1", 1);
        await SettleAsync(leader);
        group.Sleep();
        leader.Ping("b:2", 0);
        leader.Tick();
        await SettleAsync(leader);
        Assert.Equal(new View(2, "a:1", "b:2"), leader.CurrentView);

        group.HoldCommits = true;
        leader.Ping("a:1", 2); // the ack goes into the log...
        await ProposalReachedAsync(group, 1);
        leader.Ping("a:1", 0); // ...and a restarts, empty, before it commits
        group.ReleaseAll();
        await SettleAsync(leader);
        Assert.True(leader.PrimaryAcked);
        Assert.True(leader.GetStatus().Servers.Single(s => s.Address == "a:1").Restarted);

        // So b, the synced backup, takes over.
        group.HoldCommits = false;
        leader.Ping("b:2", 2);
        group.Sleep();
        leader.Tick();
        await SettleAsync(leader);
        Assert.Equal("b:2", leader.CurrentView.Primary);
    }

    [Fact]
    public async Task NewHistory_IsRefused_WhileALiveServerHoldsTheData_AndStartsEmptyOtherwise()
    {
        var group = new Group();
        ViewService leader = await StartAsync(group);
        leader.Ping("a:1", 2, 2, out _);
        leader.Ping("b:2", 2, 2, out _);
        Assert.False(leader.DataLost);
        Assert.NotNull(await leader.StartNewHistoryAsync());

        // Both restart empty: the data is lost; the rules wait for ever.
        leader.Ping("a:1", 0, 0, out _);
        leader.Ping("b:2", 0, 0, out _);
        leader.Ping("c:3", 0, 0, out _);
        for (int i = 0; i < D * 2; i++)
        {
            foreach (string s in (string[])["a:1", "b:2", "c:3"]) leader.Ping(s, 0, 0, out _);
            group.Sleep();
            leader.Tick();
        }
        await SettleAsync(leader);
        Assert.Equal(2, leader.CurrentView.Number);
        Assert.True(leader.DataLost);

        Assert.Null(await leader.StartNewHistoryAsync());
        View first = leader.GetView(out bool acked, out long lastAcked);
        Assert.Equal(3, first.Number);
        Assert.NotEqual("", first.Primary);
        Assert.False(acked);
        Assert.Equal(0, lastAcked); // the new primary starts empty: nothing is acknowledged in the new history
        Assert.False(leader.DataLost);
    }

    [Fact]
    public async Task Record_DecidedFromAnotherState_IsNotApplied_OnAnyMember()
    {
        var group = new Group();
        ViewService leader = await StartAsync(group);
        ViewRecord now = leader.Record;
        // A proposal that outlived its term: decided from view 1, it meets view 2 acknowledged.
        var stale = new ViewRecord(new View(2, "c:3", ""), false, new View(1, "a:1", ""), BaseNumber: 1, BaseAcked: true);
        Assert.False(leader.Apply(stale));
        Assert.Equal(now, leader.Record);
        // The same change decided from the current state is applied.
        Assert.True(leader.Apply(new ViewRecord(new View(3, "b:2", ""), false, now.LastAcked, BaseNumber: 2, BaseAcked: true)));
        Assert.Equal(new View(3, "b:2", ""), leader.CurrentView);
    }

    [Fact]
    public async Task EmptyLog_WithServersOfALaterHistory_MakesNoViewOne_AndANewHistoryNumbersAboveThem()
    {
        var group = new Group();
        ViewService leader = group.AddMember();
        group.Elect(leader);
        // The group's data directories were wiped; the servers still hold view 7.
        for (int i = 0; i < D; i++)
        {
            leader.Ping("a:1", 7, 7, out _);
            leader.Ping("b:2", 7, 6, out _);
            leader.Ping("c:3", 0, 0, out _);
            group.Sleep();
            leader.Tick();
        }
        await SettleAsync(leader);
        Assert.Equal(0, leader.CurrentView.Number);
        Assert.True(leader.HistoryLost);
        Assert.True(leader.GetStatus().HistoryLost);

        Assert.Null(await leader.StartNewHistoryAsync());
        Assert.Equal(new View(8, "a:1", ""), leader.CurrentView); // the newest copy, above every reported number
        Assert.False(leader.HistoryLost);
        Assert.Null(await leader.StartNewHistoryAsync()); // again: nothing changes while that history starts
        Assert.Equal(8, leader.CurrentView.Number);
    }

    [Fact]
    public async Task NewHistory_WhenTheHoldersAreOnlyDead_NeedsForce()
    {
        var group = new Group();
        ViewService leader = await StartAsync(group);
        leader.Ping("a:1", 2, 2, out _);
        leader.Ping("b:2", 2, 2, out _);
        for (int i = 0; i < D + 1; i++)
        {
            leader.Ping("c:3", 0, 0, out _);
            group.Sleep();
        }
        Assert.False(leader.DataLost); // a and b are dead, not known to be empty: they may come back
        Assert.Contains("not lost", await leader.StartNewHistoryAsync());
        Assert.Null(await leader.StartNewHistoryAsync(force: true));
        Assert.Equal("c:3", leader.CurrentView.Primary);
    }

    [Fact]
    public async Task PrimaryKept_ThatRestartsWhileTheNewViewCommits_IsNotTakenAsUsable_AndTheOldBackupTakesOver()
    {
        var group = new Group();
        ViewService leader = await StartAsync(group);
        leader.Ping("a:1", 2, 2, out _);
        leader.Ping("b:2", 2, 2, out _);

        // a reports b unreachable; b is alive and holds view 2. The next view keeps a and drops b...
        Assert.True(leader.ReportUnreachableBackup("a:1", 2, "b:2"));
        group.HoldCommits = true;
        leader.Tick();
        await ProposalReachedAsync(group, 1);
        // ...and a restarts, empty, before that view commits.
        leader.Ping("a:1", 0, 0, out _);
        group.ReleaseAll();
        await SettleAsync(leader);
        Assert.Equal(new View(3, "a:1", ""), leader.CurrentView);
        Assert.False(leader.PrimaryAcked);
        Assert.True(leader.GetStatus().Servers.Single(s => s.Address == "a:1").Restarted);

        // a pings 0 for ever (it holds nothing) and can never acknowledge view 3: the view falls back to b, the
        // server of the last acknowledged view that still holds it.
        group.HoldCommits = false;
        for (int i = 0; i < 3 && leader.CurrentView.Number == 3; i++)
        {
            leader.Ping("a:1", 0, 0, out _);
            leader.Ping("b:2", 2, 2, out _);
            group.Sleep();
            leader.Tick();
            await SettleAsync(leader);
        }
        Assert.Equal("b:2", leader.CurrentView.Primary);
        Assert.Equal(4, leader.CurrentView.Number);
    }

    [Fact]
    public async Task PrimaryThatNowHoldsNothing_AfterHoldingItsView_IsTakenAsRestarted()
    {
        var group = new Group();
        ViewService leader = await StartAsync(group);
        leader.Ping("a:1", 2, 2, out _);
        leader.Ping("b:2", 2, 2, out _);
        // a restarted and was told view 2 by a leader that never saw its 0: it pings 2 but holds nothing.
        leader.Ping("a:1", 2, 0, out _);
        Assert.True(leader.GetStatus().Servers.Single(s => s.Address == "a:1").Restarted);
        leader.Ping("b:2", 2, 2, out _);
        group.Sleep();
        leader.Tick();
        await SettleAsync(leader);
        Assert.Equal("b:2", leader.CurrentView.Primary);
    }

    [Fact]
    public async Task PrimaryOfTheFirstView_DyingBeforeItsAck_IsReplacedByAFreshServer()
    {
        var group = new Group();
        ViewService leader = group.AddMember();
        group.Elect(leader);
        leader.Ping("a:1", 0);
        group.Sleep();
        leader.Tick();
        await SettleAsync(leader);
        Assert.Equal(new View(1, "a:1", ""), leader.CurrentView);

        // a never acks (nothing was ever acknowledged, so no client was ever answered) and dies.
        for (int i = 0; i < D + 1; i++)
        {
            leader.Ping("b:2", 0);
            group.Sleep();
            leader.Tick();
        }
        await SettleAsync(leader);
        Assert.Equal(new View(2, "b:2", ""), leader.CurrentView);
        Assert.Equal(0, leader.GetStatus().LastAcked?.Number);
    }
}
