using System.Diagnostics;
using System.Globalization;
using Tandem.Checker;
using Tandem.Client;

namespace Tandem.Chaos;

/// <summary>
/// Runs one fault campaign: starts a coordinator group (each member a process with its own data directory) and three
/// servers as real processes behind fault-injecting proxies, runs the clients while the nemesis plays the seed's
/// server and coordinator faults, heals everything, measures how long until a write succeeds again, reads every key,
/// and checks the recorded history for linearizability, lost acknowledged appends and requests applied twice.
/// </summary>
public static class ChaosRunner
{
    /// <summary>
    /// Runs the campaign. Progress and, on failure, the details go to <paramref name="log"/>; the summary line is
    /// <see cref="ChaosReport.Summary"/> (the caller prints it).
    /// </summary>
    public static async Task<ChaosReport> RunAsync(ChaosOptions options, TextWriter log, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(log);
        options.Validate();
        TandemCommand tandem = options.Tandem ?? TandemCommand.CurrentProcess();
        bool keep = options.OutputDirectory is not null;
        string directory = options.OutputDirectory ?? Path.Combine(Path.GetTempPath(), $"tandem-chaos-{options.Seed}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(directory);
        IReadOnlyList<PlannedFault> plan = options.Plan();
        await File.WriteAllLinesAsync(Path.Combine(directory, "schedule.txt"), options.DescribeWorkload().Concat(plan.Select(f => f.Describe())), cancellationToken);

        using var events = new StreamWriter(Path.Combine(directory, "events.log")) { AutoFlush = true };
        var run = Stopwatch.StartNew();
        void Event(string line)
        {
            string stamped = string.Create(CultureInfo.InvariantCulture, $"{run.Elapsed.TotalSeconds,8:0.000} {line}");
            lock (events)
            {
                events.WriteLine(stamped);
                if (options.Verbose) log.WriteLine(stamped);
            }
        }

        ChaosReport report;
        await using (Cluster cluster = Cluster.Start(options, tandem, directory, FaultPlan.Replacements(plan)))
        {
            Event($"started coordinators {string.Join(", ", cluster.Coordinators.Select(c => $"{c.Name}={c.Address}"))}, servers {string.Join(", ", cluster.Slots.Select(s => $"{s.Name}={s.Identity}"))} ({tandem})");
            await cluster.StartAsync(Event, cancellationToken);
            report = await CampaignAsync(options, cluster, plan, directory, Event, log, cancellationToken);
        }

        if (!report.Passed || keep)
        {
            log.Flush();
            return report with { OutputDirectory = directory };
        }
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
        return report;
    }

    private static async Task<ChaosReport> CampaignAsync(ChaosOptions options, Cluster cluster, IReadOnlyList<PlannedFault> plan,
        string directory, Action<string> log, TextWriter output, CancellationToken ct)
    {
        var history = new HistoryRecorder();
        var workload = new Workload(options, cluster.CoordinatorList, history, log);
        var nemesis = new Nemesis(cluster, () => history.Elapsed, log);
        string spill = Directory.CreateDirectory(Path.Combine(directory, "history")).FullName;
        var verifier = new Verifier(options, workload, history, cluster.CoordinatorList, spill, log);
        var watch = new LeaderWatch(cluster, log);

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var stopWatching = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task watching = watch.RunAsync(stopWatching.Token);
        Task clients = workload.RunAsync(stop.Token, ct);
        Task verifying = verifier.RunAsync(clients, ct);
        Task faults = nemesis.RunAsync(plan, stop.Token);
        await Task.WhenAny(Task.Delay(options.Duration, ct), clients, verifying);
        ct.ThrowIfCancellationRequested();
        if (verifying.IsFaulted) await verifying;
        stop.Cancel();
        await faults;
        log("schedule over: healing everything");
        await nemesis.HealAllAsync();
        verifier.Healed();

        // Liveness: how long until a write succeeds again.
        TimeSpan? liveness = await LivenessAsync(options, cluster, ct);
        log(liveness is { } l ? $"a write succeeded {l.TotalSeconds:0.000}s after healing" : $"no write succeeded within {options.LivenessLimit.TotalSeconds:0}s of healing");
        await stopWatching.CancelAsync();
        await watching;
        await clients;
        // The epochs not verified yet get their final reads now, after everything healed.
        await verifying;
        log("checking linearizability");
        await verifier.CheckAsync(keepFiles: options.OutputDirectory is not null, ct);

        CheckResult check = verifier.Result;
        var problems = new List<string>(verifier.Problems);
        if (liveness is null) problems.Add($"liveness: no write succeeded within {options.LivenessLimit.TotalSeconds:0}s after every fault healed");
        var report = new ChaosReport
        {
            Seed = options.Seed,
            Duration = options.Duration,
            Operations = verifier.Operations,
            Ok = verifier.Ok,
            Unknown = verifier.Unknown,
            Failed = verifier.Failed,
            Faults = nemesis.Applied,
            SkippedFaults = nemesis.Skipped,
            LongestWithoutLeader = watch.LongestWithoutLeader,
            Liveness = liveness,
            Lost = verifier.Lost,
            Duplicated = verifier.Duplicated,
            UnreadKeys = verifier.Unread,
            SessionsExpired = workload.SessionsExpired,
            Counters = (verifier.CounterAcked, verifier.CounterUnknown, verifier.CounterTotal),
            Expiry = (verifier.ExpiryKeys, verifier.ExpiryReads),
            ExpiryViolations = verifier.ExpiryViolations,
            Kinds = verifier.Kinds,
            Commands = workload.CommandCounts,
            Verdict = check.Verdict,
            Check = check,
            Problems = problems,
        };
        log($"checker: {check.Summary}");
        log(report.Summary);
        log(report.Details);

        if (!report.Passed)
        {
            foreach (string problem in problems) output.WriteLine(problem);
            foreach ((string key, List<HistoryOp> ops) in verifier.Suspects.Take(5))
            {
                string path = Path.Combine(directory, $"timeline-{key}.html");
                try
                {
                    LinearizabilityChecker.WriteTimelineHtml(ops, key, path);
                    output.WriteLine($"timeline of {key}: {path}");
                }
                catch (Exception e) when (e is IOException or ArgumentException or InvalidOperationException)
                {
                    output.WriteLine($"timeline of {key} not written: {e.Message}");
                }
            }
            output.WriteLine($"node logs, schedule, events and the failing epochs' histories (history/*.jsonl.gz): {directory}");
        }
        return report;
    }

    private static async Task<TimeSpan?> LivenessAsync(ChaosOptions options, Cluster cluster, CancellationToken ct)
    {
        var since = Stopwatch.StartNew();
        await using var client = new TandemClient(new TandemClientOptions { Coordinator = cluster.CoordinatorList, OperationTimeout = TimeSpan.FromSeconds(1) });
        for (int attempt = 0; since.Elapsed < options.LivenessLimit; attempt++)
        {
            try
            {
                await client.PutAsync("chaos.liveness", attempt.ToString(CultureInfo.InvariantCulture), ct);
                return since.Elapsed;
            }
            catch (Exception e) when (e is TimeoutException or TandemException)
            {
            }
        }
        return null;
    }

    /// <summary>
    /// Runs the linearizability checker again over the histories a campaign kept (<c>--out DIR</c>); prints one summary
    /// line. Exit code semantics as for a run: 0 linearizable, 1 violation, 3 undecided.
    /// </summary>
    public static async Task<int> RecheckAsync(string directory, TimeSpan budget, TextWriter output, CancellationToken cancellationToken)
    {
        (CheckResult result, int operations, int epochs) = await Verifier.RecheckAsync(directory, budget, output, cancellationToken);
        await output.WriteLineAsync(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"recheck {directory}: epochs={epochs} ops={operations} keys={result.Keys.Count} verdict={result.Verdict} ({result.Elapsed.TotalSeconds:0.0}s)"));
        return result.Verdict switch { Verdict.Linearizable => 0, Verdict.NotLinearizable => 1, _ => 3 };
    }
}
