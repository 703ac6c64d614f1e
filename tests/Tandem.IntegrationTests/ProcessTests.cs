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
        using var group = CoordinatorSet.Allocate(1);
        string coordinator = group.Peers;
        var processes = new List<TandemProcess>();
        try
        {
            processes.Add(group.Start(0));
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

            // A group of one, killed with SIGKILL and started again on its directory, keeps the view history.
            await Wait.UntilAsync(() => StatusAcked(coordinator) && TryView(client) is { Backup: not "" }, TimeSpan.FromSeconds(60), "a new synced backup");
            View settled = await client.GetViewAsync(Timeout());
            processes[0].Kill();
            processes[0] = group.Start(0);
            View restarted = await client.GetViewAsync(Timeout());
            Assert.True(restarted.Number >= settled.Number, $"view went back from {settled.Number} to {restarted.Number}");
            Assert.Equal(settled.Primary, restarted.Primary);
            processes.Single(p => p.Arguments.Contains(restarted.Primary)).Kill();
            for (int i = 0; i < 200; i++) Assert.Equal($"v{i}", await client.GetAsync($"k{i}", Timeout()));
        }
        finally
        {
            foreach (TandemProcess p in processes) p.Kill();
        }
    }

    [Fact]
    public async Task CoordinatorGroup_SigkillOfLeaderThenPrimary_ThenOfEveryMember_KeepsTheHistory()
    {
        int[] ports = FreePorts(3);
        using var group = CoordinatorSet.Allocate(3);
        var members = new TandemProcess?[3];
        var servers = new List<TandemProcess>();
        try
        {
            for (int i = 0; i < 3; i++) members[i] = group.Start(i);
            for (int i = 0; i < 3; i++)
                servers.Add(TandemProcess.Start("server", "--listen", $"127.0.0.1:{ports[i]}", "--coordinator", group.Peers));
            await using var client = new TandemClient(new TandemClientOptions { Coordinator = group.Peers, OperationTimeout = Patience });
            await Wait.UntilAsync(() => TryView(client) is { Primary: not "", Backup: not "" }, TimeSpan.FromSeconds(60), "a view with a backup");
            await Wait.UntilAsync(() => StatusAcked(group.Peers), TimeSpan.FromSeconds(60), "the primary to acknowledge the view");
            for (int i = 0; i < 100; i++) await client.PutAsync($"k{i}", $"v{i}", Timeout());

            // kill -9 the leader, then the primary: a new leader takes over and the backup is promoted.
            int leader = await group.LeaderAsync();
            members[leader]!.Kill();
            members[leader] = null;
            View before = await client.GetViewAsync(Timeout());
            servers.Single(p => p.Arguments.Contains(before.Primary)).Kill();
            await client.PutAsync("after-leader-and-primary", "1", Timeout());
            View promoted = await client.GetViewAsync(Timeout());
            Assert.Equal(before.Backup, promoted.Primary);
            for (int i = 0; i < 100; i++) Assert.Equal($"v{i}", await client.GetAsync($"k{i}", Timeout()));
            await Wait.UntilAsync(() => StatusAcked(group.Peers) && TryView(client) is { Backup: not "" }, TimeSpan.FromSeconds(60), "a new synced backup");
            View settled = await client.GetViewAsync(Timeout());

            // kill -9 every member, then start them all again on their directories: the same view, no new history.
            foreach (TandemProcess? m in members) m?.Kill();
            for (int i = 0; i < 3; i++) members[i] = group.Start(i);
            View restarted = await client.GetViewAsync(Timeout());
            Assert.True(restarted.Number >= settled.Number, $"view went back from {settled.Number} to {restarted.Number}");
            Assert.Equal(settled.Primary, restarted.Primary);
            Assert.Equal("1", await client.GetAsync("after-leader-and-primary", Timeout()));

            // One member gone for good: the other two still fail the primary over.
            members[0]!.Kill();
            members[0] = null;
            await Wait.UntilAsync(() => StatusAcked(group.Peers) && TryView(client) is { Backup: not "" }, TimeSpan.FromSeconds(60), "a synced backup");
            View last = await client.GetViewAsync(Timeout());
            servers.Single(p => p.Arguments.Contains(last.Primary)).Kill();
            await client.PutAsync("after-a-member-is-gone", "2", Timeout());
            Assert.Equal(last.Backup, (await client.GetViewAsync(Timeout())).Primary);
            for (int i = 0; i < 100; i++) Assert.Equal($"v{i}", await client.GetAsync($"k{i}", Timeout()));
        }
        finally
        {
            foreach (TandemProcess? m in members) m?.Kill();
            foreach (TandemProcess p in servers) p.Kill();
        }
    }

    [Fact]
    public async Task NewBackup_WhoseTransferOutlastsTheDeadTime_SyncsWhileItKeepsPinging()
    {
        // The binary runs socket completions inline on one epoll thread (SocketEventLoop). A snapshot streams into
        // the new backup without a pause, so its connection's reads always complete at once; before the read loop
        // stepped off that thread every 64 KiB, it kept it for the whole transfer, the replies to the backup's pings
        // went unread, the coordinator took the backup for dead and named it again, and the transfer started over
        // for ever (a store of 160 MB never synced).
        int[] ports = FreePorts(3);
        using var group = CoordinatorSet.Allocate(1);
        string coordinator = group.Peers;
        var processes = new List<TandemProcess>();
        try
        {
            processes.Add(group.Start(0));
            processes.Add(TandemProcess.Start("server", "--listen", $"127.0.0.1:{ports[1]}", "--coordinator", coordinator));
            await using var client = new TandemClient(new TandemClientOptions { Coordinator = coordinator, OperationTimeout = Patience });
            await Wait.UntilAsync(() => StatusAcked(coordinator), TimeSpan.FromSeconds(60), "the lone primary to acknowledge its view");

            // 800k keys of 256 B, about 220 MB of entries: at the transfer rates measured here (docs/benchmarks.md)
            // the stream runs well past the 500 ms dead time. Small entries, as in a real store: the snapshot's
            // chunks then carry a thousand each and follow each other without a pause.
            string value = new('v', 256);
            for (int batch = 0; batch < 800; batch++)
                await client.MSetAsync([.. Enumerable.Range(batch * 1000, 1000).Select(i => KeyValuePair.Create($"key:{i:D7}", value))], Timeout());
            View alone = await client.GetViewAsync(Timeout());

            processes.Add(TandemProcess.Start("server", "--listen", $"127.0.0.1:{ports[2]}", "--coordinator", coordinator));
            string newBackup = $"127.0.0.1:{ports[2]}";
            long synced = 0;
            await Wait.UntilAsync(() => (synced = AckedViewWithBackup(coordinator, newBackup)) > 0,
                TimeSpan.FromSeconds(90), "the new backup to sync and its view to be acknowledged");
            Assert.True(synced - alone.Number <= 3, $"the view moved from {alone.Number} to {synced}: the backup was dropped and named again during its transfer");

            // The synced backup holds everything: it takes over with the whole store.
            processes[1].Kill();
            Assert.Equal(value, await client.GetAsync("key:0799999", Timeout()));
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

    private static bool StatusAcked(string coordinators) => Status(coordinators) is { } status && status.GetProperty("acked").GetBoolean();

    /// <summary>The current view's number if the coordinator's status shows it acknowledged with <paramref name="backup"/> as backup; else 0.</summary>
    private static long AckedViewWithBackup(string coordinators, string backup) =>
        Status(coordinators) is { } status && status.GetProperty("acked").GetBoolean() && status.GetProperty("backup").GetString() == backup
            ? status.GetProperty("view").GetInt64() : 0;

    /// <summary>The first answer of a member to <c>VS.STATUS</c>, or null when none answers.</summary>
    private static System.Text.Json.JsonElement? Status(string coordinators)
    {
        foreach (string member in coordinators.Split(','))
        {
            try
            {
                RespValue reply = SendAsync(member, Commands.VsStatus).GetAwaiter().GetResult();
                if (reply.IsError) continue;
                using var status = System.Text.Json.JsonDocument.Parse(reply.Text);
                return status.RootElement.Clone();
            }
            catch (Exception)
            {
            }
        }
        return null;
    }

    /// <summary>Ports the nodes bind later, from below the kernel's ephemeral range (<see cref="TestPorts"/>).</summary>
    internal static int[] FreePorts(int n) => [.. Enumerable.Range(0, n).Select(_ => TestPorts.Next())];
}

/// <summary>
/// Addresses for a coordinator group of processes: free ports whose Raft ports (port + one offset) are free too,
/// and a data directory per member under a temporary root (removed on dispose).
/// </summary>
internal sealed class CoordinatorSet : IDisposable
{
    private CoordinatorSet(string[] addresses, int offset)
    {
        Addresses = addresses;
        RaftOffset = offset;
        DataRoot = Directory.CreateTempSubdirectory("tandem-group-").FullName;
    }

    public string[] Addresses { get; }
    public int RaftOffset { get; }
    public string DataRoot { get; }
    public string Peers => string.Join(',', Addresses);

    public static CoordinatorSet Allocate(int members)
    {
        var random = new Random();
        while (true)
        {
            int[] ports = ProcessTests.FreePorts(members);
            // The Raft ports stay below the kernel's ephemeral range too (TestPorts).
            int offset = random.Next(1, 32_000 - ports.Max());
            if (ports.All(p => IsFree(p + offset) && !ports.Contains(p + offset)))
                return new CoordinatorSet(ports.Select(p => $"127.0.0.1:{p}").ToArray(), offset);
        }
    }

    /// <summary>Starts member <paramref name="i"/> on its data directory (the same one on every start).</summary>
    public TandemProcess Start(int i) => TandemProcess.Start("coordinator", "--listen", Addresses[i], "--peers", Peers,
        "--raft-port-offset", RaftOffset.ToString(System.Globalization.CultureInfo.InvariantCulture), "--data-dir", Path.Combine(DataRoot, $"member-{i}"));

    /// <summary>The index of the member that says it leads (asking each with <c>VS.MEMBER</c>).</summary>
    public async Task<int> LeaderAsync()
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            for (int i = 0; i < Addresses.Length; i++)
            {
                try
                {
                    RespValue reply = await SendAsync(Addresses[i], Commands.VsMember);
                    if (reply.Text.Contains("\"role\":\"leader\"", StringComparison.Ordinal)) return i;
                }
                catch (Exception)
                {
                }
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException("no member of the coordinator group leads");
            await Task.Delay(50);
        }
    }

    /// <summary>Whether a loopback port can be bound right now.</summary>
    internal static bool IsFree(int port)
    {
        try
        {
            var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        try { Directory.Delete(DataRoot, recursive: true); }
        catch (IOException) { }
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

    /// <summary>Starts <c>tandem</c> in a fresh temporary working directory (so default data directories land there).</summary>
    public static TandemProcess Start(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Directory.CreateTempSubdirectory("tandem-process-").FullName,
        };
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
