using System.CommandLine;
using System.Globalization;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;

namespace Tandem.Cli;

/// <summary><c>tandem bench</c>: GET/SET load against any RESP server and its throughput and latency (the engine is <see cref="LoadGenerator"/>).</summary>
internal static class BenchCommand
{
    private static readonly TimeSpan DefaultDuration = TimeSpan.FromSeconds(10);
    private const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    public static Command Create()
    {
        Option<string> host = CliParsers.Remote("--host",
            "The RESP server to load: a Tandem primary, Redis, Garnet, ... (the default is Redis's port, as for redis-benchmark).",
            () => "127.0.0.1:6379");
        Option<int> clients = Number("--clients", "N", "Connections, each one client with its own requests in flight.", 50, 1, 1000);
        Option<int> pipeline = Number("--pipeline", "N",
            "Requests in flight per connection: as replies arrive, as many new requests are sent (1: one at a time).", 1, 1, 10_000);
        Option<long> keyspace = Number("--keyspace", "N",
            "Keys used: key:000000000000 to key:N-1 (12 digits), each request's key chosen uniformly at random.", 100_000L, 1L, LoadGeneratorOptions.MaxKeyspace);
        Option<int> valueSize = Number("--value-size", "BYTES", "Size of each SET value (the letter x repeated).", 100, 0, 512 * 1024 * 1024);
        Option<int> reads = Number("--reads", "PERCENT", "Percent of requests that are GET; the others are SET (0: only SET, 100: only GET).", 50, 0, 100);
        Option<TimeSpan?> duration = CliParsers.Duration("--duration", DefaultDuration, "How long to measure (not with --requests).");
        var requests = new Option<long?>("--requests")
        {
            HelpName = "N",
            Description = "Measure this many requests, all connections together, instead of a duration.",
            CustomParser = result => Parse(result, "--requests", 1L, long.MaxValue),
        };
        Option<TimeSpan?> warmup = CliParsers.Duration("--warmup", TimeSpan.Zero, "Send load this long before measuring; it is not counted.", positive: false);
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object on stdout, and no progress line." };

        var command = new Command("bench",
            "Load a RESP server with GET and SET from many connections and print throughput, errors and latency percentiles. "
            + "Latency runs from when a request is written to when its reply is read. A live progress line is shown when stdout is a terminal. "
            + "Exit 0 on success, 1 when the server cannot be reached or every request failed, 2 on bad usage.")
        { host, clients, pipeline, keyspace, valueSize, reads, duration, requests, warmup, json };
        command.Validators.Add(r =>
        {
            if (r.GetResult(duration) is not null && r.GetResult(requests) is not null) r.AddError("give --duration or --requests, not both");
        });
        command.SetAction(async (parse, ct) =>
        {
            bool asJson = parse.GetValue(json);
            bool live = !asJson && !Console.IsOutputRedirected;
            var options = new LoadGeneratorOptions
            {
                Host = parse.GetValue(host)!,
                Clients = parse.GetValue(clients),
                Pipeline = parse.GetValue(pipeline),
                Keyspace = parse.GetValue(keyspace),
                ValueSize = parse.GetValue(valueSize),
                ReadPercent = parse.GetValue(reads),
                Duration = parse.GetDuration(duration, DefaultDuration),
                Requests = parse.GetValue(requests),
                Warmup = parse.GetDuration(warmup, TimeSpan.Zero),
                Progress = live ? ShowProgress : null,
            };
            if (!asJson) Console.WriteLine(Describe(options));

            // Run socket continuations on the runtime's epoll threads instead of handing each to the thread pool: the
            // loops never block, and on 2 cores this halves the CPU the bench takes from the server it measures (it is
            // read when this process makes its first socket; a value the user set is kept).
            if (Environment.GetEnvironmentVariable(InlineCompletions) is null) Environment.SetEnvironmentVariable(InlineCompletions, "1");

            // The first Ctrl-C or SIGTERM ends the run early and prints what was measured; a second one exits at once.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            void OnSignal(PosixSignalContext context)
            {
                context.Cancel = !stop.IsCancellationRequested;
                stop.Cancel();
            }
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

            LoadResult result;
            try
            {
                result = await new LoadGenerator(options).RunAsync(stop.Token);
            }
            catch (IOException e)
            {
                return NodeCommands.Fail(e.Message);
            }
            finally
            {
                if (live) Console.Write("\r" + new string(' ', ProgressWidth) + "\r");
            }

            Console.WriteLine(asJson ? Json(options, result) : Readable(result));
            if (result.Requests == 0) return NodeCommands.Fail("no request was measured");
            if (result.Errors == result.Requests) return NodeCommands.Fail($"every request failed; the first error: {result.FirstError}");
            return 0;
        });
        return command;
    }

    private const int ProgressWidth = 79;

    /// <summary>A whole-number option between <paramref name="min"/> and <paramref name="max"/>.</summary>
    private static Option<T> Number<T>(string name, string helpName, string description, T defaultValue, T min, T max)
        where T : struct, IBinaryInteger<T>, IMinMaxValue<T> => new(name)
    {
        HelpName = helpName,
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result => Parse(result, name, min, max) ?? defaultValue,
    };

    private static T? Parse<T>(System.CommandLine.Parsing.ArgumentResult result, string name, T min, T max) where T : struct, IBinaryInteger<T>, IMinMaxValue<T>
    {
        if (result.Tokens.Count == 0) return null;
        string text = result.Tokens.Single().Value;
        if (!T.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out T value) || value < min || value > max)
        {
            string range = max == T.MaxValue ? $"at least {min}" : $"from {min} to {max}";
            result.AddError(string.Create(CultureInfo.InvariantCulture, $"{name}: '{text}' is not a whole number {range}"));
            return null;
        }
        return value;
    }

    private static void ShowProgress(LoadProgress p)
    {
        string line = p.WarmingUp ? "warming up..."
            : string.Create(CultureInfo.InvariantCulture,
                $"{p.Elapsed.TotalSeconds,6:0.0} s  {p.Requests,12:N0} requests  {p.OpsPerSecond,12:N0} ops/s  p99 {p.P99Us:0.0} us");
        Console.Write("\r" + line.PadRight(ProgressWidth)[..ProgressWidth]);
    }

    private static string Describe(LoadGeneratorOptions o)
    {
        string amount = o.Requests is { } n ? $"{n.ToString("N0", CultureInfo.InvariantCulture)} requests" : Tandem.Client.DurationParser.Format(o.Duration);
        string warm = o.Warmup > TimeSpan.Zero ? $" after a {Tandem.Client.DurationParser.Format(o.Warmup)} warmup" : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"tandem bench {o.Host}: {o.Clients} clients, pipeline {o.Pipeline}, {o.Keyspace:N0} keys, {o.ValueSize}-byte values, {o.ReadPercent}% GET / {100 - o.ReadPercent}% SET, {amount}{warm}");
    }

    private static string Readable(LoadResult r)
    {
        string errors = r.Errors == 0 ? "0" : string.Create(CultureInfo.InvariantCulture,
            $"{r.Errors:N0} ({100.0 * r.Errors / Math.Max(1, r.Requests):0.##}%), the first: {r.FirstError}");
        return string.Create(CultureInfo.InvariantCulture, $"""
            requests:    {r.Requests:N0} in {r.Elapsed.TotalSeconds:0.000} s
            throughput:  {r.OpsPerSecond:N0} ops/s
            errors:      {errors}
            latency us:  mean {r.MeanUs:0.0}  p50 {r.LatencyUs(50):0.0}  p90 {r.LatencyUs(90):0.0}  p99 {r.LatencyUs(99):0.0}  p99.9 {r.LatencyUs(99.9):0.0}  max {r.MaxUs:0.0}
            """);
    }

    private static string Json(LoadGeneratorOptions o, LoadResult r) => new JsonObject
    {
        ["host"] = o.Host,
        ["clients"] = o.Clients,
        ["pipeline"] = o.Pipeline,
        ["keyspace"] = o.Keyspace,
        ["valueSize"] = o.ValueSize,
        ["reads"] = o.ReadPercent,
        ["durationSeconds"] = Math.Round(r.Elapsed.TotalSeconds, 3),
        ["requests"] = r.Requests,
        ["errors"] = r.Errors,
        ["opsPerSec"] = Math.Round(r.OpsPerSecond, 1),
        ["latencyUs"] = new JsonObject
        {
            ["mean"] = Math.Round(r.MeanUs, 1),
            ["p50"] = Math.Round(r.LatencyUs(50), 1),
            ["p90"] = Math.Round(r.LatencyUs(90), 1),
            ["p99"] = Math.Round(r.LatencyUs(99), 1),
            ["p999"] = Math.Round(r.LatencyUs(99.9), 1),
            ["max"] = Math.Round(r.MaxUs, 1),
        },
        ["firstError"] = r.FirstError,
    }.ToJsonString();
}
