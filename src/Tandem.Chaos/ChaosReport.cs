using System.Globalization;
using Tandem.Checker;

namespace Tandem.Chaos;

/// <summary>What one fault campaign found.</summary>
public sealed record ChaosReport
{
    /// <summary>The seed of the run.</summary>
    public required int Seed { get; init; }

    /// <summary>How long faults were injected.</summary>
    public required TimeSpan Duration { get; init; }

    /// <summary>Operations recorded, final reads included.</summary>
    public required int Operations { get; init; }

    /// <summary>Operations that got their reply.</summary>
    public required int Ok { get; init; }

    /// <summary>Writes that may or may not have taken effect (timeout, lost connection, TRYAGAIN).</summary>
    public required int Unknown { get; init; }

    /// <summary>Operations that certainly did not take effect (refused, or reads without an answer).</summary>
    public required int Failed { get; init; }

    /// <summary>Faults applied, by kind.</summary>
    public required IReadOnlyDictionary<FaultKind, int> Faults { get; init; }

    /// <summary>Faults of the plan that were skipped because their target did not exist when they were due.</summary>
    public required int SkippedFaults { get; init; }

    /// <summary>The longest time no member of the coordinator group led (as the chaos process saw it, polling ten times a second).</summary>
    public TimeSpan LongestWithoutLeader { get; init; }

    /// <summary>Time from healing everything until a write succeeded; null if none did within the limit.</summary>
    public required TimeSpan? Liveness { get; init; }

    /// <summary>Acknowledged appends whose token is missing from the final value of their key.</summary>
    public required int Lost { get; init; }

    /// <summary>Append tokens found more than once in a final value (a request applied twice).</summary>
    public required int Duplicated { get; init; }

    /// <summary>Keys whose final read did not succeed (the lost and duplicated counts could not look at them).</summary>
    public required int UnreadKeys { get; init; }

    /// <summary>Exactly-once writes answered "session expired" (recorded as unknown: they may have taken effect once).</summary>
    public int SessionsExpired { get; init; }

    /// <summary>Increments of the counter keys: acknowledged, unknown, and the sum of their final values (acknowledged &lt;= sum &lt;= acknowledged + unknown, or it counts as lost or duplicated).</summary>
    public (int Acknowledged, int Unknown, long Total) Counters { get; init; }

    /// <summary>Keys set with a short PX, and answered reads of them.</summary>
    public (int Keys, int Reads) Expiry { get; init; }

    /// <summary>Reads of a PX key that broke its expiry (seen again after seen gone, and the like).</summary>
    public int ExpiryViolations { get; init; }

    /// <summary>Operations recorded, by kind.</summary>
    public IReadOnlyDictionary<OpKind, int> Kinds { get; init; } = new Dictionary<OpKind, int>();

    /// <summary>Commands the clients sent, by name and option.</summary>
    public IReadOnlyDictionary<string, int> Commands { get; init; } = new Dictionary<string, int>();

    /// <summary>The checker's verdict over the whole history.</summary>
    public required Verdict Verdict { get; init; }

    /// <summary>The checker's full result.</summary>
    public required CheckResult Check { get; init; }

    /// <summary>Where logs, history and timelines were kept; null when nothing was kept.</summary>
    public string? OutputDirectory { get; init; }

    /// <summary>Human-readable details of every violation found (empty when the run passed).</summary>
    public required IReadOnlyList<string> Problems { get; init; }

    /// <summary>True when the history is linearizable, nothing acknowledged was lost or duplicated, and the cluster recovered.</summary>
    public bool Passed => Verdict == Verdict.Linearizable && Lost == 0 && Duplicated == 0 && UnreadKeys == 0 && ExpiryViolations == 0 && Liveness is not null;

    /// <summary>0 passed; 3 the checker could not decide within its budget (and nothing else failed); 1 a violation.</summary>
    public int ExitCode => Passed ? 0
        : Verdict == Verdict.Unknown && Lost == 0 && Duplicated == 0 && UnreadKeys == 0 && ExpiryViolations == 0 && Liveness is not null ? 3
        : 1;

    /// <summary>Total faults applied.</summary>
    public int FaultCount => Faults.Values.Sum();

    /// <summary>The one summary line.</summary>
    public string Summary => string.Create(CultureInfo.InvariantCulture,
        $"chaos seed={Seed} duration={Format(Duration)} ops={Operations} ok={Ok} unknown={Unknown} failed={Failed} " +
        $"faults: kill={Count(FaultKind.Kill)} pause={Count(FaultKind.Pause)} partition={Count(FaultKind.Partition)} " +
        $"lossy={Count(FaultKind.Lossy)} delay={Count(FaultKind.Delay)} replace={Count(FaultKind.Replace)} " +
        $"synckill={Count(FaultKind.SyncKill)} cut={Count(FaultKind.Cut)} stall={Count(FaultKind.Stall)} " +
        $"ckill={Count(FaultKind.CKill)} cpause={Count(FaultKind.CPause)} cpart={Count(FaultKind.CPart)} " +
        $"cminority={Count(FaultKind.CMinority)} callkill={Count(FaultKind.CAllKill)} noleader={LongestWithoutLeader.TotalSeconds:0.0}s " +
        $"liveness={(Liveness is { } l ? $"{l.TotalSeconds:0.0}s" : "FAILED")} lost={Lost} duplicated={Duplicated} " +
        $"{(UnreadKeys > 0 ? $"unread={UnreadKeys} " : "")}{(SessionsExpired > 0 ? $"expired={SessionsExpired} " : "")}verdict={Verdict}");

    /// <summary>The second line: the counter and expiry checks, and the operations by kind and by command.</summary>
    public string Details => string.Create(CultureInfo.InvariantCulture,
        $"checks: counters acked={Counters.Acknowledged} unknown={Counters.Unknown} final={Counters.Total} " +
        $"expiry keys={Expiry.Keys} reads={Expiry.Reads} violations={ExpiryViolations}; " +
        $"kinds: {string.Join(' ', Kinds.Select(k => $"{k.Key}={k.Value}"))}; " +
        $"commands: {string.Join(' ', Commands.Select(c => $"{c.Key.Replace(' ', '+')}={c.Value}"))}");

    private int Count(FaultKind kind) => Faults.TryGetValue(kind, out int n) ? n : 0;

    internal static string Format(TimeSpan t) => Tandem.Client.DurationParser.Format(t);
}
