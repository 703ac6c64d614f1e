using System.Reflection;
using System.Runtime.InteropServices;
using Garnet;

namespace Tandem.Bench;

/// <summary>
/// <c>Tandem.Bench.dll garnet --port P [--memory 2g] [--index 16m] [--parent PID]</c>: hosts Garnet (the
/// Microsoft.Garnet package) in this process, standalone, without persistence (no AOF, no storage tier, no
/// checkpoints), on 127.0.0.1:P, until SIGTERM/SIGINT or until the parent process is gone.
/// </summary>
internal static class GarnetHost
{
    /// <summary>Garnet's log memory and hash index size: ample for the 1M keys of the memory test, and the index
    /// sized for them (Garnet's default 128m index would be mostly empty buckets).</summary>
    public const string DefaultMemory = "2g", DefaultIndex = "16m";

    public static string Version =>
        typeof(GarnetServer).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? typeof(GarnetServer).Assembly.GetName().Version?.ToString() ?? "?";

    public static string[] GarnetArgs(string port, string memory, string index) =>
        ["--port", port, "--bind", "127.0.0.1", "--memory", memory, "--index", index];

    public static int Run(string[] args)
    {
        string? Arg(string name) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        string port = Arg("--port") ?? throw new BenchException("garnet: --port P is required");
        int? parent = Arg("--parent") is string p ? int.Parse(p) : null;
        string[] garnetArgs = GarnetArgs(port, Arg("--memory") ?? DefaultMemory, Arg("--index") ?? DefaultIndex);

        using var stop = new ManualResetEventSlim();
        using PosixSignalRegistration term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });
        using PosixSignalRegistration interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Set(); });

        using var server = new GarnetServer(garnetArgs);
        server.Start();
        Console.WriteLine($"garnet {Version} ready on 127.0.0.1:{port} ({string.Join(' ', garnetArgs)})");
        while (!stop.Wait(500))
        {
            if (parent is int pid && !Directory.Exists($"/proc/{pid}"))
            {
                Console.WriteLine($"garnet: parent {pid} is gone, stopping");
                break;
            }
        }
        return 0;
    }
}
