using System.Diagnostics;

namespace Tandem.Chaos;

/// <summary>
/// Plays a <see cref="FaultPlan"/> against a <see cref="Cluster"/>: resolves each fault's roles from the coordinator
/// when it starts, applies it, and heals it after its length. A fault whose target does not exist at that moment
/// (no backup, coordinator not answering for a kill) is skipped and counted.
/// </summary>
internal sealed class Nemesis(Cluster cluster, Func<TimeSpan> clock, Action<string> log)
{
    private readonly Lock _lock = new();
    private readonly List<Active> _active = [];
    private readonly List<Task> _heals = [];
    private ClusterStatus? _lastStatus;

    private sealed class Active(PlannedFault fault, string description, Action heal)
    {
        public PlannedFault Fault { get; } = fault;
        public string Description { get; } = description;
        public Action Heal { get; } = heal;
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
            Applied[fault.Kind]++;
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
        foreach (NodeProcess node in cluster.Servers.Append(cluster.Coordinator))
        {
            if (node.IsPaused) node.Resume();
            if (!node.IsRunning) StartAgain(node);
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
        if (fault.Kind == FaultKind.Kill)
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
        string view = Show(status);

        switch (fault.Kind)
        {
            case FaultKind.Kill when Of(fault.Target) >= 0:
            {
                // Killing the primary of a view it has not acknowledged yet would wedge the view service for good
                // (it waits for that primary's ack), so make sure the view is still the one just read.
                ClusterStatus? again = await StatusAsync(stop);
                if (again is null || again.Value.View != status!.Value.View || !again.Value.Acked)
                {
                    log($"skip  {fault.Describe()}: the view changed ({Show(again)})");
                    return null;
                }
                NodeProcess node = cluster.Servers[Of(fault.Target)];
                node.Kill();
                return Started(fault, $"{fault.Describe()} = {node.Name} ({view})", () => StartAgain(node));
            }
            case FaultKind.Pause:
            {
                NodeProcess? node = fault.Target == Role.Coordinator ? cluster.Coordinator : Of(fault.Target) is int i and >= 0 ? cluster.Servers[i] : null;
                if (node is null || node.IsPaused || !node.Pause())
                {
                    log($"skip  {fault.Describe()}: no such node running ({view})");
                    return null;
                }
                return Started(fault, $"{fault.Describe()} = {node.Name} ({view})", () => node.Resume());
            }
            case FaultKind.Kill:
                log($"skip  {fault.Describe()}: unknown server ({view})");
                return null;
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
                    FaultKind.Partition => new LinkEffect(BlackHole: true),
                    FaultKind.Lossy => new LinkEffect(DropShare: fault.DropShare),
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

    private Active Started(PlannedFault fault, string description, Action heal)
    {
        log($"start {description}");
        return new Active(fault, description, heal);
    }

    private List<(FaultProxy, Direction)> Targets(Links links, int primary, int backup, bool? oneWay)
    {
        var proxies = new List<FaultProxy>();
        switch (links)
        {
            case Links.PrimaryCoordinator when primary >= 0:
                proxies.Add(cluster.CoordinatorProxies[primary]);
                break;
            case Links.PrimaryBackup when primary >= 0 && backup >= 0:
                proxies.Add(cluster.PeerProxies[primary, backup]);
                proxies.Add(cluster.PeerProxies[backup, primary]);
                break;
            case Links.ClientsPrimary when primary >= 0:
                proxies.Add(cluster.ClientProxies[primary]);
                break;
            case Links.All:
                proxies.AddRange(cluster.AllProxies);
                break;
        }
        Direction[] directions = oneWay switch { true => [Direction.Forward], false => [Direction.Backward], null => [Direction.Forward, Direction.Backward] };
        return [.. proxies.SelectMany(p => directions.Select(d => (p, d)))];
    }

    private void StartAgain(NodeProcess node)
    {
        if (node.IsRunning) return;
        node.Start();
    }

    private string Show(ClusterStatus? s) =>
        s is { } v ? $"view {v.View} primary {Name(v.Primary)} backup {Name(v.Backup)}{(v.Acked ? "" : " unacked")}" : "coordinator silent";

    private string Name(string address) => address == "" ? "-" : cluster.IndexOf(address) is int i and >= 0 ? $"s{i + 1}" : address;
}
