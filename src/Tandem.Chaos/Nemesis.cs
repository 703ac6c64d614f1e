using System.Diagnostics;

namespace Tandem.Chaos;

/// <summary>
/// Plays a <see cref="FaultPlan"/> against a <see cref="Cluster"/>: resolves each fault's roles from the group's
/// leader (or the leader itself, for coordinator faults) when it starts, applies it, and heals it after its length.
/// Server faults and coordinator faults are two tracks played at once, so they overlap. A fault whose target does
/// not exist at that moment (no backup, no leader answering for a kill) is skipped and counted. Servers are slots of
/// the <see cref="Cluster"/>: a replacement retires one for good and, when it heals, brings in a fresh one; killed
/// members of the group start again on their data directories.
/// </summary>
internal sealed class Nemesis(Cluster cluster, Func<TimeSpan> clock, Action<string> log)
{
    private readonly Lock _lock = new();
    private readonly List<Active> _active = [];
    private readonly List<Task> _heals = [];
    private ClusterStatus? _lastStatus;

    private sealed class Active(PlannedFault fault, string description, Action heal, FaultKind counted)
    {
        public PlannedFault Fault { get; } = fault;
        public string Description { get; } = description;
        public Action Heal { get; } = heal;
        /// <summary>The kind it counts as (a sync-kill that missed the state transfer counts as a kill).</summary>
        public FaultKind Counted { get; } = counted;
    }

    private readonly Dictionary<FaultKind, int> _applied = Enum.GetValues<FaultKind>().ToDictionary(k => k, _ => 0);
    private int _skipped;

    /// <summary>Faults applied so far, by the kind they count as.</summary>
    public Dictionary<FaultKind, int> Applied
    {
        get
        {
            lock (_lock) return new Dictionary<FaultKind, int>(_applied);
        }
    }

    public int Skipped => Volatile.Read(ref _skipped);

    /// <summary>
    /// Runs the plan until its end or <paramref name="stop"/>, its server faults and its coordinator faults as two
    /// tracks at once; faults still active stay so until <see cref="HealAllAsync"/>.
    /// </summary>
    public Task RunAsync(IReadOnlyList<PlannedFault> plan, CancellationToken stop) =>
        Task.WhenAll(TrackAsync([.. plan.Where(f => !f.OnCoordinators)], stop), TrackAsync([.. plan.Where(f => f.OnCoordinators)], stop));

    private async Task TrackAsync(IReadOnlyList<PlannedFault> plan, CancellationToken stop)
    {
        foreach (PlannedFault fault in plan)
        {
            TimeSpan wait = fault.Start - clock();
            try
            {
                if (wait > TimeSpan.Zero) await Task.Delay(wait, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            Active? active;
            try
            {
                active = fault.OnCoordinators ? await ApplyToCoordinatorsAsync(fault, stop) : await ApplyAsync(fault, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return; // the schedule is over while this fault was looking for its target
            }
            if (active is null)
            {
                Interlocked.Increment(ref _skipped);
                continue;
            }
            lock (_lock)
            {
                _applied[active.Counted]++;
                _active.Add(active);
                _heals.Add(HealLaterAsync(active, fault.Length, stop));
            }
        }
    }

    private async Task HealLaterAsync(Active active, TimeSpan after, CancellationToken stop)
    {
        try
        {
            await Task.Delay(after, stop);
        }
        catch (OperationCanceledException)
        {
            return; // HealAllAsync takes over.
        }
        Heal(active);
    }

    private void Heal(Active active)
    {
        lock (_lock)
        {
            if (!_active.Remove(active)) return;
        }
        active.Heal();
        log($"heal  {active.Description}");
    }

    /// <summary>Heals every active fault, then makes sure every proxy passes and every node runs.</summary>
    public async Task HealAllAsync()
    {
        Active[] active;
        Task[] heals;
        lock (_lock)
        {
            active = [.. _active];
            heals = [.. _heals];
        }
        foreach (Active a in active) Heal(a);
        await Task.WhenAll(heals);
        foreach (FaultProxy proxy in cluster.AllProxies) proxy.Heal();
        foreach (CoordinatorMember member in cluster.Coordinators)
        {
            if (member.Node.IsPaused) member.Node.Resume();
            if (!member.Node.IsRunning) member.Node.Start();
        }
        foreach (ServerSlot slot in cluster.Members)
        {
            if (slot.Node!.IsPaused) slot.Node.Resume();
            StartAgain(slot);
        }
    }

    /// <summary>How long ago the nemesis last killed the server at <paramref name="address"/> (never: the longest time).</summary>
    private TimeSpan SinceKilled(string address) =>
        cluster.IndexOf(address) is >= 0 and int i && cluster.Slots[i].Node is { } node ? node.SinceKilled : TimeSpan.MaxValue;

    private async Task<ClusterStatus?> StatusAsync(CancellationToken stop)
    {
        ClusterStatus? status = await cluster.StatusAsync(TimeSpan.FromMilliseconds(500), stop);
        if (status is not null) _lastStatus = status;
        return status;
    }

    private async Task<Active?> ApplyAsync(PlannedFault fault, CancellationToken stop)
    {
        ClusterStatus? status;
        bool killing = fault.Kind is FaultKind.Kill or FaultKind.Replace or FaultKind.SyncKill;
        if (killing)
        {
            // Destroy a copy only when the other one is known good: the view is acknowledged (so its backup holds the
            // whole state), it has a backup, and nothing else is going on. Wait a little for that, else skip.
            var waited = Stopwatch.StartNew();
            while (true)
            {
                status = await StatusAsync(stop);
                bool quiet;
                lock (_lock) quiet = !_active.Any(a => !a.Fault.OnCoordinators);
                // The copy that stays must be known to hold the view: a server killed and started again empty may
                // still be named in an acknowledged view until the leader hears from it (longer after a leader change).
                if (quiet && status is { Acked: true, Primary: not "", Backup: not "" } s
                    && s.Holds(fault.Target == Role.Primary ? s.Backup : s.Primary, SinceKilled(fault.Target == Role.Primary ? s.Backup : s.Primary))) break;
                if (waited.Elapsed > TimeSpan.FromSeconds(3) || stop.IsCancellationRequested)
                {
                    log($"skip  {fault.Describe()}: {(quiet ? $"no acknowledged view with a backup known to hold it ({Show(status)})" : "other server faults still active")}");
                    return null;
                }
                await Task.Delay(100, CancellationToken.None);
            }
        }
        else
        {
            status = await StatusAsync(stop) ?? _lastStatus;
        }

        int primary = status is null ? -1 : cluster.IndexOf(status.Value.Primary);
        int backup = status is null ? -1 : cluster.IndexOf(status.Value.Backup);
        int Of(Role role) => role == Role.Primary ? primary : backup;
        NodeProcess? NodeOf(int slot) => slot >= 0 && cluster.Slots[slot] is { Member: true, Node: { } node } ? node : null;
        string view = Show(status);

        if (killing)
        {
            if (NodeOf(Of(fault.Target)) is not { } victim)
            {
                log($"skip  {fault.Describe()}: unknown server ({view})");
                return null;
            }
            // Killing the primary of a view it has not acknowledged yet would wedge the view service for good
            // (it waits for that primary's ack), so make sure the view is still the one just read.
            ClusterStatus? again = await StatusAsync(stop);
            if (again is null || again.Value.View != status!.Value.View || !again.Value.Acked
                || !again.Value.Holds(fault.Target == Role.Primary ? again.Value.Backup : again.Value.Primary,
                    SinceKilled(fault.Target == Role.Primary ? again.Value.Backup : again.Value.Primary)))
            {
                log($"skip  {fault.Describe()}: the view changed ({Show(again)})");
                return null;
            }
            ServerSlot slot = cluster.Slots[Of(fault.Target)];
            switch (fault.Kind)
            {
                case FaultKind.Kill:
                    victim.Kill();
                    await NoteIfTheViewMovedAsync(again.Value, victim.Name, stop);
                    return Started(fault, $"{fault.Describe()} = {victim.Name} ({view})", () => StartAgain(slot));
                case FaultKind.Replace:
                    cluster.Retire(slot);
                    return Started(fault, $"{fault.Describe()} = {victim.Name} gone for good ({view})", () =>
                    {
                        ServerSlot? fresh = cluster.JoinFresh();
                        log(fresh is null ? "no identity left for a fresh server" : $"fresh server {fresh.Name} joins as {fresh.Identity}");
                    });
                default:
                    return await SyncKillAsync(fault, cluster.Slots[primary], slot, view, stop);
            }
        }

        switch (fault.Kind)
        {
            case FaultKind.Pause:
            {
                NodeProcess? node = NodeOf(Of(fault.Target));
                if (node is null || node.IsPaused || !node.Pause())
                {
                    log($"skip  {fault.Describe()}: no such node running ({view})");
                    return null;
                }
                return Started(fault, $"{fault.Describe()} = {node.Name} ({view})", () => node.Resume());
            }
            default:
            {
                List<(FaultProxy Proxy, Direction Direction)> targets = Targets(fault.Links, primary, backup, fault.OneWay);
                if (targets.Count == 0)
                {
                    log($"skip  {fault.Describe()}: no such link ({view})");
                    return null;
                }
                var effect = fault.Kind switch
                {
                    FaultKind.Partition or FaultKind.Cut => new LinkEffect(BlackHole: true),
                    FaultKind.Lossy => new LinkEffect(DropShare: fault.DropShare),
                    FaultKind.Stall => new LinkEffect(Stall: true, TrickleBytes: fault.TrickleBytes),
                    _ => new LinkEffect(DelayMs: fault.DelayMs),
                };
                foreach ((FaultProxy proxy, Direction direction) in targets) proxy.Add(direction, effect);
                string where = string.Join(",", targets.Select(t => t.Proxy.Name).Distinct());
                return Started(fault, $"{fault.Describe()} = {where} ({view})", () =>
                {
                    foreach ((FaultProxy proxy, Direction direction) in targets) proxy.Remove(direction, effect);
                });
            }
        }
    }

    /// <summary>
    /// After a kill: if the coordinator had already moved past the view the kill was checked against (its check
    /// and the kill race the coordinator's own decisions), say so in the events, with the view it moved to: a
    /// liveness failure that follows is then a double fault (say, the victim was left the only copy), not a wedge.
    /// </summary>
    private async Task NoteIfTheViewMovedAsync(ClusterStatus checkedAgainst, string victim, CancellationToken stop)
    {
        ClusterStatus? after = await StatusAsync(stop);
        if (after is { } a && a.View != checkedAgainst.View)
            log($"note  the view moved on as {victim} was killed: checked {Show(checkedAgainst)}, now {Show(a)}");
    }

    /// <summary>
    /// Kills the backup of an acknowledged view, waits for the coordinator to name a new backup (a view it has not
    /// acknowledged yet: the primary is still sending it the state), and kills that one in the middle of it. The
    /// primary keeps every copy of the data, so nothing is lost by design. The first backup starts again at once, the
    /// second when the fault heals. If the transfer is over before it is seen, the fault counts as a kill.
    /// </summary>
    private async Task<Active?> SyncKillAsync(PlannedFault fault, ServerSlot primary, ServerSlot backup, string view, CancellationToken stop)
    {
        // Slow the primary's links to every other server, so the transfer lasts long enough to be caught.
        var slow = new LinkEffect(DelayMs: fault.DelayMs);
        List<FaultProxy> links = [.. cluster.Members.Where(s => s != primary && s != backup)
            .Select(s => cluster.Peer(primary.Index, s.Index)).OfType<FaultProxy>()];
        foreach (FaultProxy link in links) link.Add(Direction.Forward, slow);
        void Unslow()
        {
            foreach (FaultProxy link in links) link.Remove(Direction.Forward, slow);
        }

        backup.Node!.Kill();
        log($"start {fault.Describe()}: killed backup {backup.Name} ({view}), waiting for a new backup in its state transfer");
        ServerSlot? second = null;
        string seen = "";
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < TimeSpan.FromSeconds(8) && !stop.IsCancellationRequested)
        {
            ClusterStatus? status = await cluster.StatusAsync(TimeSpan.FromMilliseconds(300), CancellationToken.None);
            if (status is { } s)
            {
                seen = Show(s);
                if (s.Primary != primary.Identity && s.Primary != "") break; // the view moved on some other way
                if (s is { Acked: false, Backup: not "" } && s.Backup != backup.Identity && cluster.IndexOf(s.Backup) is int i and >= 0
                    && cluster.Slots[i] is { Member: true, Node: { IsRunning: true } node })
                {
                    node.Kill();
                    second = cluster.Slots[i];
                    break;
                }
            }
            await Task.Delay(10, CancellationToken.None);
        }
        StartAgain(backup);
        if (second is null)
        {
            log($"missed the state transfer ({seen}); counted as a kill");
            return Started(fault, $"{fault.Describe()} = {backup.Name} only ({view})", Unslow, FaultKind.Kill);
        }
        return Started(fault, $"{fault.Describe()} = {backup.Name}, then {second.Name} during its state transfer ({seen})", () =>
        {
            Unslow();
            StartAgain(second);
        });
    }

    /// <summary>
    /// Applies a coordinator fault. Each waits (up to 5 s) for a leader and for every running member to answer, so
    /// it acts on a settled group; the ones aimed at the leader are skipped if none is known by then. Killed
    /// members start again on their data directories when the fault heals.
    /// </summary>
    private async Task<Active?> ApplyToCoordinatorsAsync(PlannedFault fault, CancellationToken stop)
    {
        CoordinatorMember[] members = cluster.Coordinators;
        MemberState?[] states = [];
        int leader = -1;
        var waited = Stopwatch.StartNew();
        while (!stop.IsCancellationRequested)
        {
            states = await cluster.MembersAsync(TimeSpan.FromMilliseconds(500), stop);
            leader = Cluster.LeaderOf(states);
            bool settled = leader >= 0 && members.All(m => !m.Node.IsRunning || m.Node.IsPaused || states[m.Index] is not null);
            if (settled || waited.Elapsed > TimeSpan.FromSeconds(5)) break;
            await Task.Delay(100, CancellationToken.None);
        }
        string group = ShowGroup(states, leader);
        if (leader < 0 && fault.Kind != FaultKind.CAllKill)
        {
            log($"skip  {fault.Describe()}: no coordinator leader ({group})");
            return null;
        }
        switch (fault.Kind)
        {
            case FaultKind.CKill:
            {
                NodeProcess node = members[leader].Node;
                node.Kill();
                return Started(fault, $"{fault.Describe()} = {node.Name} ({group})", () => StartAgain(node));
            }
            case FaultKind.CPause:
            {
                NodeProcess node = members[leader].Node;
                if (node.IsPaused || !node.Pause())
                {
                    log($"skip  {fault.Describe()}: {node.Name} is not running ({group})");
                    return null;
                }
                return Started(fault, $"{fault.Describe()} = {node.Name} ({group})", () => node.Resume());
            }
            case FaultKind.CPart:
            {
                var blackHole = new LinkEffect(BlackHole: true);
                FaultProxy[] links = [.. cluster.Slots.Select(s => s.CoordinatorProxies[leader])];
                foreach (FaultProxy link in links)
                {
                    link.Add(Direction.Forward, blackHole);
                    link.Add(Direction.Backward, blackHole);
                }
                return Started(fault, $"{fault.Describe()} = {members[leader].Name} cut off from every server ({group})", () =>
                {
                    foreach (FaultProxy link in links)
                    {
                        link.Remove(Direction.Forward, blackHole);
                        link.Remove(Direction.Backward, blackHole);
                    }
                });
            }
            case FaultKind.CMinority:
            {
                List<CoordinatorMember> followers = [.. members.Where(m => m.Index != leader && m.Node.IsRunning)];
                int count = Math.Min((members.Length - 1) / 2, followers.Count);
                if (count == 0)
                {
                    log($"skip  {fault.Describe()}: no follower running ({group})");
                    return null;
                }
                NodeProcess[] victims = [.. Enumerable.Range(0, count).Select(i => followers[(fault.Choice + i) % followers.Count].Node)];
                foreach (NodeProcess victim in victims) victim.Kill();
                return Started(fault, $"{fault.Describe()} = {string.Join(",", victims.Select(v => v.Name))} ({group})", () =>
                {
                    foreach (NodeProcess victim in victims) StartAgain(victim);
                });
            }
            default:
            {
                NodeProcess[] victims = [.. members.Select(m => m.Node).Where(n => n.IsRunning)];
                foreach (NodeProcess victim in victims) victim.Kill();
                return Started(fault, $"{fault.Describe()} = {string.Join(",", victims.Select(v => v.Name))} ({group})", () =>
                {
                    foreach (NodeProcess victim in victims) StartAgain(victim);
                });
            }
        }
    }

    /// <summary>Starts a killed member of the group again, on its data directory, unless it runs.</summary>
    private static void StartAgain(NodeProcess member)
    {
        if (!member.IsRunning) member.Start();
    }

    private string ShowGroup(MemberState?[] states, int leader) =>
        string.Join(" ", cluster.Coordinators.Select(m => states.Length > m.Index && states[m.Index] is { } s
            ? $"{m.Name}:{(m.Index == leader ? "leader" : s.Leads ? "stale-leader" : "follower")}/t{s.Term}/v{s.View}"
            : $"{m.Name}:{(m.Node.IsPaused ? "paused" : m.Node.IsRunning ? "silent" : "down")}"));

    private Active Started(PlannedFault fault, string description, Action heal, FaultKind? counted = null)
    {
        log($"start {description}");
        return new Active(fault, description, heal, counted ?? fault.Kind);
    }

    private List<(FaultProxy, Direction)> Targets(Links links, int primary, int backup, bool? oneWay)
    {
        var proxies = new List<FaultProxy>();
        switch (links)
        {
            case Links.PrimaryCoordinator when primary >= 0:
                proxies.AddRange(cluster.Slots[primary].CoordinatorProxies);
                break;
            case Links.PrimaryBackup when primary >= 0 && backup >= 0:
                proxies.AddRange(new[] { cluster.Peer(primary, backup), cluster.Peer(backup, primary) }.OfType<FaultProxy>());
                break;
            case Links.ClientsPrimary when primary >= 0:
                proxies.Add(cluster.Slots[primary].ClientProxy);
                break;
            case Links.All:
                proxies.AddRange(cluster.AllProxies);
                break;
        }
        Direction[] directions = oneWay switch { true => [Direction.Forward], false => [Direction.Backward], null => [Direction.Forward, Direction.Backward] };
        return [.. proxies.SelectMany(p => directions.Select(d => (p, d)))];
    }

    /// <summary>Starts a killed server again (empty, same ports), unless it is running or retired.</summary>
    private static void StartAgain(ServerSlot slot)
    {
        if (slot is not { Member: true, Node: { IsRunning: false } node }) return;
        node.Start();
    }

    private string Show(ClusterStatus? s) =>
        s is { } v ? $"view {v.View} primary {Name(v.Primary)} backup {Name(v.Backup)}{(v.Acked ? "" : " unacked")}" : "no coordinator leader answering";

    private string Name(string address) => address == "" ? "-" : cluster.IndexOf(address) is int i and >= 0 ? $"s{i + 1}" : address;
}
