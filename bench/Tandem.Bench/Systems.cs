using System.Diagnostics;
using System.Text.Json;

namespace Tandem.Bench;

/// <summary>Where things are: the repository, the built tandem CLI, this harness, the run's scratch directory.</summary>
internal sealed record Env(string Repo, string TandemDll, string BenchDll, string RunDirectory);

/// <summary>One system under test, as the benchmark sees it: a port that serves writes and the PID to measure.</summary>
internal abstract class SystemUnderTest : IDisposable
{
    public abstract string Name { get; }
    public abstract int Port { get; }
    public abstract int MeasuredPid { get; }
    /// <summary>Changes when the serving process changes (a Tandem failover): the view and its primary.</summary>
    public virtual string Epoch => "";
    public abstract void Dispose();

    protected static void WaitPing(int port, Process process, string what, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (process.HasExited) throw new BenchException($"{what} exited with code {process.ExitCode} at start (see its log)");
            try
            {
                using var c = RespConnection.Connect(port, TimeSpan.FromSeconds(2));
                if (c.Call("PING").Text == "PONG") return;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException) { }
            if (DateTime.UtcNow > deadline) throw new BenchException($"{what} did not answer PING on port {port} within {timeout.TotalSeconds:0} s");
            Thread.Sleep(50);
        }
    }
}

/// <summary>The coordinator's view as <c>tandem status --json</c> (VS.STATUS) reports it.</summary>
internal sealed record TandemStatus(long View, string Primary, string Backup, bool Acked, long LastAckedView)
{
    /// <summary>The view has <paramref name="backup"/> as its backup and the primary acknowledged it: a primary
    /// acknowledges a view only once that backup holds the whole state.</summary>
    public bool SyncedWith(string backup) => Backup == backup && Acked && LastAckedView == View;
}

/// <summary>A Tandem cluster as separate processes: a coordinator (group of one) and servers.</summary>
internal sealed class TandemCluster : SystemUnderTest
{
    private readonly Env _env;
    private readonly string _name;
    private readonly string[] _serverArgs;
    private readonly Process _coordinator;
    private readonly Dictionary<int, Process> _servers = [];
    private RespConnection? _status;

    private TandemCluster(Env env, string name, int coordinatorPort, Process coordinator, string[] serverArgs)
    {
        _env = env;
        _name = name;
        CoordinatorPort = coordinatorPort;
        _coordinator = coordinator;
        _serverArgs = serverArgs;
    }

    public override string Name => "Tandem";
    public int CoordinatorPort { get; }
    public string Coordinator => $"127.0.0.1:{CoordinatorPort}";
    public override int Port => PortOf(Status().Primary);
    public override int MeasuredPid => _servers[Port].Id;
    public int BackupPort => PortOf(Status().Backup);
    public override string Epoch => Status() is var s ? $"view {s.View}, primary {s.Primary}" : "";

    /// <summary>Coordinator, a first server (primary), a second (backup), and waits until the backup is synced.</summary>
    public static TandemCluster Start(Env env, string name, string[] coordinatorArgs, string[] serverArgs)
    {
        // The coordinator also listens on its port + --raft-port-offset (Raft, even in a group of one): take two
        // free ports and make the offset their difference.
        int[] two = [.. Children.FreePorts(2).Order()];
        int port = two[0];
        Process coordinator = Children.Start($"{name}-coordinator", "dotnet",
            [env.TandemDll, "coordinator", "--listen", $"127.0.0.1:{port}", "--raft-port-offset", (two[1] - two[0]).ToString(),
             "--data-dir", Path.Combine(env.RunDirectory, $"{name}-coordinator-{port}"), .. coordinatorArgs]);
        var cluster = new TandemCluster(env, name, port, coordinator, serverArgs);
        try
        {
            int first = cluster.StartServer();
            cluster.WaitFor(s => s.Primary == Address(first) && s.Acked, TimeSpan.FromSeconds(60), "the first server to become primary");
            int second = cluster.StartServer();
            cluster.WaitFor(s => s.SyncedWith(Address(second)), TimeSpan.FromSeconds(60), "the second server to become a synced backup");
            return cluster;
        }
        catch
        {
            cluster.Dispose();
            throw;
        }
    }

    public static string Address(int port) => $"127.0.0.1:{port}";
    private static int PortOf(string address) =>
        address.Length == 0 ? throw new BenchException("the Tandem view has no such server") : int.Parse(address[(address.LastIndexOf(':') + 1)..]);

    /// <summary>Starts a fresh, empty <c>tandem server</c> on a new free port; returns the port.</summary>
    public int StartServer()
    {
        int port = Children.FreePort();
        _servers[port] = Children.Start($"{_name}-server-{port}", "dotnet",
            [_env.TandemDll, "server", "--listen", Address(port), "--coordinator", Coordinator, .. _serverArgs]);
        return port;
    }

    public Process ServerProcess(int port) => _servers[port];

    /// <summary>SIGKILL of one server.</summary>
    public void Kill(int port) => Children.Kill(_servers[port]);

    public TandemStatus Status()
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                if (_coordinator.HasExited) throw new BenchException($"the Tandem coordinator exited with code {_coordinator.ExitCode} (see {_name}-coordinator.log)");
                _status ??= RespConnection.Connect(CoordinatorPort, TimeSpan.FromSeconds(5));
                Reply reply = _status.Call("VS.STATUS");
                if (reply.Type != '$' || reply.Text is null) throw new IOException($"VS.STATUS answered {reply}");
                using JsonDocument json = JsonDocument.Parse(reply.Text);
                JsonElement root = json.RootElement;
                string Str(string p) => root.TryGetProperty(p, out JsonElement e) && e.ValueKind == JsonValueKind.String ? e.GetString() ?? "" : "";
                long Num(string p) => root.TryGetProperty(p, out JsonElement e) && e.ValueKind == JsonValueKind.Number ? e.GetInt64() : -1;
                bool acked = root.TryGetProperty("acked", out JsonElement a) && a.ValueKind == JsonValueKind.True;
                return new TandemStatus(Num("view"), Str("primary"), Str("backup"), acked, Num("lastAckedView"));
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException or JsonException && attempt < 50)
            {
                _status?.Dispose();
                _status = null;
                Thread.Sleep(100);
            }
        }
    }

    public TandemStatus WaitFor(Func<TandemStatus, bool> condition, TimeSpan timeout, string what, int pollMs = 50)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            TandemStatus s = Status();
            if (condition(s)) return s;
            if (DateTime.UtcNow > deadline)
                throw new BenchException($"Tandem: timed out after {timeout.TotalSeconds:0} s waiting for {what} (last status: {s}; logs in {_env.RunDirectory})");
            Thread.Sleep(pollMs);
        }
    }

    public override void Dispose()
    {
        _status?.Dispose();
        foreach (Process p in _servers.Values) Children.Kill(p);
        Children.Kill(_coordinator);
    }
}

/// <summary>Redis 7: a primary and one asynchronous replica (<c>--replicaof</c>), no persistence.</summary>
internal sealed class RedisPair : SystemUnderTest
{
    private readonly Process _primary;
    private readonly Process _replica;

    private RedisPair(int port, Process primary, Process replica)
    {
        Port = port;
        _primary = primary;
        _replica = replica;
    }

    public override string Name => "Redis";
    public override int Port { get; }
    public override int MeasuredPid => _primary.Id;

    public static RedisPair Start(Env env, string name)
    {
        int[] ports = Children.FreePorts(2);
        string[] common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", env.RunDirectory];
        Process primary = Children.Start($"{name}-redis-{ports[0]}", "redis-server", ["--port", ports[0].ToString(), .. common]);
        Process replica = Children.Start($"{name}-redis-replica-{ports[1]}", "redis-server",
            ["--port", ports[1].ToString(), .. common, "--replicaof", "127.0.0.1", ports[0].ToString()]);
        var pair = new RedisPair(ports[0], primary, replica);
        try
        {
            WaitPing(ports[0], primary, "redis-server (primary)", TimeSpan.FromSeconds(30));
            WaitPing(ports[1], replica, "redis-server (replica)", TimeSpan.FromSeconds(30));
            var deadline = DateTime.UtcNow.AddSeconds(60);
            using var c = RespConnection.Connect(ports[0], TimeSpan.FromSeconds(5));
            while (c.Call("INFO", "replication").Text is not { } info || !info.Contains("state=online", StringComparison.Ordinal))
            {
                if (DateTime.UtcNow > deadline) throw new BenchException("the Redis replica did not come online within 60 s");
                Thread.Sleep(100);
            }
            return pair;
        }
        catch
        {
            pair.Dispose();
            throw;
        }
    }

    public override void Dispose()
    {
        Children.Kill(_replica);
        Children.Kill(_primary);
    }
}

/// <summary>Garnet, embedded by this harness in a process of its own (<c>Tandem.Bench.dll garnet</c>); standalone.</summary>
internal sealed class GarnetSolo : SystemUnderTest
{
    private readonly Process _process;

    private GarnetSolo(int port, Process process)
    {
        Port = port;
        _process = process;
    }

    public override string Name => "Garnet";
    public override int Port { get; }
    public override int MeasuredPid => _process.Id;

    public static GarnetSolo Start(Env env, string name)
    {
        int port = Children.FreePort();
        Process p = Children.Start($"{name}-garnet-{port}", "dotnet",
            [env.BenchDll, "garnet", "--port", port.ToString(), "--parent", Environment.ProcessId.ToString()]);
        var garnet = new GarnetSolo(port, p);
        try
        {
            WaitPing(port, p, "Garnet", TimeSpan.FromSeconds(60));
            return garnet;
        }
        catch
        {
            garnet.Dispose();
            throw;
        }
    }

    public override void Dispose() => Children.Kill(_process);
}
