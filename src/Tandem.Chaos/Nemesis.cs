using System.Diagnostics;

namespace Tandem.Chaos;

/// <summary>
/// Plays a <see cref="FaultPlan"/> against a <see cref="Cluster"/>: resolves each fault's roles from the coordinator
/// when it starts, applies it, and heals it after its length. A fault whose target does not exist at that moment
/// (no backup, coordinator not answering for a kill) is skipped and counted. Servers are slots of the
/// <see cref="Cluster"/>: a replacement retires one for good and, when it heals, brings in a fresh one.
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

    public Dictionary<FaultKind, int> Applied { get; } = Enum.GetValues<FaultKind>().ToDictionary(k => k, _ => 0);

    public int Skipped { get; private set; }

    /// <summary>Runs the plan until its end or <paramref name="stop"/>; faults still active stay so until <see cref="HealAllAsync"/>.</summary>
    public async Task RunAsync(IReadOnlyList<PlannedFault> plan, CancellationToken stop)
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
            Active? active = await ApplyAsync(fault, stop);
            if (active is null)
            {
                Skipped++;
                continue;
            }
            Applied[active.Counted]++;
            lock (_lock)
            {
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
        if (cluster.Coordinator.IsPaused) cluster.Coordinator.Resume();
        foreach (ServerSlot slot in cluster.Members)
        {
            if (slot.Node!.IsPaused) slot.Node.Resume();
            StartAgain(slot);
        }
    }

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
                lock (_lock) quiet = _active.Count == 0;
                if (quiet && status is { Acked: true, Primary: not "", Backup: not "" }) break;
                if (waited.Elapsed > TimeSpan.FromSeconds(3) || stop.IsCancellationRequested)
                {
                    log($"skip  {fault.Describe()}: {(quiet ? $"no acknowledged view with a backup ({Show(status)})" : "other faults still active")}");
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
            if (again is null || again.Value.View != status!.Value.View || !again.Value.Acked)
            {
                log($"skip  {fault.Describe()}: the view changed ({Show(again)})");
                return null;
            }
            ServerSlot slot = cluster.Slots[Of(fault.Target)];
            switch (fault.Kind)
            {
                case FaultKind.Kill:
                    victim.Kill();
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
                NodeProcess? node = fault.Target == Role.Coordinator ? cluster.Coordinator : NodeOf(Of(fault.Target));
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
                proxies.Add(cluster.Slots[primary].CoordinatorProxy);
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
        s is { } v ? $"view {v.View} primary {Name(v.Primary)} backup {Name(v.Backup)}{(v.Acked ? "" : " unacked")}" : "coordinator silent";

    private string Name(string address) => address == "" ? "-" : cluster.IndexOf(address) is int i and >= 0 ? $"s{i + 1}" : address;
}
