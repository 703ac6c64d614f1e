using System.Net;
using System.Net.Sockets;
using System.Text;
using Tandem.Chaos;
using Tandem.Client;

namespace Tandem.UnitTests;

public class ChaosUnitTests
{
    [Fact]
    public void CopyHeldView_CountsOnlyPingsAfterTheServersLastKill()
    {
        var servers = new Dictionary<string, ServerHeard> { ["b"] = new(Alive: true, SinceLastPingMs: 200, HeldView: 46, Restarted: false) };
        var status = new ClusterStatus(46, "a", "b", Acked: true, servers);
        Assert.True(status.Holds("b", TimeSpan.MaxValue)); // never killed
        Assert.True(status.Holds("b", TimeSpan.FromSeconds(2))); // killed long before that ping
        // Killed 150 ms ago: the ping 200 ms ago came from the process that died; the new one may be empty.
        Assert.False(status.Holds("b", TimeSpan.FromMilliseconds(150)));
        Assert.False(status.Holds("b", TimeSpan.FromMilliseconds(250)));
    }

    [Fact]
    public void CopyHeldView_DoesNotCountACopyTheCoordinatorIsAboutToDrop()
    {
        static ClusterStatus With(long sinceLastPingMs, bool reported = false) => new(46, "a", "b", Acked: true,
            new Dictionary<string, ServerHeard> { ["b"] = new(Alive: true, sinceLastPingMs, HeldView: 46, Restarted: false) }, DeadTimeMs: 500, reported);
        Assert.True(With(200).Holds("b", TimeSpan.MaxValue));
        // Alive, but silent for most of the dead time: the coordinator may drop it any moment.
        Assert.False(With(400).Holds("b", TimeSpan.MaxValue));
        // Its primary reported it unreachable: the next tick drops it.
        Assert.False(With(100, reported: true).Holds("b", TimeSpan.MaxValue));
    }

    private static Tandem.Checker.HistoryOp PxOp(Tandem.Checker.OpKind kind, string? output, long call, long ret, string options = "") =>
        new(1, kind, "x1.1.e0", "v1.1", output, call, ret, Tandem.Checker.Outcome.Ok, options);

    [Fact]
    public void ExpiryCheck_AKeySeenGone_ThatComesBack_IsAViolation()
    {
        var set = PxOp(Tandem.Checker.OpKind.Put, null, 0, 1_000, "PX 300");
        List<Tandem.Checker.HistoryOp> fine =
        [
            set,
            PxOp(Tandem.Checker.OpKind.Get, "v1.1", 2_000, 3_000),
            PxOp(Tandem.Checker.OpKind.Ttl, "250", 4_000, 5_000),
            PxOp(Tandem.Checker.OpKind.Get, "", 400_000, 401_000),
            PxOp(Tandem.Checker.OpKind.Get, "v1.1", 400_500, 402_000), // concurrent with the read that saw it gone: allowed
            PxOp(Tandem.Checker.OpKind.Ttl, "-2", 500_000, 501_000),
        ];
        Assert.Empty(Verifier.CheckExpiry(fine, out int keys, out int reads));
        Assert.Equal((1, 5), (keys, reads));

        List<string> back = Verifier.CheckExpiry([.. fine, PxOp(Tandem.Checker.OpKind.Ttl, "12", 402_000, 403_000)], out _, out _);
        Assert.Contains(back, p => p.Contains("came back", StringComparison.Ordinal));
        Assert.NotEmpty(Verifier.CheckExpiry([set, PxOp(Tandem.Checker.OpKind.Ttl, "301", 2_000, 3_000)], out _, out _)); // longer than set
        Assert.NotEmpty(Verifier.CheckExpiry([set, PxOp(Tandem.Checker.OpKind.Ttl, "-1", 2_000, 3_000)], out _, out _)); // lost its deadline
        Assert.NotEmpty(Verifier.CheckExpiry([set, PxOp(Tandem.Checker.OpKind.Get, "other", 2_000, 3_000)], out _, out _));
        Assert.NotEmpty(Verifier.CheckExpiry([set, PxOp(Tandem.Checker.OpKind.Get, "v1.1", 1_400_000, 1_500_000)], out _, out _)); // long after its deadline
    }

    [Fact]
    public void ForChecker_LeavesThePxKeysToTheExpiryCheck()
    {
        List<Tandem.Checker.HistoryOp> ops =
        [
            PxOp(Tandem.Checker.OpKind.Put, null, 0, 1_000, "PX 300"),
            new(1, Tandem.Checker.OpKind.Incr, "n0.e0", "1", "1", 0, 10, Tandem.Checker.Outcome.Ok),
        ];
        Assert.Equal("n0.e0", Assert.Single(Verifier.ForChecker(ops)).Key);
    }

    [Fact]
    public void BigValue_ReadBackIntact_IsItsDescription()
    {
        string value = BigValue.Make("c3.17;", BigValue.MinLength + 5);
        Assert.Equal(BigValue.MinLength + 5, value.Length);
        Assert.Equal("big:c3.17;1048581", BigValue.Decode(Encoding.ASCII.GetBytes(value)));
        Assert.Equal("big:c3.17;1048581", BigValue.Decode(value));
        Assert.Equal("", BigValue.Decode(ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void BigValue_WrongTruncatedOrMixed_IsNeverAnyPutsDescription()
    {
        byte[] value = Encoding.ASCII.GetBytes(BigValue.Make("c3.17;", 1 << 20));
        byte[] flipped = (byte[])value.Clone();
        flipped[700_000] = flipped[700_000] == (byte)'a' ? (byte)'b' : (byte)'a';
        Assert.StartsWith("corrupt:", BigValue.Decode(flipped));

        // A prefix is not the value of that length: the description holds the length written.
        Assert.Equal("big:c3.17;1000", BigValue.Decode(value.AsSpan(0, 1000)));
        Assert.NotEqual(BigValue.Describe("c3.17;", 1 << 20), BigValue.Decode(value.AsSpan(0, 1000)));

        // Another value's filler behind this token (a mixed-up write).
        byte[] other = Encoding.ASCII.GetBytes(BigValue.Make("c4.17;", 1 << 20));
        Encoding.ASCII.GetBytes("c3.17;").CopyTo(other, 0);
        Assert.StartsWith("corrupt:", BigValue.Decode(other));
        Assert.StartsWith("corrupt:", BigValue.Decode("no token here"u8));
    }

    [Fact]
    public void SessionExpired_IsRecognizedByTypeOrErrorCode_NotForOtherErrors()
    {
        Assert.True(Workload.IsSessionExpired(new TandemSessionExpiredException("session 7 dropped")));
        Assert.True(Workload.IsSessionExpired(new TandemException("NOSESSION", "NOSESSION client 7 has no session")));
        Assert.False(Workload.IsSessionExpired(new TandemException("ERR", "ERR value too large")));
        Assert.False(Workload.IsSessionExpired(new TimeoutException("NOSESSION")));
    }

    [Fact]
    public async Task FaultProxy_Stall_HoldsBytesWithoutClosing_ThenPassesThemAll()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        await using var proxy = new FaultProxy("test", $"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");
        var stall = new LinkEffect(Stall: true);
        proxy.Add(Direction.Forward, stall);

        CancellationToken ct = TestContext.Current.CancellationToken;
        using var client = new TcpClient();
        await client.ConnectAsync(IPEndPoint.Parse(proxy.Address), ct);
        using Socket server = await listener.AcceptSocketAsync(ct);
        await client.GetStream().WriteAsync("hello"u8.ToArray(), ct);

        var buffer = new byte[16];
        using (var quiet = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            quiet.CancelAfter(TimeSpan.FromMilliseconds(400));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await server.ReceiveAsync(buffer, SocketFlags.None, quiet.Token));
        }

        proxy.Remove(Direction.Forward, stall);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        int n = 0;
        while (n < 5) n += await server.ReceiveAsync(buffer.AsMemory(n), SocketFlags.None, timeout.Token);
        Assert.Equal("hello", Encoding.ASCII.GetString(buffer, 0, n));
    }

    private static readonly FaultKind[] CoordinatorKinds = [FaultKind.CKill, FaultKind.CPause, FaultKind.CPart, FaultKind.CMinority, FaultKind.CAllKill];

    [Fact]
    public void FaultPlan_SameSeed_SamePlan_WithCoordinatorFaultsOfEveryKind()
    {
        IReadOnlyList<PlannedFault> plan = FaultPlan.Generate(3002, TimeSpan.FromMinutes(30));
        Assert.Equal(plan, FaultPlan.Generate(3002, TimeSpan.FromMinutes(30)));
        Assert.NotEqual(plan, FaultPlan.Generate(3003, TimeSpan.FromMinutes(30)));
        foreach (FaultKind kind in Enum.GetValues<FaultKind>()) Assert.Contains(plan, f => f.Kind == kind);
        Assert.Equal(Enumerable.Range(1, plan.Count), plan.Select(f => f.Number));
        Assert.True(plan.Zip(plan.Skip(1)).All(p => p.First.Start <= p.Second.Start), "numbered in start order");
        Assert.All(plan, f => Assert.Equal(FaultPlan.IsCoordinatorFault(f.Kind), f.OnCoordinators));
    }

    [Fact]
    public void FaultPlan_CoordinatorFaults_OneAtATime_OverlappingServerFaults()
    {
        IReadOnlyList<PlannedFault> plan = FaultPlan.Generate(3001, TimeSpan.FromMinutes(10));
        List<PlannedFault> coordinator = [.. plan.Where(f => f.OnCoordinators)];
        List<PlannedFault> servers = [.. plan.Where(f => !f.OnCoordinators)];
        Assert.NotEmpty(coordinator);

        // Never two coordinator faults at once, and a gap of at least a second for restarted members to come back.
        foreach ((PlannedFault a, PlannedFault b) in coordinator.Zip(coordinator.Skip(1)))
            Assert.True(b.Start >= a.Start + a.Length + TimeSpan.FromSeconds(1), $"{a.Describe()} / {b.Describe()}");

        // Most coordinator faults overlap some server fault (they are on a track of their own).
        int overlapping = coordinator.Count(c => servers.Any(s => s.Start < c.Start + c.Length && c.Start < s.Start + s.Length));
        Assert.True(overlapping > coordinator.Count / 2, $"{overlapping} of {coordinator.Count} overlap a server fault");

        // The server track keeps its own rules: at most two at once, a kill of a copy only when no other server fault is active.
        foreach (PlannedFault s in servers)
        {
            var others = servers.Where(o => o != s && o.Start <= s.Start && s.Start < o.Start + o.Length).ToList();
            Assert.True(others.Count < FaultPlan.MaxConcurrent, s.Describe());
            if (s.Kind is FaultKind.Kill or FaultKind.Replace or FaultKind.SyncKill) Assert.True(others.Count == 0, s.Describe());
        }
    }

    [Fact]
    public void FaultPlan_DisabledKinds_AreNeverDrawn_AndTheOtherTrackStaysTheSame()
    {
        TimeSpan duration = TimeSpan.FromMinutes(10);
        IReadOnlyList<PlannedFault> full = FaultPlan.Generate(42, duration);
        IReadOnlyList<PlannedFault> noCoordinator = FaultPlan.Generate(42, duration, 3, CoordinatorKinds.ToHashSet());
        Assert.DoesNotContain(noCoordinator, f => f.OnCoordinators);
        Assert.Equal(Strip(full.Where(f => !f.OnCoordinators)), Strip(noCoordinator));

        IReadOnlyList<PlannedFault> without = FaultPlan.Generate(42, duration, 3, new HashSet<FaultKind> { FaultKind.CAllKill, FaultKind.Kill, FaultKind.Replace });
        Assert.DoesNotContain(without, f => f.Kind is FaultKind.CAllKill or FaultKind.Kill or FaultKind.Replace);
        Assert.Contains(without, f => f.Kind == FaultKind.CKill);
        Assert.Contains(without, f => f.Kind == FaultKind.SyncKill);

        IReadOnlyList<PlannedFault> serversOnly = FaultPlan.Generate(42, duration, 3, Enum.GetValues<FaultKind>().Where(k => !FaultPlan.IsCoordinatorFault(k)).ToHashSet());
        Assert.All(serversOnly, f => Assert.True(f.OnCoordinators));
        Assert.Equal(Strip(full.Where(f => f.OnCoordinators)), Strip(serversOnly));

        static List<PlannedFault> Strip(IEnumerable<PlannedFault> faults) => [.. faults.Select(f => f with { Number = 0 })];
    }

    [Fact]
    public void FaultPlan_GroupOfOne_HasNoMinorityToKill()
    {
        IReadOnlyList<PlannedFault> plan = FaultPlan.Generate(5, TimeSpan.FromMinutes(20), coordinators: 1);
        Assert.DoesNotContain(plan, f => f.Kind == FaultKind.CMinority);
        Assert.Contains(plan, f => f.Kind == FaultKind.CKill);
        Assert.Contains(plan, f => f.Kind == FaultKind.CAllKill);
    }

    [Fact]
    public void FaultKinds_ParseByTheirSummaryNames_UnknownOnesAreRefused()
    {
        Assert.Equal(new HashSet<FaultKind> { FaultKind.CKill, FaultKind.CAllKill, FaultKind.Stall },
            FaultPlan.ParseKinds("ckill, CALLKILL,stall,ckill"));
        Assert.Empty(FaultPlan.ParseKinds(""));
        FormatException e = Assert.Throws<FormatException>(() => FaultPlan.ParseKinds("ckill,leaderkill"));
        Assert.Contains("'leaderkill'", e.Message);
        Assert.Equal(["kill", "pause", "partition", "lossy", "delay", "replace", "synckill", "cut", "stall", "ckill", "cpause", "cpart", "cminority", "callkill"],
            Enum.GetValues<FaultKind>().Select(FaultPlan.Name));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(ChaosOptions.MaxCoordinators + 1)]
    public void ChaosOptions_CoordinatorsOutOfRange_AreRefused(int coordinators)
    {
        var options = new ChaosOptions { Seed = 1, Coordinators = coordinators };
        Assert.Throws<ArgumentOutOfRangeException>(options.Validate);
        new ChaosOptions { Seed = 1, Coordinators = 1 }.Validate();
        Assert.Contains("coordinators: a group of 5; faults left out: cpart,callkill",
            new ChaosOptions { Seed = 1, Coordinators = 5, DisabledFaults = new HashSet<FaultKind> { FaultKind.CAllKill, FaultKind.CPart } }.DescribeWorkload());
    }

    [Fact]
    public void ReplyRewriter_ReplacesTheLeadersAddress_EvenSplitAcrossReads_NeverAPrefixOfAnotherPort()
    {
        var rewriter = new ReplyRewriter([("-NOTLEADER leader 127.0.0.1:1234\r\n", "-NOTLEADER leader 127.0.0.1:9\r\n")]);
        string reply = "+OK\r\n-NOTLEADER leader 127.0.0.1:1234\r\n-NOTLEADER leader 127.0.0.1:12345\r\n$5\r\nhello\r\n";
        string expected = "+OK\r\n-NOTLEADER leader 127.0.0.1:9\r\n-NOTLEADER leader 127.0.0.1:12345\r\n$5\r\nhello\r\n";
        byte[] bytes = Encoding.ASCII.GetBytes(reply);
        for (int split = 0; split <= bytes.Length; split++)
        {
            ReplyRewriter.Stream stream = rewriter.Open();
            byte[] first = stream.Feed(bytes.AsSpan(0, split));
            byte[] second = stream.Feed(bytes.AsSpan(split));
            Assert.Equal(expected, Encoding.ASCII.GetString([.. first, .. second]));
        }
        // Byte by byte.
        ReplyRewriter.Stream slow = rewriter.Open();
        Assert.Equal(expected, Encoding.ASCII.GetString([.. bytes.SelectMany(b => slow.Feed([b]))]));
    }

    [Fact]
    public void LeaderOf_IsTheLeaderOfTheHighestTerm_NoneWhileAMemberIsAhead()
    {
        Assert.Equal(1, Cluster.LeaderOf([new MemberState(false, 3, 5), new MemberState(true, 3, 5), null]));
        // A leader just resumed from a pause still says it leads term 2; the one of term 4 leads.
        Assert.Equal(2, Cluster.LeaderOf([new MemberState(true, 2, 4), new MemberState(false, 4, 6), new MemberState(true, 4, 6)]));
        // Only the deposed one says it leads, and a follower is in a later term: an election is going on.
        Assert.Equal(-1, Cluster.LeaderOf([new MemberState(true, 2, 4), new MemberState(false, 3, 4), null]));
        Assert.Equal(-1, Cluster.LeaderOf([null, null, null]));
        Assert.Equal(new MemberState(true, 7, 12), Cluster.ParseMember("""{"address":"127.0.0.1:7000","role":"leader","term":7,"leader":"127.0.0.1:7000","view":12}"""));
        Assert.False(Cluster.ParseMember("""{"address":"a:1","role":"follower","term":7,"leader":"","view":3}""").Leads);
    }
}
