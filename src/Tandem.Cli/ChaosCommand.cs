using System.CommandLine;
using System.Runtime.InteropServices;
using Tandem.Chaos;
using Tandem.Checker;

namespace Tandem.Cli;

/// <summary><c>tandem chaos</c>: the fault campaign (the engine is <see cref="ChaosRunner"/>).</summary>
internal static class ChaosCommand
{
    public static Command Create()
    {
        var seed = new Option<int?>("--seed") { HelpName = "N", Description = "Seeds the fault schedule and the clients' choices; same seed, same run (up to timing). Default: random, printed." };
        Option<TimeSpan?> duration = CliParsers.Duration("--duration", TimeSpan.FromSeconds(60), "How long to inject faults.");
        var clients = new Option<int>("--clients") { HelpName = "N", Description = "Concurrent clients, half exactly-once, half plain RESP.", DefaultValueFactory = _ => 8 };
        CliParsers.Reject(clients, r => r.GetValueOrDefault<int>() is < 1 or > 256, "--clients must be between 1 and 256");
        var rate = new Option<int>("--rate") { HelpName = "N", Description = "Operations per second of all clients together; 0 for unpaced.", DefaultValueFactory = _ => 2000 };
        CliParsers.Reject(rate, r => r.GetValueOrDefault<int>() < 0, "--rate must not be negative");
        var keys = new Option<int>("--keys") { HelpName = "N", Description = "Keys in use at a time (half append-only).", DefaultValueFactory = _ => 8 };
        CliParsers.Reject(keys, r => r.GetValueOrDefault<int>() is < 2 or > 10_000, "--keys must be between 2 and 10000");
        var output = new Option<string?>("--out") { HelpName = "DIR", Description = "Keep node logs, schedule, events, history and timelines here. Default: a temporary directory, kept only on failure." };
        Option<TimeSpan?> budget = CliParsers.Duration("--check-budget", TimeSpan.FromSeconds(60), "Time the linearizability checker may take.");
        var verbose = new Option<bool>("--verbose") { Description = "Print every fault as it starts and heals." };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the workload settings and the fault schedule of the seed and exit." };
        var bigKeys = new Option<int>("--big-keys") { HelpName = "N", Description = "Keys per epoch with 1-4 MiB values; 0 for none.", DefaultValueFactory = _ => 2 };
        CliParsers.Reject(bigKeys, r => r.GetValueOrDefault<int>() is < 0 or > 64, "--big-keys must be between 0 and 64");
        var bigRate = new Option<double>("--big-rate") { HelpName = "N", Description = "Big-value operations per second at the full --rate, all clients together.", DefaultValueFactory = _ => 2 };
        CliParsers.Reject(bigRate, r => r.GetValueOrDefault<double>() is < 0 or > 1000 || double.IsNaN(r.GetValueOrDefault<double>()), "--big-rate must be between 0 and 1000");
        var mix = new Option<WorkloadMix>("--mix")
        {
            HelpName = "redis|classic",
            Description = "Operations the clients draw: redis (default: also INCR, counters and transactions, SET with options, GETSET, GETDEL, "
                + "EXPIRE, PERSIST, TTL, MSET, MGET, DEL of two keys, keys with a short PX) or classic (Get, Put, PutHash, Append, Delete).",
            DefaultValueFactory = _ => WorkloadMix.Redis,
        };
        var maxSessions = new Option<int?>("--max-sessions")
        {
            HelpName = "N",
            Description = "Pass --max-sessions N to every server: a small duplicate table, so sessions are evicted while clients retry.",
            DefaultValueFactory = _ => ChaosOptions.DefaultMaxSessions,
        };
        CliParsers.Reject(maxSessions, r => r.GetValueOrDefault<int?>() is < 1, "--max-sessions must be at least 1");
        var backupTimeout = new Option<TimeSpan?>("--backup-timeout")
        {
            HelpName = "DURATION",
            Description = "Pass --backup-timeout DURATION to every server. Default: not passed (the server's default).",
            CustomParser = result =>
            {
                string text = result.Tokens.Single().Value;
                if (Tandem.Client.DurationParser.TryParse(text, out TimeSpan value) && value > TimeSpan.Zero) return value;
                result.AddError($"--backup-timeout: '{text}' is not a positive duration (for example 1500ms, 2s)");
                return null;
            },
        };
        var coordinators = new Option<int>("--coordinators")
        {
            HelpName = "N",
            Description = "Members of the coordinator group, each a process with its own data directory under the output directory (1 allowed).",
            DefaultValueFactory = _ => 3,
        };
        CliParsers.Reject(coordinators, r => r.GetValueOrDefault<int>() is < 1 or > ChaosOptions.MaxCoordinators, $"--coordinators must be between 1 and {ChaosOptions.MaxCoordinators}");
        var without = new Option<IReadOnlySet<FaultKind>>("--without")
        {
            HelpName = "KIND,...",
            Description = $"Leave these fault kinds out of the schedule: {string.Join(", ", FaultPlan.Names.Keys)}.",
            DefaultValueFactory = _ => new HashSet<FaultKind>(),
            CustomParser = result =>
            {
                try
                {
                    return FaultPlan.ParseKinds(string.Join(",", result.Tokens.Select(t => t.Value)));
                }
                catch (FormatException e)
                {
                    result.AddError($"--without: {e.Message}");
                    return new HashSet<FaultKind>();
                }
            },
        };
        var recheck = new Option<string?>("--recheck")
        {
            HelpName = "DIR",
            Description = "Check again the histories a run kept with --out DIR (with --check-budget), instead of running a campaign.",
        };

        var command = new Command("chaos", "Run a fault campaign: a coordinator group and 3 servers as processes behind fault-injecting proxies, "
            + "concurrent clients, kills, pauses, partitions, loss, delay, replacements, sync-kills, cuts and stalls on the servers, and at the same time "
            + "kills, pauses and partitions of the group's leader, kills of a minority and of every member; then check the history for linearizability. "
            + "Exit 0 pass, 1 violation, 3 checker undecided.")
        { seed, duration, clients, rate, keys, output, budget, verbose, dryRun, recheck, bigKeys, bigRate, mix, maxSessions, backupTimeout, coordinators, without };
        command.SetAction(async (parse, ct) =>
        {
            int n = parse.GetValue(seed) ?? Random.Shared.Next(1, 1_000_000);
            TimeSpan length = parse.GetDuration(duration, TimeSpan.FromSeconds(60));
            if (parse.GetValue(recheck) is { } kept)
                return await ChaosRunner.RecheckAsync(Path.GetFullPath(kept), parse.GetDuration(budget, TimeSpan.FromSeconds(60)), Console.Out, ct);
            var options = new ChaosOptions
            {
                BigKeys = parse.GetValue(bigKeys),
                BigRate = parse.GetValue(bigRate),
                Mix = parse.GetValue(mix),
                MaxSessions = parse.GetValue(maxSessions),
                BackupTimeout = parse.GetValue(backupTimeout),
                Seed = n,
                Duration = length,
                Clients = parse.GetValue(clients),
                Keys = parse.GetValue(keys),
                Rate = parse.GetValue(rate),
                OutputDirectory = parse.GetValue(output) is { } dir ? Path.GetFullPath(dir) : null,
                CheckBudget = parse.GetDuration(budget, TimeSpan.FromSeconds(60)),
                Verbose = parse.GetValue(verbose),
                Coordinators = parse.GetValue(coordinators),
                DisabledFaults = parse.GetValue(without) ?? new HashSet<FaultKind>(),
            };
            if (parse.GetValue(dryRun))
            {
                foreach (string line in options.DescribeWorkload()) Console.WriteLine(line);
                foreach (PlannedFault fault in options.Plan()) Console.WriteLine(fault.Describe());
                return 0;
            }

            // Ctrl-C or SIGTERM stops the run; the child processes are killed on the way out.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            void OnSignal(PosixSignalContext context)
            {
                context.Cancel = true;
                stop.Cancel();
            }
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

            ChaosReport report;
            try
            {
                report = await ChaosRunner.RunAsync(options, Console.Out, stop.Token);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return NodeCommands.Fail($"chaos seed={n}: stopped");
            }
            catch (Exception e) when (e is InvalidOperationException or IOException)
            {
                return NodeCommands.Fail($"chaos seed={n}: {e.Message}");
            }
            Console.WriteLine(report.Summary);
            Console.WriteLine(report.Details);
            if (report.Verdict == Verdict.Unknown)
                Console.WriteLine($"UNDECIDED seed={n}: the checker ran out of its {parse.GetDuration(budget, TimeSpan.FromSeconds(60)).TotalSeconds:0}s budget; "
                    + "this is not a pass (try --check-budget, or more --keys for shorter key histories)");
            if (report.ExitCode == 1)
                Console.WriteLine($"FAILED seed={n} (replay: tandem chaos --seed {n} --duration {Tandem.Client.DurationParser.Format(length)}{Extra(options)})");
            if (report.OutputDirectory is not null && report.Passed) Console.WriteLine($"output: {report.OutputDirectory}");
            return report.ExitCode;
        });
        return command;
    }

    private static string Extra(ChaosOptions o) =>
        (o.Clients != 8 ? $" --clients {o.Clients}" : "") + (o.Keys != 8 ? $" --keys {o.Keys}" : "") + (o.Rate != 2000 ? $" --rate {o.Rate}" : "")
        + (o.BigKeys != 2 ? $" --big-keys {o.BigKeys}" : "")
        + (o.Mix != WorkloadMix.Redis ? " --mix classic" : "")
        + (o.BigRate != 2 ? $" --big-rate {o.BigRate.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : "")
        + (o.MaxSessions is int m ? $" --max-sessions {m}" : "")
        + (o.BackupTimeout is TimeSpan b ? $" --backup-timeout {Tandem.Client.DurationParser.Format(b)}" : "")
        + (o.Coordinators != 3 ? $" --coordinators {o.Coordinators}" : "")
        + (o.DisabledFaults.Count > 0 ? $" --without {string.Join(",", o.DisabledFaults.Order().Select(FaultPlan.Name))}" : "");
}
