using System.Globalization;

namespace Tandem.Chaos;

/// <summary>The kinds of fault the nemesis injects.</summary>
public enum FaultKind
{
    /// <summary>SIGKILL a server, start it again (empty, same ports) when the fault heals.</summary>
    Kill,
    /// <summary>SIGSTOP a node, SIGCONT when the fault heals.</summary>
    Pause,
    /// <summary>Black-hole every link between two groups, both ways.</summary>
    Partition,
    /// <summary>Close connections at random on some links.</summary>
    Lossy,
    /// <summary>Hold bytes for a while on some links.</summary>
    Delay,
    /// <summary>SIGKILL a server for good; when the fault heals a fresh server joins at a new address (new ports, new proxies).</summary>
    Replace,
    /// <summary>
    /// Kill the backup so that another server becomes backup, then SIGKILL that new backup during its state transfer
    /// (the view has it as backup and is not acknowledged yet); both start again (empty, same ports) when the fault heals.
    /// </summary>
    SyncKill,
    /// <summary>Black-hole replication both ways between primary and backup for 3-8 s (longer than the detection bound) while both still reach the coordinator.</summary>
    Cut,
    /// <summary>Take bytes in on some links but pass nothing (or a trickle) on, without closing anything; everything goes on when it heals.</summary>
    Stall,
    /// <summary>SIGKILL the coordinator group's leader; start it again on its data directory when the fault heals.</summary>
    CKill,
    /// <summary>SIGSTOP the coordinator group's leader, SIGCONT when the fault heals (half the pauses outlast an election).</summary>
    CPause,
    /// <summary>
    /// Black-hole every server's links to the coordinator group's leader, both ways, while the leader keeps leading
    /// (the other members still name it), until the fault heals.
    /// </summary>
    CPart,
    /// <summary>SIGKILL a minority of the group's members, never the leader (1 of 3, 2 of 5); start them again when the fault heals.</summary>
    CMinority,
    /// <summary>SIGKILL every member of the coordinator group; start them all again on their data directories when the fault heals.</summary>
    CAllKill,
}

/// <summary>A role in the current view, read from the coordinator when a fault starts.</summary>
public enum Role
{
    /// <summary>The view's primary.</summary>
    Primary,
    /// <summary>The view's backup.</summary>
    Backup,
}

/// <summary>Which links a partition, loss or delay acts on (always relative to the current view).</summary>
public enum Links
{
    /// <summary>The primary's pings to every member of the coordinator group, and the replies (classic split brain).</summary>
    PrimaryCoordinator,
    /// <summary>Replication both ways between primary and backup.</summary>
    PrimaryBackup,
    /// <summary>Every client's connections to the primary.</summary>
    ClientsPrimary,
    /// <summary>Every proxied link in the cluster.</summary>
    All,
}

/// <summary>One fault of the schedule.</summary>
/// <param name="Number">1, 2, 3, ... in start order.</param>
/// <param name="Start">When it starts, after the workload starts.</param>
/// <param name="Length">How long until it heals.</param>
/// <param name="Kind">What it does.</param>
/// <param name="Target">For <see cref="FaultKind.Kill"/> and <see cref="FaultKind.Pause"/>: whom.</param>
/// <param name="Links">For partitions, loss and delay: where.</param>
/// <param name="OneWay">For loss and delay: only requests (forward) or only replies; null for both ways.</param>
/// <param name="DropShare">For <see cref="FaultKind.Lossy"/>: probability that a chunk of bytes closes its connection.</param>
/// <param name="DelayMs">For <see cref="FaultKind.Delay"/>: how long bytes are held; for <see cref="FaultKind.SyncKill"/>: the delay
/// put on the primary's link to the new backup, so that the state transfer takes a while.</param>
/// <param name="TrickleBytes">For <see cref="FaultKind.Stall"/>: bytes passed on per 100 ms (0: nothing).</param>
/// <param name="Choice">For <see cref="FaultKind.CMinority"/>: which followers (the first of them, counted from this draw modulo their number).</param>
public sealed record PlannedFault(int Number, TimeSpan Start, TimeSpan Length, FaultKind Kind, Role Target, Links Links,
    bool? OneWay, double DropShare, int DelayMs, int TrickleBytes = 0, int Choice = 0)
{
    /// <summary>Whether the fault acts on the coordinator group (its own track of the schedule) rather than on the servers.</summary>
    public bool OnCoordinators => FaultPlan.IsCoordinatorFault(Kind);

    /// <summary>For logs and <c>--dry-run</c>: one line.</summary>
    public string Describe()
    {
        string what = Kind switch
        {
            FaultKind.Kill => $"kill {Target.ToString().ToLowerInvariant()}",
            FaultKind.Pause => $"pause {Target.ToString().ToLowerInvariant()}",
            FaultKind.Partition => $"partition {LinksName}",
            FaultKind.Lossy => $"lossy {LinksName}{Way} drop={DropShare.ToString("0.000", CultureInfo.InvariantCulture)}",
            FaultKind.Replace => $"replace {Target.ToString().ToLowerInvariant()} (dies for good; a fresh server joins at a new address)",
            FaultKind.SyncKill => $"synckill new backup during its state transfer (primary->new backup delayed {DelayMs}ms)",
            FaultKind.Cut => $"cut {LinksName}",
            FaultKind.Stall => $"stall {LinksName}{Way} {(TrickleBytes > 0 ? $"trickle {TrickleBytes}B/100ms" : "nothing passes")}",
            FaultKind.CKill => "ckill coordinator leader (restarts on its data dir)",
            FaultKind.CPause => "cpause coordinator leader",
            FaultKind.CPart => "cpart every server<->coordinator leader",
            FaultKind.CMinority => $"cminority kill a minority of the coordinators, not the leader (choice {Choice})",
            FaultKind.CAllKill => "callkill every coordinator (all restart on their data dirs)",
            _ => $"delay {LinksName}{Way} {DelayMs}ms",
        };
        return string.Create(CultureInfo.InvariantCulture, $"#{Number} at {Start.TotalSeconds:0.000}s for {Length.TotalMilliseconds:0}ms: {what}");
    }

    private string LinksName => Links switch
    {
        Links.PrimaryCoordinator => "primary<->coordinator",
        Links.PrimaryBackup => "primary<->backup",
        Links.ClientsPrimary => "clients<->primary",
        _ => "all-links",
    };

    private string Way => OneWay switch { true => " (requests only)", false => " (replies only)", null => "" };
}

/// <summary>The fault schedule, drawn from the seed alone (roles and the leader are resolved when each fault starts).</summary>
public static class FaultPlan
{
    /// <summary>At most this many server faults are active at once (coordinator faults come on top, one at a time).</summary>
    public const int MaxConcurrent = 2;

    /// <summary>
    /// At most this many <see cref="FaultKind.Replace"/> faults per run (later draws become <see cref="FaultKind.Kill"/>):
    /// every server identity the run may use is set up before the first server starts (each server's routes name
    /// every other one), so their number must stay modest.
    /// </summary>
    public const int MaxReplacements = 12;

    /// <summary>Every fault kind by its name on the command line and in the summary (<c>kill</c>, ..., <c>callkill</c>).</summary>
    public static IReadOnlyDictionary<string, FaultKind> Names { get; } =
        Enum.GetValues<FaultKind>().ToDictionary(k => Name(k), k => k, StringComparer.OrdinalIgnoreCase);

    /// <summary>The name of <paramref name="kind"/> on the command line and in the summary: its enum name in lower case.</summary>
    public static string Name(FaultKind kind) => kind.ToString().ToLowerInvariant();

    /// <summary>Whether <paramref name="kind"/> acts on the coordinator group.</summary>
    public static bool IsCoordinatorFault(FaultKind kind) => kind >= FaultKind.CKill;

    /// <summary>
    /// Parses a comma-separated list of fault names (<see cref="Names"/>); throws <see cref="FormatException"/>
    /// naming an unknown one.
    /// </summary>
    public static IReadOnlySet<FaultKind> ParseKinds(string list)
    {
        ArgumentNullException.ThrowIfNull(list);
        var kinds = new HashSet<FaultKind>();
        foreach (string name in list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!Names.TryGetValue(name, out FaultKind kind))
                throw new FormatException($"'{name}' is not a fault kind (one of {string.Join(", ", Names.Keys)})");
            kinds.Add(kind);
        }
        return kinds;
    }

    /// <summary>How many fresh servers <paramref name="plan"/> brings in (the cluster prepares that many extra identities).</summary>
    public static int Replacements(IEnumerable<PlannedFault> plan) => plan.Count(f => f.Kind == FaultKind.Replace);

    /// <summary>
    /// Draws the schedule for <paramref name="seed"/> over <paramref name="duration"/>, as two tracks that overlap:
    /// <list type="bullet">
    /// <item>server faults last 0.3-3 s (cuts 3-8 s, stalls 0.3-5 s); at most <see cref="MaxConcurrent"/> overlap; a
    /// kill, replacement or sync-kill starts only when no other server fault is active, so it never destroys a copy
    /// while the other copy is in doubt;</item>
    /// <item>coordinator faults (<see cref="IsCoordinatorFault"/>) come one at a time, 1-4 s apart, each for 0.1-5 s,
    /// on top of whatever the servers suffer. With one member, nothing is drawn that needs others
    /// (<see cref="FaultKind.CMinority"/>).</item>
    /// </list>
    /// Kinds in <paramref name="disabled"/> are never drawn. Faults are numbered in start order.
    /// </summary>
    /// <param name="seed">The run's seed.</param>
    /// <param name="duration">How long faults are injected.</param>
    /// <param name="coordinators">Members of the coordinator group (1 or more).</param>
    /// <param name="disabled">Kinds to leave out.</param>
    public static IReadOnlyList<PlannedFault> Generate(int seed, TimeSpan duration, int coordinators = 3, IReadOnlySet<FaultKind>? disabled = null)
    {
        disabled ??= new HashSet<FaultKind>();
        List<PlannedFault> all = [.. ServerFaults(seed, duration, disabled), .. CoordinatorFaults(seed, duration, coordinators, disabled)];
        return [.. all.OrderBy(f => f.Start).ThenBy(f => f.OnCoordinators).Select((f, i) => f with { Number = i + 1 })];
    }

    private static List<PlannedFault> ServerFaults(int seed, TimeSpan duration, IReadOnlySet<FaultKind> disabled)
    {
        (FaultKind, int)[] weights = [.. new[] { (FaultKind.Kill, 14), (FaultKind.Pause, 18), (FaultKind.Partition, 30), (FaultKind.Lossy, 17),
            (FaultKind.Delay, 17), (FaultKind.Replace, 8), (FaultKind.SyncKill, 6), (FaultKind.Cut, 7), (FaultKind.Stall, 12) }
            .Where(w => !disabled.Contains(w.Item1))];
        var random = new Random(seed);
        var faults = new List<PlannedFault>();
        if (weights.Length == 0) return faults;
        double end = duration.TotalSeconds;
        double t = Math.Min(1.0, end / 4);
        int replacements = 0;
        while (t < end - 0.3)
        {
            FaultKind kind = Pick(random, weights);
            double length = 0.3 + random.NextDouble() * 2.7;
            Role target = Role.Primary;
            Links links = Links.All;
            bool? oneWay = null;
            double drop = 0;
            int delay = 0, trickle = 0;
            if (kind == FaultKind.Replace && replacements >= MaxReplacements) kind = FaultKind.Kill;
            if (disabled.Contains(kind))
            {
                t += 0.4 + random.NextDouble() * 1.6;
                continue;
            }
            switch (kind)
            {
                case FaultKind.Replace:
                    replacements++;
                    target = random.Next(2) == 0 ? Role.Primary : Role.Backup;
                    break;
                case FaultKind.SyncKill:
                    target = Role.Backup;
                    delay = 20 + random.Next(180);
                    break;
                case FaultKind.Cut:
                    links = Links.PrimaryBackup;
                    length = 3 + random.NextDouble() * 5;
                    break;
                case FaultKind.Stall:
                    links = Pick(random, (Links.PrimaryCoordinator, 20), (Links.PrimaryBackup, 35), (Links.ClientsPrimary, 30), (Links.All, 15));
                    oneWay = OneWay(random);
                    length = 0.3 + random.NextDouble() * 4.7;
                    trickle = random.Next(3) == 0 ? 1 + random.Next(64) : 0;
                    break;
                case FaultKind.Kill:
                    target = random.Next(2) == 0 ? Role.Primary : Role.Backup;
                    break;
                case FaultKind.Pause:
                    target = Pick(random, (Role.Primary, 55), (Role.Backup, 45));
                    // Half shorter than the dead time (500 ms), half longer.
                    length = random.Next(2) == 0 ? 0.1 + random.NextDouble() * 0.35 : 0.6 + random.NextDouble() * 2.4;
                    break;
                case FaultKind.Partition:
                    links = Pick(random, (Links.PrimaryCoordinator, 40), (Links.PrimaryBackup, 30), (Links.ClientsPrimary, 30));
                    break;
                case FaultKind.Lossy:
                    links = Pick(random, (Links.PrimaryCoordinator, 20), (Links.PrimaryBackup, 30), (Links.ClientsPrimary, 30), (Links.All, 20));
                    oneWay = OneWay(random);
                    drop = 0.01 + random.NextDouble() * 0.19;
                    break;
                case FaultKind.Delay:
                    links = Pick(random, (Links.PrimaryCoordinator, 20), (Links.PrimaryBackup, 30), (Links.ClientsPrimary, 30), (Links.All, 20));
                    oneWay = OneWay(random);
                    delay = 5 + random.Next(300);
                    break;
            }

            // Respect the overlap rules by moving the start later, never by changing the draw.
            while (true)
            {
                var active = faults.Where(f => (f.Start + f.Length).TotalSeconds > t).ToList();
                if ((kind is FaultKind.Kill or FaultKind.Replace or FaultKind.SyncKill) && active.Count > 0) t = active.Max(f => (f.Start + f.Length).TotalSeconds) + 0.2;
                else if (active.Count >= MaxConcurrent) t = active.Min(f => (f.Start + f.Length).TotalSeconds) + 0.05;
                else break;
            }
            if (t >= end - 0.3) break;
            faults.Add(new PlannedFault(faults.Count + 1, TimeSpan.FromSeconds(t), TimeSpan.FromSeconds(length), kind, target, links, oneWay, drop, delay, trickle));
            t += 0.4 + random.NextDouble() * 1.6;
        }
        return faults;
    }

    private static List<PlannedFault> CoordinatorFaults(int seed, TimeSpan duration, int coordinators, IReadOnlySet<FaultKind> disabled)
    {
        (FaultKind, int)[] weights = [.. new[] { (FaultKind.CKill, 25), (FaultKind.CPause, 25), (FaultKind.CPart, 20), (FaultKind.CMinority, 18), (FaultKind.CAllKill, 12) }
            .Where(w => !disabled.Contains(w.Item1) && (w.Item1 != FaultKind.CMinority || coordinators >= 3))];
        // A track of its own, so that the server faults of a seed stay what they were without it.
        var random = new Random(unchecked(seed * 31 + 7));
        var faults = new List<PlannedFault>();
        if (weights.Length == 0) return faults;
        double end = duration.TotalSeconds;
        double t = Math.Min(2.0, end / 3);
        while (t < end - 0.3)
        {
            FaultKind kind = Pick(random, weights);
            double length = kind switch
            {
                // Half shorter than an election (150-300 ms), half well beyond it.
                FaultKind.CPause => random.Next(2) == 0 ? 0.1 + random.NextDouble() * 0.2 : 0.6 + random.NextDouble() * 2.9,
                FaultKind.CPart => 0.5 + random.NextDouble() * 3.5,
                FaultKind.CMinority => 0.5 + random.NextDouble() * 4.5,
                _ => 0.3 + random.NextDouble() * 2.7,
            };
            int choice = random.Next(1000);
            faults.Add(new PlannedFault(0, TimeSpan.FromSeconds(t), TimeSpan.FromSeconds(length), kind, Role.Primary, Links.All, null, 0, 0, 0, choice));
            // The next one starts 1-4 s after this one healed (a restarted member needs a moment to come back).
            t += length + 1 + random.NextDouble() * 3;
        }
        return faults;
    }

    private static bool? OneWay(Random random) => random.Next(4) switch { 0 => true, 1 => false, _ => null };

    private static T Pick<T>(Random random, params (T Value, int Weight)[] choices)
    {
        int roll = random.Next(choices.Sum(c => c.Weight));
        foreach ((T value, int weight) in choices)
        {
            if (roll < weight) return value;
            roll -= weight;
        }
        return choices[^1].Value;
    }
}
