// Tandem's side-by-side benchmark: Tandem (coordinator + primary + synchronous backup, as `tandem` processes),
// Redis 7 (primary + asynchronous replica) and Garnet (embedded by this program in a process of its own), driven
// with redis-benchmark and small RESP loops of its own; prints one table, renders a chart and rewrites the
// generated part of docs/benchmarks.md. Run it with `bash bench/run.sh` (it installs and builds what it needs).
//
//   Tandem.Bench.dll run [--quick] [--write-docs] [--no-docs] [--rounds N] [--repo DIR]
//   Tandem.Bench.dll garnet --port P [--memory 2g] [--index 16m] [--parent PID]
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Tandem.Bench;
using static Tandem.Bench.Workloads;

try
{
    if (args.Length > 0 && args[0] == "garnet") return GarnetHost.Run(args[1..]);
    return Harness.Run(args.Length > 0 && args[0] == "run" ? args[1..] : args);
}
catch (BenchException e)
{
    Console.Error.WriteLine($"bench: error: {e.Message}");
    return 1;
}

namespace Tandem.Bench
{
    /// <summary>How much of each workload to run: the full run, or the short smoke run (--quick).</summary>
    internal sealed record Plan(bool Quick, int Rounds, int P1, int P4, int P16, int P64, int OneClientRequests, int RawIterations,
        long MemoryKeys, long TransferKeys, int FailoverTrials)
    {
        public static Plan Full(int rounds) => new(false, rounds, 200_000, 500_000, 1_000_000, 2_000_000, 50_000, 20_000, 1_000_000, 4_000_000, 3);
        public static Plan Smoke(int rounds) => new(true, rounds, 20_000, 50_000, 100_000, 200_000, 5_000, 2_000, 200_000, 200_000, 1);

        public int Requests(int depth) => depth switch { 1 => P1, 4 => P4, 16 => P16, _ => P64 };
    }

    internal static class Harness
    {
        public static int Run(string[] args)
        {
            bool quick = args.Contains("--quick");
            bool writeDocs = (!quick || args.Contains("--write-docs")) && !args.Contains("--no-docs");
            int rounds = Array.IndexOf(args, "--rounds") is int ri and >= 0 && ri + 1 < args.Length ? int.Parse(args[ri + 1]) : quick ? 1 : 3;
            if (!quick && rounds < 2) throw new BenchException("a full run needs at least 2 rounds");
            string repo = Array.IndexOf(args, "--repo") is int pi and >= 0 && pi + 1 < args.Length
                ? Path.GetFullPath(args[pi + 1])
                : Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."));
            Plan plan = quick ? Plan.Smoke(rounds) : Plan.Full(rounds);

            string tandemDll = Path.Combine(repo, "src", "Tandem.Cli", "bin", "Release", "net10.0", "tandem.dll");
            if (!File.Exists(tandemDll)) throw new BenchException($"{tandemDll} is missing: build first (`dotnet build Tandem.slnx -c Release`, or run `bash bench/run.sh`)");
            string runDir = Path.Combine(Path.GetTempPath(), $"tandem-bench-{DateTime.Now:yyyyMMdd-HHmmss}-{Environment.ProcessId}");
            Directory.CreateDirectory(runDir);
            Children.LogDirectory = runDir;
            Children.InstallExitHandlers();
            var env = new Env(repo, tandemDll, typeof(Harness).Assembly.Location, runDir);

            string redisVersion = CheckTools();
            var machine = Machine(redisVersion);
            Log($"{(quick ? "quick smoke run" : "full run")}, {rounds} round(s); logs in {runDir}");
            foreach (var (k, v) in machine) Log($"  {k}: {v}");

            var results = new Results();
            var started = DateTime.Now;
            var total = Stopwatch.StartNew();
            try
            {
                Throughput(env, plan, results);
                Memory(env, plan, results);
                Transfer(env, plan, results);
                Failovers(env, plan, results);
            }
            finally
            {
                Children.KillAll();
            }
            Log($"all workloads done in {total.Elapsed.TotalMinutes:0.0} min");

            (string table, List<string> missed) = Report.Table(results, plan);
            string title = $"Tandem vs Redis {redisVersion} vs Garnet {GarnetHost.Version}, {(quick ? "quick smoke run (--quick)" : "full run")}, "
                + $"median of {rounds} round(s) (with 2 rounds the median is their mean); {machine["cores"]} cores, {started:yyyy-MM-dd}";
            string chart = writeDocs ? Path.Combine(repo, "docs", "benchmarks-pipeline.png") : Path.Combine(runDir, "benchmarks-pipeline.png");
            try
            {
                Report.Chart(results, chart);
                Log($"chart: {chart}");
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Log($"the chart could not be rendered: {e.GetType().Name}: {e.Message}");
                results.Notes.Add($"chart not rendered: {e.Message}");
            }
            Console.WriteLine(title);
            Console.WriteLine();
            Console.Write(table);
            Console.WriteLine();
            if (missed.Count > 0) Console.WriteLine($"Targets missed: {missed.Count} (the result column says by how much).");
            foreach (string note in results.Notes) Console.WriteLine($"note: {note}");

            if (writeDocs)
            {
                string docs = Path.Combine(repo, "docs", "benchmarks.md");
                Report.WriteDocs(docs, Generated(plan, results, table, missed, machine, started, total.Elapsed));
                Log($"wrote {docs} (between the bench markers) and {chart}");
            }
            else
            {
                Log("docs not written (--quick without --write-docs)");
            }
            return 0;
        }

        private static string CheckTools()
        {
            foreach (string tool in new[] { "redis-server", "redis-benchmark" })
            {
                try { Children.Run(tool, ["--version"], TimeSpan.FromSeconds(20)); }
                catch (BenchException e) { throw new BenchException($"{tool} is needed ({e.Message}); `apt-get install -y redis-server redis-tools` (bench/run.sh does it)"); }
            }
            string v = Children.Run("redis-server", ["--version"], TimeSpan.FromSeconds(20)).Stdout;
            string version = v.Split(' ').FirstOrDefault(w => w.StartsWith("v=", StringComparison.Ordinal))?[2..] ?? "?";
            if (!int.TryParse(version.Split('.')[0], out int major) || major < 7)
                throw new BenchException($"Redis 7 or later is needed (redis-server says {v.Trim()})");
            string b = Children.Run("redis-benchmark", ["--version"], TimeSpan.FromSeconds(20)).Stdout.Trim();
            if (!int.TryParse(b.Split(' ').ElementAtOrDefault(1)?.Split('.')[0], out int bm) || bm < 7)
                throw new BenchException($"redis-benchmark 7 or later is needed (for --csv latency columns); it says {b}");
            return version;
        }

        private static Dictionary<string, string> Machine(string redisVersion)
        {
            string Read(string path) => File.Exists(path) ? File.ReadAllText(path) : "";
            string cores;
            try { cores = Children.Run("nproc", [], TimeSpan.FromSeconds(10)).Stdout.Trim(); }
            catch (BenchException) { cores = Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture); }
            string memTotal = Read("/proc/meminfo").Split('\n').FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal)) is string m
                ? $"{long.Parse(m.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1048576.0:0.0} GiB" : "?";
            string cpu = Read("/proc/cpuinfo").Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
            string os = Read("/etc/os-release").Split('\n').FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?[12..].Trim('"') ?? RuntimeInformation.OSDescription;
            string sdk;
            try { sdk = Children.Run("dotnet", ["--version"], TimeSpan.FromSeconds(30)).Stdout.Trim(); }
            catch (BenchException) { sdk = "?"; }
            return new Dictionary<string, string>
            {
                ["cores"] = cores,
                ["cpu"] = cpu,
                ["memory"] = memTotal,
                ["os"] = $"{os}, Linux {Read("/proc/sys/kernel/osrelease").Trim()}",
                [".NET"] = $"{RuntimeInformation.FrameworkDescription} (SDK {sdk})",
                ["redis-server"] = redisVersion,
                ["Garnet"] = $"{GarnetHost.Version} (NuGet Microsoft.Garnet, options {string.Join(' ', GarnetHost.GarnetArgs("PORT", GarnetHost.DefaultMemory, GarnetHost.DefaultIndex))})",
            };
        }

        /// <summary>Runs one measurement; a failure is recorded in the table and the notes, and the run goes on.</summary>
        private static void Try(Results results, string row, string system, Action action)
        {
            try { action(); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Log($"{system}: {row}: FAILED: {(e is BenchException ? "" : e.GetType().Name + ": ")}{e.Message}");
                results.Fail(row, system, e.Message);
                // The rows measured by the same step fail with it.
                foreach (string other in Companions(row)) results.Fail(other, system, "see " + row, note: false);
            }
        }

        private static string[] Companions(string row) => row switch
        {
            _ when row.StartsWith("set-p", StringComparison.Ordinal) => ["get-p" + row[5..]],
            "c1-mean" => ["c1-p99"],
            "raw-mean" => ["raw-p99"],
            "wait-mean" => ["wait-p99"],
            "xfer-mbs" => ["xfer-phase-mbs", "xfer-wps", "xfer-gap"],
            _ => [],
        };

        public static string[] BenchmarkArgs(int depth, int n) => ["-t", "set,get", "-c", "50", "-P", depth.ToString(CultureInfo.InvariantCulture), "-n", n.ToString(CultureInfo.InvariantCulture)];
        public static string[] OneClientArgs(int n) => ["-c", "1", "-t", "set", "-n", n.ToString(CultureInfo.InvariantCulture)];

        /// <summary>The redis-benchmark workloads and one-at-a-time loops, systems alternating A B C in each round.</summary>
        private static void Throughput(Env env, Plan plan, Results results)
        {
            Log("starting Tandem (coordinator + 2 servers), Redis (primary + replica), Garnet");
            using var tandem = TandemCluster.Start(env, "tput-tandem", [], []);
            using var redis = RedisPair.Start(env, "tput");
            using var garnet = GarnetSolo.Start(env, "tput");
            SystemUnderTest[] systems = [tandem, redis, garnet];
            string epoch = tandem.Epoch;
            for (int round = 1; round <= plan.Rounds; round++)
            {
                foreach (int depth in new[] { 16, 1, 4, 64 })
                {
                    int n = plan.Requests(depth);
                    foreach (SystemUnderTest s in systems)
                    {
                        Try(results, $"set-p{depth}", s.Name, () =>
                        {
                            Dictionary<string, BenchmarkRow> rows = RedisBenchmark(s.Port, BenchmarkArgs(depth, n), 2 * n);
                            foreach (string op in new[] { "SET", "GET" })
                            {
                                if (rows.TryGetValue(op, out BenchmarkRow? r)) results.Add($"{op.ToLowerInvariant()}-p{depth}", s.Name, r.Rps);
                                else results.Fail($"{op.ToLowerInvariant()}-p{depth}", s.Name, "no CSV row");
                            }
                            Log($"round {round}: {s.Name,-6} -c 50 -P {depth,-2} -n {n}: SET {rows.GetValueOrDefault("SET")?.Rps,10:N0}  GET {rows.GetValueOrDefault("GET")?.Rps,10:N0} ops/s");
                        });
                    }
                }
                foreach (SystemUnderTest s in systems)
                {
                    Try(results, "c1-mean", s.Name, () =>
                    {
                        BenchmarkRow r = RedisBenchmark(s.Port, OneClientArgs(plan.OneClientRequests), plan.OneClientRequests)["SET"];
                        results.Add("c1-mean", s.Name, r.AvgMs * 1000);
                        results.Add("c1-p99", s.Name, r.P99Ms * 1000);
                        Log($"round {round}: {s.Name,-6} -c 1 SET: mean {r.AvgMs * 1000:0.0} µs, p99 {r.P99Ms * 1000:0.0} µs");
                    });
                }
                foreach (SystemUnderTest s in systems)
                {
                    Try(results, "raw-mean", s.Name, () =>
                    {
                        LatencyResult r = OneAtATime(s.Port, plan.RawIterations, withWait: false);
                        results.Add("raw-mean", s.Name, r.MeanUs);
                        results.Add("raw-p99", s.Name, r.P99Us);
                        Log($"round {round}: {s.Name,-6} raw loop SET: mean {r.MeanUs:0.0} µs, p99 {r.P99Us:0.0} µs");
                    });
                    if (s == redis)
                    {
                        Try(results, "wait-mean", s.Name, () =>
                        {
                            LatencyResult r = OneAtATime(s.Port, plan.RawIterations, withWait: true);
                            results.Add("wait-mean", s.Name, r.MeanUs);
                            results.Add("wait-p99", s.Name, r.P99Us);
                            Log($"round {round}: Redis  raw loop SET + WAIT 1 0: mean {r.MeanUs:0.0} µs, p99 {r.P99Us:0.0} µs");
                        });
                    }
                }
            }
            if (tandem.Epoch != epoch) results.Notes.Add($"Tandem's view changed during the throughput rounds without a fault injected ({epoch} -> {tandem.Epoch}): a failover under load");
        }

        /// <summary>RSS per key on fresh instances, one system at a time (measured once: it hardly varies).</summary>
        private static void Memory(Env env, Plan plan, Results results)
        {
            foreach (string name in Results.Systems)
            {
                Try(results, "mem", name, () =>
                {
                    Log($"{name}: memory: fresh instance, {plan.MemoryKeys:N0} keys");
                    using SystemUnderTest s = name switch
                    {
                        Results.Tandem => TandemCluster.Start(env, "mem-tandem", [], []),
                        Results.Redis => RedisPair.Start(env, "mem"),
                        _ => GarnetSolo.Start(env, "mem"),
                    };
                    (double perKey, string note) = MemoryPerKey(s, plan.MemoryKeys);
                    results.Add("mem", name, perKey);
                    results.Notes.Add($"memory, {name}: {note}");
                });
            }
        }

        private static void Transfer(Env env, Plan plan, Results results)
        {
            Try(results, "xfer-mbs", Results.Tandem, () =>
            {
                using var cluster = TandemCluster.Start(env, "xfer", [], []);
                TransferResult r = StateTransfer(cluster, plan.TransferKeys);
                double mb = r.Keys * (double)(KeyBytes + r.ValueBytes) / 1e6;
                results.Add("xfer-mbs", Results.Tandem, mb / r.TotalSeconds);
                results.Add("xfer-phase-mbs", Results.Tandem, mb / r.TransferSeconds);
                results.Add("xfer-wps", Results.Tandem, r.WritesPerSecond);
                results.Add("xfer-gap", Results.Tandem, r.LongestGapMs);
                string note = $"state transfer: {mb:N0} MB in {r.TotalSeconds:0.00} s from the fresh server's start ({r.TransferSeconds:0.00} s from the view naming it); "
                    + $"loaded at {r.LoadRate:N0} SET/s; writer: {r.WritesPerSecond:N0} writes/s ({r.WritesPerSecondInTransfer:N0}/s from the view naming the new backup), longest gap {r.LongestGapMs:N0} ms, {r.WriteErrors} error replies"
                    + (r.FirstError is null ? "" : $" (first: {r.FirstError})") + (r.ViewChange is null ? "" : $"; {r.ViewChange}");
                Log($"Tandem: {note}");
                results.Notes.Add(note);
            });
        }

        private static void Failovers(Env env, Plan plan, Results results)
        {
            foreach ((string row, string[] coordinatorArgs, string[] serverArgs) in new[]
            {
                ("fail-default", Array.Empty<string>(), Array.Empty<string>()),
                ("fail-tuned", new[] { "--ping-interval", "25ms", "--dead-pings", "4" }, new[] { "--ping-interval", "25ms" }),
            })
            {
                for (int trial = 1; trial <= plan.FailoverTrials; trial++)
                {
                    Try(results, row, Results.Tandem, () =>
                    {
                        using var cluster = TandemCluster.Start(env, $"{row}-{trial}", coordinatorArgs, serverArgs);
                        FailoverResult r = Failover(cluster);
                        results.Add(row, Results.Tandem, r.Milliseconds);
                        Log($"Tandem: {row} trial {trial}: {r.Milliseconds:N0} ms (client saw: {r.Errors})");
                        results.Notes.Add($"{row} trial {trial}: {r.Milliseconds:N0} ms; the client saw {(r.Errors.Length == 0 ? "no error" : r.Errors)}");
                    });
                }
            }
        }

        private static string Generated(Plan plan, Results results, string table, List<string> missed, Dictionary<string, string> machine,
            DateTime started, TimeSpan took)
        {
            var sb = new StringBuilder();
            sb.AppendLine("<!-- Generated by bash bench/run.sh; edit outside the bench markers only. -->");
            sb.AppendLine();
            sb.AppendLine($"## {started:yyyy-MM-dd}: {(plan.Quick ? "quick smoke run (`--quick`), not for comparison" : "full run")}");
            sb.AppendLine();
            sb.AppendLine("```sh");
            sb.AppendLine(plan.Quick ? "bash bench/run.sh --quick --write-docs" : "bash bench/run.sh");
            sb.AppendLine("```");
            sb.AppendLine();
            sb.AppendLine("| machine | |");
            sb.AppendLine("|---|---|");
            foreach (var (k, v) in machine) sb.AppendLine($"| {k} | {v} |");
            sb.AppendLine($"| run took | {took.TotalMinutes:0.0} min |");
            sb.AppendLine();
            sb.AppendLine("What runs: **Tandem** = `tandem coordinator` + two `tandem server` processes (primary and synchronous backup: a write "
                + "is answered once the backup has it); **Redis** = `redis-server --save '' --appendonly no` + one `redis-server --replicaof` "
                + "(asynchronous replica); **Garnet** = Microsoft.Garnet hosted by `Tandem.Bench.dll garnet` in its own process, standalone (no "
                + "replica, no persistence). All on 127.0.0.1, ports found free by binding port 0. Each throughput and latency figure is the median of "
                + $"{plan.Rounds} round(s){(plan.Rounds == 2 ? " (the mean of the two)" : "")}; within a round each workload runs on Tandem, then Redis, then Garnet. "
                + $"Memory and state transfer are measured once per run (on fresh instances), failover {plan.FailoverTrials} time(s) per setting (median).");
            sb.AppendLine();
            sb.AppendLine("Commands (PORT = the system's serving port; for Tandem its primary):");
            sb.AppendLine();
            sb.AppendLine("```sh");
            foreach (int depth in new[] { 16, 1, 4, 64 }) sb.AppendLine($"redis-benchmark -p PORT {string.Join(' ', BenchmarkArgs(depth, plan.Requests(depth)))} --csv");
            sb.AppendLine($"redis-benchmark -p PORT {string.Join(' ', OneClientArgs(plan.OneClientRequests))} --csv   # mean = avg_latency_ms, p99 = p99_latency_ms");
            sb.AppendLine("```");
            sb.AppendLine();
            sb.AppendLine($"- *raw RESP loop*: the harness's own client, one connection, `SET bench:lat xyz` one at a time, {plan.RawIterations:N0} times after a warm-up; "
                + "*SET + WAIT 1 0*: the same loop on Redis writing `SET` and `WAIT 1 0` together and awaiting both replies. Mean and p99 from an HdrHistogram.");
            sb.AppendLine($"- *RSS per key*: a fresh instance of each system; 20,000 warm-up SETs, RSS (VmRSS of the primary's process) once stable for 2 s, "
                + $"then {plan.MemoryKeys:N0} SETs of 16-byte keys and 100-byte values (pipelined, 2 connections, batches of 1,000), RSS once stable for 2 s; (after - before) / keys.");
            sb.AppendLine($"- *state transfer*: a fresh Tandem cluster; the primary loaded with {plan.TransferKeys:N0} keys of 16 B with 256-byte values; a writer sends "
                + "pipelined SETs (16 deep, one connection); the backup is SIGKILLed and a fresh empty `tandem server` started at a new port; time from its start until "
                + "`tandem status --json` shows it as the backup of an acknowledged view. MB/s = keys x (16 + 256) / seconds (MB = 10^6 bytes).");
            sb.AppendLine($"- *failover*: a fresh Tandem cluster each trial ({plan.FailoverTrials} per setting); one client writes one SET at a time to whichever server "
                + "answers +OK; the primary is SIGKILLed; time from the kill to the first write the other server accepts.");
            sb.AppendLine();
            sb.AppendLine(table.TrimEnd());
            sb.AppendLine();
            sb.AppendLine("![throughput by pipeline depth](benchmarks-pipeline.png)");
            sb.AppendLine();
            sb.AppendLine("### Targets missed");
            sb.AppendLine();
            if (missed.Count == 0) sb.AppendLine("None.");
            foreach (string m in missed) sb.AppendLine($"- {m}");
            sb.AppendLine();
            if (results.Notes.Count > 0)
            {
                sb.AppendLine("### Notes from the run");
                sb.AppendLine();
                foreach (string n in results.Notes) sb.AppendLine($"- {n}");
            }
            return sb.ToString();
        }
    }
}
