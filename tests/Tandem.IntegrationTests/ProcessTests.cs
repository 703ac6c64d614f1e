using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Tandem.Client;
using Tandem.Protocol;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>The real <c>tandem</c> executable as separate processes, killed with SIGKILL.</summary>
public class ProcessTests
{
    [Fact]
    public async Task SigkillOfPrimaryProcess_LosesNoAcknowledgedWrite()
    {
        int[] ports = FreePorts(4);
        string coordinator = $"127.0.0.1:{ports[0]}";
        var processes = new List<TandemProcess>();
        try
        {
            processes.Add(TandemProcess.Start("coordinator", "--listen", coordinator));
            for (int i = 1; i <= 3; i++)
                processes.Add(TandemProcess.Start("server", "--listen", $"127.0.0.1:{ports[i]}", "--coordinator", coordinator));

            await using var client = new TandemClient(new TandemClientOptions { Coordinator = coordinator, OperationTimeout = Patience });
            await Wait.UntilAsync(() => TryView(client) is { Primary: not "", Backup: not "" }, TimeSpan.FromSeconds(60), "a view with a backup");
            // The backup counts only once the primary has acknowledged its view (the status tells).
            await Wait.UntilAsync(() => StatusAcked(coordinator), TimeSpan.FromSeconds(60), "the primary to acknowledge the view");

            for (int i = 0; i < 200; i++) await client.PutAsync($"k{i}", $"v{i}", Timeout());
            View before = await client.GetViewAsync(Timeout());
            TandemProcess primary = processes.Single(p => p.Arguments.Contains(before.Primary));
            primary.Kill(); // SIGKILL

            for (int i = 0; i < 200; i++) Assert.Equal($"v{i}", await client.GetAsync($"k{i}", Timeout()));
            View after = await client.GetViewAsync(Timeout());
            Assert.Equal(before.Backup, after.Primary);
        }
        finally
        {
            foreach (TandemProcess p in processes) p.Kill();
        }
    }

    private static View? TryView(TandemClient client)
    {
        try { return client.GetViewAsync(Timeout(TimeSpan.FromSeconds(2))).GetAwaiter().GetResult(); }
        catch (Exception) { return null; }
    }

    private static bool StatusAcked(string coordinator)
    {
        try { return SendAsync(coordinator, Commands.VsStatus).GetAwaiter().GetResult().Text.Contains("\"acked\":true"); }
        catch (Exception) { return false; }
    }

    internal static int[] FreePorts(int n)
    {
        var listeners = Enumerable.Range(0, n).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        int[] ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }
}

/// <summary>A <c>tandem</c> child process (the CLI built next to this test assembly's solution).</summary>
internal sealed class TandemProcess
{
    private readonly Process _process;

    private TandemProcess(Process process, string arguments)
    {
        _process = process;
        Arguments = arguments;
    }

    public string Arguments { get; }

    /// <summary>The child's process id (for /proc).</summary>
    public int Id => _process.Id;

    public static TandemProcess Start(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(CliPath);
        foreach (string a in args) info.ArgumentList.Add(a);
        Process p = Process.Start(info) ?? throw new InvalidOperationException("could not start tandem");
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return new TandemProcess(p, string.Join(' ', args));
    }

    /// <summary>Runs <c>tandem</c> to completion (at most a minute) and returns its exit code and output.</summary>
    public static Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(IDictionary<string, string>? env, params string[] args) =>
        RunAsync(TimeSpan.FromSeconds(60), env, args);

    /// <summary>
    /// Runs <c>tandem</c> to completion and returns its exit code and output. After <paramref name="limit"/> it gets
    /// SIGINT (so it can stop what it started), then SIGKILL, and the call throws.
    /// </summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(TimeSpan limit, IDictionary<string, string>? env, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(CliPath);
        foreach (string a in args) info.ArgumentList.Add(a);
        if (env is not null) foreach ((string k, string v) in env) info.Environment[k] = v;
        using Process p = Process.Start(info)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        try
        {
            await p.WaitForExitAsync(Timeout(limit));
        }
        catch (OperationCanceledException)
        {
            try
            {
                Process.Start("kill", ["-INT", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])?.WaitForExit(5000);
                if (!p.WaitForExit(15_000)) p.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
            throw;
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    /// <summary>SIGKILL: no cleanup, no goodbye.</summary>
    public void Kill()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
    }

    private static string CliPath
    {
        get
        {
            // tests/Tandem.IntegrationTests/bin/<Configuration>/net10.0/ -> src/Tandem.Cli/bin/<Configuration>/net10.0/tandem.dll
            var dir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            string framework = dir.Name, configuration = dir.Parent!.Name;
            DirectoryInfo root = dir.Parent!.Parent!.Parent!.Parent!.Parent!;
            string path = Path.Combine(root.FullName, "src", "Tandem.Cli", "bin", configuration, framework, "tandem.dll");
            return File.Exists(path) ? path : throw new FileNotFoundException("build src/Tandem.Cli first", path);
        }
    }
}
