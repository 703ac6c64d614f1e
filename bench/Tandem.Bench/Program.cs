// Tandem's benchmark: starts a real cluster (coordinator + primary + backup, as `tandem` processes) and,
// side by side, Redis with one replica; drives both with redis-benchmark, and measures one-at-a-time
// latency of the exactly-once TandemClient. Prints a Markdown table. Needs redis-server and redis-tools.
//
//   dotnet run -c Release --project bench/Tandem.Bench -- [--requests 200000]
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using HdrHistogram;
using Tandem.Client;

int requests = args.Length >= 2 && args[0] == "--requests" ? int.Parse(args[1]) : 200_000;
var children = new List<Process>();
try
{
    int[] ports = FreePorts(5);
    string coordinator = $"127.0.0.1:{ports[0]}";
    children.Add(StartTandem("coordinator", "--listen", coordinator));
    children.Add(StartTandem("server", "--listen", $"127.0.0.1:{ports[1]}", "--coordinator", coordinator));
    await using var client = new TandemClient(new TandemClientOptions { Coordinator = coordinator, OperationTimeout = TimeSpan.FromSeconds(30) });
    await client.PutAsync("warmup", "1");
    children.Add(StartTandem("server", "--listen", $"127.0.0.1:{ports[2]}", "--coordinator", coordinator));
    await WaitForAsync(async () => (await client.GetStatusJsonAsync()).Contains("\"acked\":true") && (await client.GetViewAsync()).Backup != "");
    string primaryPort = (await client.GetViewAsync()).Primary.Split(':')[1];

    children.Add(Start("redis-server", "--port", ports[3].ToString(), "--save", "", "--appendonly", "no"));
    children.Add(Start("redis-server", "--port", ports[4].ToString(), "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", ports[3].ToString()));
    await Task.Delay(1000);

    Console.WriteLine($"| system | redis-benchmark -t set,get -n {requests} | SET ops/s | GET ops/s |");
    Console.WriteLine("|---|---|---|---|");
    foreach (string pipeline in new[] { "1", "16" })
    {
        (double tSet, double tGet) = RedisBenchmark(primaryPort, requests, pipeline);
        (double rSet, double rGet) = RedisBenchmark(ports[3].ToString(), requests, pipeline);
        Console.WriteLine($"| Tandem (primary + synchronous backup) | -c 50 -P {pipeline} | {tSet:N0} | {tGet:N0} |");
        Console.WriteLine($"| Redis 7 (primary + async replica) | -c 50 -P {pipeline} | {rSet:N0} | {rGet:N0} |");
    }

    Console.WriteLine();
    Console.WriteLine("| one client, one request at a time, 64-byte values | ops/s | p50 µs | p99 µs |");
    Console.WriteLine("|---|---|---|---|");
    string value = new('v', 64);
    await Measure("TandemClient.PutAsync (exactly-once)", i => client.PutAsync($"k{i % 1000}", value));
    await Measure("TandemClient.GetAsync (linearizable)", i => client.GetAsync($"k{i % 1000}"));
}
finally
{
    foreach (Process p in children) { try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }
}

static async Task Measure(string what, Func<int, Task> op)
{
    for (int i = 0; i < 2000; i++) await op(i);
    var histogram = new LongHistogram(TimeStamp.Seconds(10), 3);
    const int n = 20_000;
    var total = Stopwatch.StartNew();
    for (int i = 0; i < n; i++)
    {
        long start = Stopwatch.GetTimestamp();
        await op(i);
        histogram.RecordValue(Stopwatch.GetTimestamp() - start);
    }
    double perUs = Stopwatch.Frequency / 1_000_000.0;
    Console.WriteLine($"| {what} | {n / total.Elapsed.TotalSeconds:N0} | {histogram.GetValueAtPercentile(50) / perUs:N0} | {histogram.GetValueAtPercentile(99) / perUs:N0} |");
}

static (double Set, double Get) RedisBenchmark(string port, int requests, string pipeline)
{
    var info = new ProcessStartInfo("redis-benchmark") { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (string a in new[] { "-p", port, "-t", "set,get", "-n", requests.ToString(), "-c", "50", "-P", pipeline, "-q" }) info.ArgumentList.Add(a);
    using Process p = Process.Start(info)!;
    string output = p.StandardOutput.ReadToEnd();
    p.WaitForExit();
    double Rate(string cmd) => Regex.Matches(output, $@"{cmd}: ([\d.]+) requests per second") is { Count: > 0 } m
        ? double.Parse(m[^1].Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : double.NaN;
    return (Rate("SET"), Rate("GET"));
}

static Process StartTandem(params string[] args)
{
    // bench/Tandem.Bench/bin/<Configuration>/net10.0/ -> src/Tandem.Cli/bin/<Configuration>/net10.0/tandem.dll
    var output = new DirectoryInfo(AppContext.BaseDirectory);
    string dll = Path.Combine(output.FullName, "..", "..", "..", "..", "..", "src", "Tandem.Cli", "bin", output.Parent!.Name, output.Name, "tandem.dll");
    if (!File.Exists(dll)) throw new FileNotFoundException("build src/Tandem.Cli first", Path.GetFullPath(dll));
    return Start("dotnet", [Path.GetFullPath(dll), .. args]);
}

static Process Start(string file, params string[] args)
{
    var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (string a in args) info.ArgumentList.Add(a);
    Process p = Process.Start(info)!;
    p.BeginOutputReadLine();
    p.BeginErrorReadLine();
    return p;
}

static async Task WaitForAsync(Func<Task<bool>> condition)
{
    var deadline = DateTime.UtcNow.AddSeconds(60);
    while (true)
    {
        try { if (await condition()) return; } catch (Exception) when (DateTime.UtcNow < deadline) { }
        if (DateTime.UtcNow > deadline) throw new TimeoutException("the cluster did not form");
        await Task.Delay(100);
    }
}

static int[] FreePorts(int n)
{
    var listeners = Enumerable.Range(0, n).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
    listeners.ForEach(l => l.Start());
    int[] ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
    listeners.ForEach(l => l.Stop());
    return ports;
}
