using Microsoft.Extensions.Time.Testing;
using Tandem.Coordinator;
using Tandem.Protocol;

namespace Tandem.UnitTests;

public class ViewServiceTests
{
    private const int D = 5;
    private static readonly TimeSpan P = TimeSpan.FromMilliseconds(100);

    /// <summary>A view service on a fake clock; <see cref="Sleep"/> advances one ping interval, firing the tick timer.</summary>
    private sealed class Harness : IDisposable
    {
        private readonly IDisposable? _timer;

        public Harness(bool startTimer = true)
        {
            Vs = new ViewService(new ViewServiceOptions { PingInterval = P, DeadPings = D, TimeProvider = Clock });
            Vs.ViewChanged += Views.Add;
            if (startTimer) _timer = Vs.Start();
        }

        public FakeTimeProvider Clock { get; } = new();
        public ViewService Vs { get; }
        public List<View> Views { get; } = new();

        public void Sleep(int intervals = 1)
        {
            for (int i = 0; i < intervals; i++) Clock.Advance(P);
        }

        /// <summary>For <paramref name="intervals"/> intervals, each of <paramref name="pings"/> pings once, then one interval passes.</summary>
        public void Rounds(int intervals, params (string Server, long View)[] pings) =>
            Rounds(intervals, pings.Select(p => (p.Server, p.View, -1L)).ToArray());

        /// <summary>As the other overload, each ping also saying which view's state the server holds.</summary>
        public void Rounds(int intervals, params (string Server, long View, long Held)[] pings)
        {
            for (int i = 0; i < intervals; i++)
            {
                foreach ((string server, long view, long held) in pings) Vs.Ping(server, view, held, out _);
                Sleep();
            }
        }

        /// <summary>Makes a primary-only view 1 acked by <paramref name="primary"/>.</summary>
        public void StartCluster(string primary)
        {
            Vs.Ping(primary, 0);
            Sleep();
            Assert.Equal(new View(1, primary, ""), Vs.Ping(primary, 0));
            Vs.Ping(primary, 1);
            Assert.True(Vs.PrimaryAcked);
        }

        public void Dispose() => _timer?.Dispose();
    }

    private static void Check(ViewService vs, string primary, string backup, long number)
    {
        View view = vs.CurrentView;
        Assert.Equal(primary, view.Primary);
        Assert.Equal(backup, view.Backup);
        Assert.Equal(number, view.Number);
    }

    [Fact]
    public void ViewService_Test1_AllTenSteps()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        const string ck1 = "ck1:1", ck2 = "ck2:2", ck3 = "ck3:3";

        // 1. No primary before any ping.
        Assert.Equal("", vs.CurrentView.Primary);

        // 2. First primary.
        for (int i = 0; i < D * 2; i++)
        {
            if (vs.Ping(ck1, 0).Primary == ck1) break;
            h.Sleep();
        }
        Check(vs, ck1, "", 1);

        // 3. First backup.
        {
            View vx = vs.CurrentView;
            for (int i = 0; i < D * 2; i++)
            {
                vs.Ping(ck1, 1);
                if (vs.Ping(ck2, 0).Backup == ck2) break;
                h.Sleep();
            }
            Check(vs, ck1, ck2, vx.Number + 1);
        }

        // 4. Backup takes over if the primary fails.
        {
            vs.Ping(ck1, 2);
            View vx = vs.Ping(ck2, 2);
            for (int i = 0; i < D * 2; i++)
            {
                View v = vs.Ping(ck2, vx.Number);
                if (v.Primary == ck2 && v.Backup == "") break;
                h.Sleep();
            }
            Check(vs, ck2, "", vx.Number + 1);
        }

        // 5. A restarted server becomes backup.
        {
            View vx = vs.CurrentView;
            vs.Ping(ck2, vx.Number);
            for (int i = 0; i < D * 2; i++)
            {
                vs.Ping(ck1, 0);
                View v = vs.Ping(ck2, vx.Number);
                if (v.Primary == ck2 && v.Backup == ck1) break;
                h.Sleep();
            }
            Check(vs, ck2, ck1, vx.Number + 1);
        }

        // 6. Idle third server becomes backup if the primary fails, in a single view change.
        {
            View vx = vs.CurrentView;
            int viewsBefore = h.Views.Count;
            vs.Ping(ck2, vx.Number);
            for (int i = 0; i < D * 2; i++)
            {
                vs.Ping(ck3, 0);
                View v = vs.Ping(ck1, vx.Number);
                if (v.Primary == ck1 && v.Backup == ck3) break;
                vx = v;
                h.Sleep();
            }
            Check(vs, ck1, ck3, vx.Number + 1);
            Assert.Equal(viewsBefore + 1, h.Views.Count);
        }

        // 7. A restarted primary is treated as dead.
        {
            View vx = vs.CurrentView;
            vs.Ping(ck1, vx.Number);
            for (int i = 0; i < D * 2; i++)
            {
                vs.Ping(ck1, 0);
                vs.Ping(ck3, vx.Number);
                if (vs.CurrentView.Primary != ck1) break;
                h.Sleep();
            }
            Assert.Equal(ck3, vs.CurrentView.Primary);
        }

        // 8. A dead backup is removed from the view.
        {
            for (int i = 0; i < D * 3; i++)
            {
                vs.Ping(ck3, vs.CurrentView.Number);
                h.Sleep();
            }
            View v = vs.CurrentView;
            Assert.Equal(ck3, v.Primary);
            Assert.Equal("", v.Backup);
        }

        // 9. The view service waits for the primary to ack the view.
        {
            View vx = vs.CurrentView;
            for (int i = 0; i < D * 3; i++)
            {
                vs.Ping(ck1, 0);
                vs.Ping(ck3, vx.Number);
                if (vs.CurrentView.Number > vx.Number) break;
                h.Sleep();
            }
            Check(vs, ck3, ck1, vx.Number + 1);
            View vy = vs.CurrentView;
            // ck3 is primary but never acks, then dies: ck1 must not be promoted.
            for (int i = 0; i < D * 3; i++)
            {
                View v = vs.Ping(ck1, vy.Number);
                if (v.Number > vy.Number) break;
                h.Sleep();
            }
            Check(vs, ck3, ck1, vy.Number);
        }

        // 10. An uninitialized server cannot become primary.
        {
            for (int i = 0; i < D * 2; i++)
            {
                View v = vs.CurrentView;
                vs.Ping(ck1, v.Number);
                vs.Ping(ck2, 0);
                vs.Ping(ck3, v.Number);
                h.Sleep();
            }
            for (int i = 0; i < D * 2; i++)
            {
                vs.Ping(ck2, 0);
                h.Sleep();
            }
            Assert.NotEqual(ck2, vs.CurrentView.Primary);
        }

        // Every view change: consecutive numbers, and the new primary was primary or backup of the one before.
        View previous = View.Empty;
        foreach (View v in h.Views)
        {
            Assert.Equal(previous.Number + 1, v.Number);
            if (previous.Number > 0) Assert.Contains(v.Primary, new[] { previous.Primary, previous.Backup });
            previous = v;
        }
    }

    [Fact]
    public void FirstView_IsMadeOnlyByTick_AndTheFirstReplyIsViewZero()
    {
        using var h = new Harness(startTimer: false);
        ViewService vs = h.Vs;

        Assert.Equal(View.Empty, vs.Ping("a:1", 0));
        Assert.Equal(View.Empty, vs.Ping("b:2", 0));
        Assert.Equal(View.Empty, vs.CurrentView);

        vs.Tick();
        Assert.Equal(new View(1, "a:1", ""), vs.CurrentView);
        Assert.Equal([new View(1, "a:1", "")], h.Views);

        // The new primary still pings 0 until it hears of view 1: that is not a restart.
        Assert.Equal(new View(1, "a:1", ""), vs.Ping("a:1", 0));
        vs.Ping("a:1", 1);
        vs.Ping("b:2", 0);
        vs.Tick();
        Assert.Equal(new View(2, "a:1", "b:2"), vs.CurrentView);
    }

    [Fact]
    public void FirstView_IsNotMade_ForAServerThatDiedBeforeTheTick()
    {
        using var h = new Harness(startTimer: false);
        h.Vs.Ping("a:1", 0);
        h.Clock.Advance(P * D);
        h.Vs.Tick();
        Assert.Equal(View.Empty, h.Vs.CurrentView);
    }

    [Fact]
    public void View_DoesNotChange_UntilThePrimaryAcks()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        vs.Ping("a:1", 0);
        h.Sleep();
        Check(vs, "a:1", "", 1);

        // Without a's ack of view 1, b is not taken as backup, however long it waits (a is alive, not yet acking).
        for (int i = 0; i < D * 3; i++)
        {
            vs.Ping("a:1", 0);
            vs.Ping("b:2", 0);
            h.Sleep();
        }
        Check(vs, "a:1", "", 1);
        Assert.False(vs.PrimaryAcked);

        vs.Ping("a:1", 1);
        Assert.True(vs.PrimaryAcked);
        h.Sleep();
        Check(vs, "a:1", "b:2", 2);
        Assert.False(vs.PrimaryAcked);

        // b dies while a still pings 1 (as a primary does until its backup is synced): the one change made
        // without the ack replaces the dead backup and keeps the primary, which holds everything.
        for (int i = 0; i < D * 3; i++)
        {
            vs.Ping("a:1", 1);
            vs.Ping("c:3", 0);
            h.Sleep();
        }
        Check(vs, "a:1", "c:3", 3);
        Assert.False(vs.PrimaryAcked);

        // The primary dies without acking view 3: the backup is not promoted, however long it waits.
        for (int i = 0; i < D * 3; i++)
        {
            vs.Ping("c:3", 3);
            vs.Ping("d:4", 0);
            h.Sleep();
        }
        Check(vs, "a:1", "c:3", 3);
    }

    [Fact]
    public void RestartedBackup_IsReplaced()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        h.StartCluster("a:1");
        vs.Ping("b:2", 0);
        h.Sleep();
        Check(vs, "a:1", "b:2", 2);
        vs.Ping("b:2", 0); // learns view 2
        vs.Ping("b:2", 2);
        vs.Ping("a:1", 2);
        vs.Ping("c:3", 0);
        h.Sleep();
        Check(vs, "a:1", "b:2", 2);

        vs.Ping("b:2", 0); // restarted within the dead window
        Assert.True(vs.GetStatus().Servers.Single(s => s.Address == "b:2").Restarted);
        h.Sleep();
        Check(vs, "a:1", "", 3); // dropped first, so a serves alone while the next backup syncs
        vs.Ping("a:1", 3);
        h.Sleep();
        Check(vs, "a:1", "b:2", 4); // b is an empty idle server now, the first to have pinged; it gets the whole state
        Assert.DoesNotContain(vs.GetStatus().Servers, s => s.Restarted);
    }

    [Fact]
    public void RestartedBackup_WithNoOtherIdleServer_IsReplacedByItself()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        h.StartCluster("a:1");
        vs.Ping("b:2", 0);
        h.Sleep();
        vs.Ping("b:2", 2);
        vs.Ping("a:1", 2);
        vs.Ping("b:2", 0); // restarted: 0 after it had pinged view 2
        h.Sleep();
        Check(vs, "a:1", "", 3);
        vs.Ping("a:1", 3);
        vs.Ping("b:2", 0);
        h.Sleep();
        Check(vs, "a:1", "b:2", 4); // a new view, so the primary sends it the whole state again
    }

    [Fact]
    public void RestartedPrimary_WithNoBackup_StaysAndNoOneIsPromoted()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        h.StartCluster("a:1");

        for (int i = 0; i < D * 3; i++)
        {
            vs.Ping("a:1", 0);
            vs.Ping("b:2", 0);
            h.Sleep();
        }
        Check(vs, "a:1", "", 1);

        for (int i = 0; i < D * 3; i++)
        {
            vs.Ping("b:2", 0);
            h.Sleep();
        }
        Check(vs, "a:1", "", 1);
    }

    [Fact]
    public void FirstPrimaryWhoseReplyWasLost_IsNotLeftRestartedOnceItAcks()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        vs.Ping("a:1", 0);
        h.Sleep();
        Assert.Equal(new View(1, "a:1", ""), vs.Ping("a:1", 0)); // this reply is lost on the way
        vs.Ping("a:1", 0);                                         // so the server pings 0 again
        vs.Ping("a:1", 1);                                         // then learns view 1 and acknowledges it
        vs.Ping("b:2", 0);
        h.Sleep();
        Check(vs, "a:1", "b:2", 2);
    }

    [Fact]
    public void DeadPrimary_PromotesBackup_AndTakesAnIdleServerAsBackup()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        h.StartCluster("a:1");
        vs.Ping("b:2", 0);
        h.Sleep();
        vs.Ping("a:1", 2);
        vs.Ping("b:2", 2);
        vs.Ping("c:3", 0);
        for (int i = 0; i < D; i++)
        {
            vs.Ping("b:2", 2);
            vs.Ping("c:3", 0);
            h.Sleep();
        }
        Check(vs, "b:2", "c:3", 3);
    }

    [Fact]
    public void DeadServers_AreForgotten_ButNotThePrimaryOrBackup()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        h.StartCluster("a:1");
        vs.Ping("b:2", 0);
        h.Sleep();
        vs.Ping("c:3", 0);
        h.Sleep(D);

        ServerStatus c = vs.GetStatus().Servers.Single(s => s.Address == "c:3");
        Assert.False(c.Alive);
        Assert.Equal(ServerRole.Idle, c.Role);

        // View 2 is never acked, so a and b keep their roles however long they are dead; only c may go.
        h.Sleep(D * 10);
        ViewServiceStatus status = vs.GetStatus();
        Assert.Equal(["a:1", "b:2"], status.Servers.Select(s => s.Address));
        Assert.Equal([ServerRole.Primary, ServerRole.Backup], status.Servers.Select(s => s.Role));
        Assert.All(status.Servers, s => Assert.False(s.Alive));
    }

    [Fact]
    public void Status_ReportsRolesLivenessAndLastViewNumbers()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        h.StartCluster("a:1");
        vs.Ping("b:2", 0);
        vs.Ping("c:3", 0);
        h.Sleep();
        vs.Ping("a:1", 1);
        h.Clock.Advance(P / 2);

        ViewServiceStatus status = vs.GetStatus();
        Assert.Equal(new View(2, "a:1", "b:2"), status.View);
        Assert.False(status.Acked);
        Assert.Equal(P, status.PingInterval);
        Assert.Equal(D, status.DeadPings);
        Assert.Equal(
            [("a:1", ServerRole.Primary, 1L), ("b:2", ServerRole.Backup, 0L), ("c:3", ServerRole.Idle, 0L)],
            status.Servers.Select(s => (s.Address, s.Role, s.ViewNumber)));
        Assert.Equal(P / 2, status.Servers[0].SinceLastPing);
        Assert.Equal(P + P / 2, status.Servers[1].SinceLastPing);
        Assert.All(status.Servers, s => Assert.True(s.Alive));
    }

    [Fact]
    public void Options_RejectBadValues()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ViewServiceOptions { PingInterval = TimeSpan.Zero });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ViewServiceOptions { PingInterval = TimeSpan.FromMilliseconds(-1) });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ViewServiceOptions { DeadPings = 0 });
        Assert.Throws<ArgumentNullException>(() => new ViewServiceOptions { TimeProvider = null! });

        var options = new ViewServiceOptions();
        Assert.Equal(TimeSpan.FromMilliseconds(100), options.PingInterval);
        Assert.Equal(5, options.DeadPings);
        Assert.Same(TimeProvider.System, options.TimeProvider);
        Assert.Equal(TimeSpan.FromMilliseconds(500), options.DeadTime);
        Assert.Equal(TimeSpan.FromSeconds(3), new ViewServiceOptions { PingInterval = TimeSpan.FromSeconds(1), DeadPings = 3 }.DeadTime);
    }

    [Fact]
    public void Ping_RejectsBadArguments()
    {
        var vs = new ViewService(new ViewServiceOptions());
        Assert.Throws<ArgumentException>(() => vs.Ping("", 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => vs.Ping("a:1", -1));
    }

    /// <summary>Makes view 2 = (a, b) acked by a, with b having learned it.</summary>
    private static void StartPair(Harness h)
    {
        h.StartCluster("a:1");
        h.Vs.Ping("b:2", 0);
        h.Sleep();
        Check(h.Vs, "a:1", "b:2", 2);
        h.Vs.Ping("b:2", 2);
        h.Vs.Ping("a:1", 2);
        Assert.True(h.Vs.PrimaryAcked);
    }

    [Fact]
    public void RestartedPrimary_ChosenAsNextBackup_CostsOneViewChange()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        StartPair(h);

        vs.Ping("a:1", 0); // a restarted
        h.Sleep();
        Check(vs, "b:2", "a:1", 3);

        // a keeps pinging 0 until it learns its new role (its reply may be lost); b syncs it and acks.
        for (int i = 0; i < D; i++)
        {
            vs.Ping("a:1", 0);
            vs.Ping("b:2", i < 2 ? 2 : 3);
            h.Sleep();
        }
        vs.Ping("a:1", 3);
        h.Sleep();
        Check(vs, "b:2", "a:1", 3);
        Assert.True(vs.PrimaryAcked);
    }

    [Fact]
    public void LostPingReply_ToAFreshBackup_IsNotARestart()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        h.StartCluster("a:1");
        vs.Ping("b:2", 0);
        h.Sleep();
        Check(vs, "a:1", "b:2", 2);
        vs.Ping("b:2", 0); // the reply naming b backup was lost; b pings 0 again
        vs.Ping("a:1", 2);
        h.Sleep();
        Check(vs, "a:1", "b:2", 2);
        Assert.DoesNotContain(vs.GetStatus().Servers, s => s.Restarted);
    }

    [Fact]
    public void DeadBackup_OfAnUnackedView_IsReplaced_AndThePrimaryKept()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        StartPair(h);
        vs.Ping("c:3", 0);
        // b dies: view 3 drops it, and once a acks that, view 4 names c, which dies during its transfer (a never
        // acks 4) while d is idle.
        h.Rounds(D + 1, ("a:1", 2), ("c:3", 0));
        Check(vs, "a:1", "", 3);
        vs.Ping("a:1", 3);
        h.Sleep();
        Check(vs, "a:1", "c:3", 4);
        h.Rounds(D + 1, ("a:1", 3), ("d:4", 0));
        Check(vs, "a:1", "d:4", 5);
        Assert.False(vs.PrimaryAcked);
    }

    [Fact]
    public void RestartedPrimary_OfAnUnackedView_IsNotReplaced()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        StartPair(h);
        vs.Ping("c:3", 0);
        // a dies: b is promoted, c is its new backup
        h.Rounds(D + 1, ("b:2", 2), ("c:3", 0));
        Check(vs, "b:2", "c:3", 3);
        // b restarts before it acks view 3: nobody holds everything for sure, so the view waits.
        h.Rounds(D * 3, ("b:2", 0), ("c:3", 3));
        Check(vs, "b:2", "c:3", 3);
    }

    [Fact]
    public void UnreachableBackup_ReportedByThePrimary_IsReplaced_AndPassedOverForTheCooldown()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        StartPair(h);
        Assert.False(vs.ReportUnreachableBackup("b:2", 2, "a:1")); // only the primary may report
        Assert.False(vs.ReportUnreachableBackup("a:1", 1, "b:2")); // and only for the current view
        Assert.True(vs.ReportUnreachableBackup("a:1", 2, "b:2"));
        h.Sleep();
        Check(vs, "a:1", "", 3); // no other idle server: none is better than one the primary cannot reach

        int cooldown = (int)(vs.Options.UnreachableCooldown / P);
        h.Rounds(cooldown - 5, ("a:1", 3), ("b:2", 2));
        Check(vs, "a:1", "", 3);

        vs.Ping("c:3", 0); // another idle server is taken at once
        h.Sleep();
        Check(vs, "a:1", "c:3", 4);
    }

    [Fact]
    public void UnreachableBackup_OfAnUnackedView_IsReplaced()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        h.StartCluster("a:1");
        vs.Ping("b:2", 0);
        vs.Ping("c:3", 0);
        h.Sleep();
        Check(vs, "a:1", "b:2", 2);
        Assert.True(vs.ReportUnreachableBackup("a:1", 2, "b:2"));
        h.Sleep();
        Check(vs, "a:1", "c:3", 3);
    }

    [Fact]
    public void UnreachableBackup_IsStillPromoted_WhenThePrimaryDiesFirst()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        StartPair(h);
        Assert.True(vs.ReportUnreachableBackup("a:1", 2, "b:2"));
        vs.Ping("a:1", 0); // a restarts before the tick: b is the only copy, and every commit went through it
        h.Sleep();
        Check(vs, "b:2", "a:1", 3);
    }

    /// <summary>View 2 = (a, b), acked, with both saying (as real servers do) that they hold view 2.</summary>
    private static void StartHeldPair(Harness h)
    {
        ViewService vs = h.Vs;
        vs.Ping("a:1", 0, 0, out _);
        h.Sleep();
        vs.Ping("a:1", 1, 0, out _);
        vs.Ping("b:2", 0, 0, out _);
        h.Sleep();
        Check(vs, "a:1", "b:2", 2);
        vs.Ping("b:2", 2, 2, out _); // installed the snapshot of view 2
        vs.Ping("a:1", 2, 1, out bool acked);
        Assert.True(acked);
        vs.Ping("a:1", 2, 2, out _);
    }

    [Fact]
    public void DeadPrimary_OfAnUnackedView_FallsBackToTheLastAckedViewsBackup_ThatStillHoldsIt()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        StartHeldPair(h);
        vs.Ping("c:3", 0, 0, out _);
        Assert.True(vs.ReportUnreachableBackup("a:1", 2, "b:2"));
        h.Sleep();
        Check(vs, "a:1", "", 3);

        // a dies before it acks view 3; b, which a could not reach, still holds view 2 and every acked write.
        h.Rounds(D + 1, ("b:2", 2, 2), ("c:3", 3, 0));
        Check(vs, "b:2", "c:3", 4);
        Assert.Equal(2, vs.GetStatus().LastAcked!.Value.Number);
    }

    [Fact]
    public void DeadPrimary_OfAnUnackedView_FallsBackToTheLastAckedPrimary_WhenItIsBack()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        StartHeldPair(h);
        // a falls silent (paused): b is promoted, c is its new backup
        h.Rounds(D + 1, ("b:2", 2, 2), ("c:3", 0, 0));
        Check(vs, "b:2", "c:3", 3);
        // b dies before it acks view 3; a comes back, still holding view 2
        h.Rounds(D + 1, ("a:1", 2, 2), ("c:3", 3, 0));
        Check(vs, "a:1", "c:3", 4);
    }

    [Fact]
    public void DeadPrimary_OfAnUnackedView_NeverFallsBackToAServerThatLostTheLastAckedView()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        StartHeldPair(h);
        vs.Ping("c:3", 0, 0, out _);
        Assert.True(vs.ReportUnreachableBackup("a:1", 2, "b:2"));
        h.Sleep();
        Check(vs, "a:1", "", 3);
        h.Rounds(D * 3, ("b:2", 0, 0), ("c:3", 3, 0));
        Check(vs, "a:1", "", 3);
    }

    [Fact]
    public void NoFallBack_PastAnAckedViewWithoutBackup()
    {
        using var h = new Harness();
        ViewService vs = h.Vs;
        StartHeldPair(h);
        Assert.True(vs.ReportUnreachableBackup("a:1", 2, "b:2"));
        h.Sleep();
        Check(vs, "a:1", "", 3);
        vs.Ping("a:1", 3, 2, out bool acked); // a commits alone from here: b misses those writes
        Assert.True(acked);
        h.Rounds(D * 3, ("b:2", 2, 2));
        Check(vs, "a:1", "", 3);
    }
}
