using System.Diagnostics;
using System.Reflection;

namespace Tandem.Chaos;

/// <summary>How to start the <c>tandem</c> executable: a program and the arguments that come before the command.</summary>
/// <param name="FileName">The program, for example <c>/usr/bin/tandem</c> or <c>dotnet</c>.</param>
/// <param name="Arguments">Arguments before the command, for example the path of <c>tandem.dll</c> when the program is <c>dotnet</c>.</param>
public sealed record TandemCommand(string FileName, IReadOnlyList<string> Arguments)
{
    /// <summary>
    /// The executable this process runs as: <see cref="Environment.ProcessPath"/>, or <c>dotnet</c> plus the entry
    /// assembly when the process is the <c>dotnet</c> host.
    /// </summary>
    public static TandemCommand CurrentProcess()
    {
        string path = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown");
        string name = Path.GetFileNameWithoutExtension(path);
        if (!name.Equals("dotnet", StringComparison.OrdinalIgnoreCase)) return new TandemCommand(path, []);
        string assembly = Assembly.GetEntryAssembly()?.Location is { Length: > 0 } location ? location
            : throw new InvalidOperationException("the entry assembly of this process is unknown");
        return new TandemCommand(path, [assembly]);
    }

    /// <inheritdoc />
    public override string ToString() => string.Join(' ', [FileName, .. Arguments]);
}

/// <summary>Which operations the clients of a campaign draw (<c>--mix</c>).</summary>
public enum WorkloadMix
{
    /// <summary>
    /// Every operation (the default): Get, Put, PutHash, Append and Delete as in <see cref="Classic"/>, and INCR/INCRBY
    /// (counter keys, alone and two in a transaction), SET with NX/XX/GET/EX/KEEPTTL, GETSET, GETDEL, EXPIRE with NX/XX,
    /// PERSIST, TTL, MSET, MGET, DEL of two keys, and keys set with a short PX whose expiry is checked.
    /// </summary>
    Redis,
    /// <summary>Only Get, Put, PutHash, Append and Delete, drawn exactly as before the Redis commands (a seed gives the same operations).</summary>
    Classic,
}

/// <summary>Settings of one fault campaign (<c>tandem chaos</c>).</summary>
public sealed record ChaosOptions
{
    /// <summary>Seeds the fault schedule and every client's choice of operations; the same seed gives the same run, up to timing.</summary>
    public required int Seed { get; init; }

    /// <summary>How long faults are injected while the clients run. Default 60 s.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Concurrent clients; half use <c>TandemClient</c> (exactly-once), half plain RESP. Default 8.</summary>
    public int Clients { get; init; } = 8;

    /// <summary>Operations per second of all clients together (each client paces itself); 0 for as fast as they go. Default 2000.</summary>
    public int Rate { get; init; } = 2000;

    /// <summary>Keys in use at a time (half append-only, half for every operation). Default 8.</summary>
    public int Keys { get; init; } = 8;

    /// <summary>Key names change every epoch, so each key's history stays short for the checker. Default 5 s.</summary>
    public TimeSpan Epoch { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Where node logs, the history and timelines go. Null: a temporary directory, kept only if the run fails.</summary>
    public string? OutputDirectory { get; init; }

    /// <summary>The <c>tandem</c> executable to start nodes with. Default: this process's own executable.</summary>
    public TandemCommand? Tandem { get; init; }

    /// <summary>How long the linearizability checker may search, for each epoch's keys. Default 60 s.</summary>
    public TimeSpan CheckBudget { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long one client operation may take before it counts as unknown (writes) or failed (reads). Default 5 s.</summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>After everything heals, a write must succeed within this. Default 30 s.</summary>
    public TimeSpan LivenessLimit { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Node ping interval (coordinators and servers). Default 100 ms.</summary>
    public TimeSpan PingInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Missed pings after which the coordinator declares a server dead. Default 5.</summary>
    public int DeadPings { get; init; } = 5;

    /// <summary>Write every fault as it starts and heals to the log.</summary>
    public bool Verbose { get; init; }

    /// <summary>
    /// Keys per epoch that hold MiB-sized values (1-4 MiB: Put, Get, Delete), so replication batches split and state
    /// transfers take a while. Default 2; 0 for none.
    /// </summary>
    public int BigKeys { get; init; } = 2;

    /// <summary>
    /// Big-value operations per second at the full <see cref="Rate"/> (each operation is one with probability
    /// BigRate / Rate, so fewer when the clients fall behind their pace). Default 2.
    /// </summary>
    public double BigRate { get; init; } = 2;

    /// <summary>
    /// Passed to every server as <c>--max-sessions N</c> (a small duplicate table, so sessions of exactly-once clients
    /// are evicted while they still retry); null passes nothing, for servers without that flag.
    /// </summary>
    public int? MaxSessions { get; init; } = DefaultMaxSessions;

    /// <summary>The default <see cref="MaxSessions"/>: 64, far fewer than the sessions a campaign opens.</summary>
    public const int DefaultMaxSessions = 64;

    /// <summary>Passed to every server as <c>--backup-timeout DURATION</c>; null passes nothing (the server's default).</summary>
    public TimeSpan? BackupTimeout { get; init; }

    /// <summary>
    /// Members of the coordinator group, each a process with its own data directory under the output directory.
    /// Default 3; 1 is a group of one (no minority to kill).
    /// </summary>
    public int Coordinators { get; init; } = 3;

    /// <summary>The most coordinator members a run may have.</summary>
    public const int MaxCoordinators = 7;

    /// <summary>Which operations the clients draw. Default <see cref="WorkloadMix.Redis"/>: every one.</summary>
    public WorkloadMix Mix { get; init; } = WorkloadMix.Redis;

    /// <summary>Fault kinds never drawn (<c>--without</c>); empty by default: every kind.</summary>
    public IReadOnlySet<FaultKind> DisabledFaults { get; init; } = new HashSet<FaultKind>();

    /// <summary>The seed's fault schedule under these options.</summary>
    public IReadOnlyList<PlannedFault> Plan() => FaultPlan.Generate(Seed, Duration, Coordinators, DisabledFaults);

    /// <summary>The workload's settings that the seed and these options fix, one line each (for <c>--dry-run</c>).</summary>
    public IEnumerable<string> DescribeWorkload()
    {
        int appendKeys = Keys / 2;
        yield return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"workload: {Clients} clients (exactly-once: {string.Join(",", Enumerable.Range(0, Clients).Where(c => c % 2 == 0).Select(c => $"c{c}{(Workload.IsShortLived(c) ? "*" : "")}"))}; "
            + $"* = a new TandemClient every 1-4 operations), {appendKeys} append-only + {Keys - appendKeys} mixed keys per {Epoch.TotalSeconds:0.#}s epoch, rate {(Rate == 0 ? "unpaced" : Rate.ToString(System.Globalization.CultureInfo.InvariantCulture))}");
        yield return Mix == WorkloadMix.Classic ? "workload: mix classic (Get, Put, PutHash, Append, Delete)"
            : "workload: mix redis (also INCR/INCRBY on 2 counter keys and in transactions, SET NX/XX/GET/EX/KEEPTTL, GETSET, GETDEL, EXPIRE NX/XX, PERSIST, TTL, MSET, MGET, DEL of two keys, SET PX keys)";
        yield return BigKeys == 0 || BigRate <= 0 ? "workload: no big values"
            : string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"workload: {BigKeys} big-value keys per epoch (b0..b{BigKeys - 1}: Put 1-4 MiB, Get, Delete), about {BigRate:0.##} big operations per second");
        string backupTimeout = BackupTimeout is TimeSpan b ? "--backup-timeout " + global::Tandem.Client.DurationParser.Format(b) : "default backup timeout";
        yield return $"servers: {(MaxSessions is int m ? $"--max-sessions {m}" : "default duplicate table")}, {backupTimeout}";
        yield return $"coordinators: a group of {Coordinators}; faults left out: {(DisabledFaults.Count == 0 ? "none" : string.Join(",", DisabledFaults.Order().Select(FaultPlan.Name)))}";
    }

    internal void Validate()
    {
        if (Duration <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(Duration), "must be positive");
        if (Clients < 1) throw new ArgumentOutOfRangeException(nameof(Clients), "must be at least 1");
        if (Rate < 0) throw new ArgumentOutOfRangeException(nameof(Rate), "must not be negative");
        if (Keys < 2) throw new ArgumentOutOfRangeException(nameof(Keys), "must be at least 2");
        if (Epoch <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(Epoch), "must be positive");
        if (OperationTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(OperationTimeout), "must be positive");
        if (BigKeys < 0) throw new ArgumentOutOfRangeException(nameof(BigKeys), "must not be negative");
        if (BigRate < 0 || double.IsNaN(BigRate)) throw new ArgumentOutOfRangeException(nameof(BigRate), "must not be negative");
        if (MaxSessions is < 1) throw new ArgumentOutOfRangeException(nameof(MaxSessions), "must be at least 1");
        if (BackupTimeout is { } b && b <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(BackupTimeout), "must be positive");
        if (Coordinators is < 1 or > MaxCoordinators) throw new ArgumentOutOfRangeException(nameof(Coordinators), $"must be between 1 and {MaxCoordinators}");
        Debug.Assert(DeadPings >= 1);
    }
}
