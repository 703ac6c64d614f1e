using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Chaos;

/// <summary>The coordinator's view and whether the primary acknowledged it, as <c>VS.STATUS</c> reports.</summary>
internal readonly record struct ClusterStatus(long View, string Primary, string Backup, bool Acked);

/// <summary>
/// A coordinator and three servers as real processes, every link between them (and from clients to servers) through
/// a <see cref="FaultProxy"/> in this process:
/// <list type="bullet">
/// <item>clients to server i: server i advertises its client proxy's address, which is its identity in views;</item>
/// <item>server j to server i: server j has <c>--route Ai=proxy(j->i)</c>;</item>
/// <item>server i to the coordinator: server i's <c>--coordinator</c> is its own proxy.</item>
/// </list>
/// The chaos process itself talks to the coordinator directly.
/// </summary>
internal sealed class Cluster : IAsyncDisposable
{
    public const int ServerCount = 3;

    private Cluster(string coordinatorAddress, NodeProcess coordinator, NodeProcess[] servers, FaultProxy[] clientProxies,
        FaultProxy[,] peerProxies, FaultProxy[] coordinatorProxies)
    {
        CoordinatorAddress = coordinatorAddress;
        Coordinator = coordinator;
        Servers = servers;
        ClientProxies = clientProxies;
        PeerProxies = peerProxies;
        CoordinatorProxies = coordinatorProxies;
    }

    public string CoordinatorAddress { get; }

    public NodeProcess Coordinator { get; }

    public NodeProcess[] Servers { get; }

    /// <summary>Clients to server i; its address is server i's identity.</summary>
    public FaultProxy[] ClientProxies { get; }

    /// <summary>[j, i]: server j dialing server i.</summary>
    public FaultProxy[,] PeerProxies { get; }

    /// <summary>Server i to the coordinator.</summary>
    public FaultProxy[] CoordinatorProxies { get; }

    public IEnumerable<FaultProxy> AllProxies =>
        ClientProxies.Concat(CoordinatorProxies).Concat(PeerProxies.Cast<FaultProxy?>().OfType<FaultProxy>());

    /// <summary>The server whose identity is <paramref name="address"/>, or -1.</summary>
    public int IndexOf(string address) => Array.FindIndex(ClientProxies, p => p.Address == address);

    public static Cluster Start(ChaosOptions options, TandemCommand tandem, string directory)
    {
        int[] ports = FreePorts(1 + ServerCount);
        string coordinatorAddress = $"127.0.0.1:{ports[0]}";
        string ping = DurationText(options.PingInterval);
        var coordinator = new NodeProcess("coordinator", tandem, Path.Combine(directory, "coordinator.log"),
            "coordinator", "--listen", coordinatorAddress, "--ping-interval", ping,
            "--dead-pings", options.DeadPings.ToString(CultureInfo.InvariantCulture));

        string[] listen = [.. ports.Skip(1).Select(p => $"127.0.0.1:{p}")];
        FaultProxy[] clientProxies = [.. listen.Select((l, i) => new FaultProxy($"clients->s{i + 1}", l))];
        FaultProxy[] coordinatorProxies = [.. Enumerable.Range(0, ServerCount).Select(i => new FaultProxy($"s{i + 1}->coordinator", coordinatorAddress))];
        var peerProxies = new FaultProxy[ServerCount, ServerCount];
        for (int j = 0; j < ServerCount; j++)
        for (int i = 0; i < ServerCount; i++)
            if (i != j) peerProxies[j, i] = new FaultProxy($"s{j + 1}->s{i + 1}", listen[i]);

        var servers = new NodeProcess[ServerCount];
        for (int i = 0; i < ServerCount; i++)
        {
            var args = new List<string>
            {
                "server", "--listen", listen[i], "--coordinator", coordinatorProxies[i].Address, "--ping-interval", ping,
                "--advertise", clientProxies[i].Address,
            };
            for (int peer = 0; peer < ServerCount; peer++)
            {
                if (peer != i) args.AddRange(["--route", $"{clientProxies[peer].Address}={peerProxies[i, peer].Address}"]);
            }
            servers[i] = new NodeProcess($"s{i + 1}", tandem, Path.Combine(directory, $"s{i + 1}.log"), [.. args]);
        }

        return new Cluster(coordinatorAddress, coordinator, servers, clientProxies, peerProxies, coordinatorProxies);
    }

    /// <summary>
    /// Starts the coordinator, then the servers one at a time (each once the previous one has a role), so that
    /// start-up does not have four processes compiling at once on a small machine; returns when the view has an
    /// acknowledged primary and a backup.
    /// </summary>
    public async Task StartAsync(Action<string> log, CancellationToken ct)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        Coordinator.Start();
        await UntilAsync(s => true, "the coordinator to answer");
        Servers[0].Start();
        await UntilAsync(s => s is { Acked: true, Primary: not "" }, "a first primary");
        Servers[1].Start();
        await UntilAsync(s => s is { Acked: true, Primary: not "", Backup: not "" }, "a backup");
        Servers[2].Start();
        await Task.Delay(TimeSpan.FromSeconds(1), ct);
        ClusterStatus ready = await UntilAsync(s => s is { Acked: true, Primary: not "", Backup: not "" }, "an acknowledged view with a backup");
        log($"cluster ready after {waited.Elapsed.TotalSeconds:0.0}s: view {ready.View}");

        async Task<ClusterStatus> UntilAsync(Func<ClusterStatus, bool> condition, string what)
        {
            var step = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                if (await StatusAsync(TimeSpan.FromSeconds(1), ct) is { } status && condition(status)) return status;
                if (step.Elapsed > TimeSpan.FromSeconds(30))
                    throw new InvalidOperationException($"start-up: no {what} within 30 s (see the node logs)");
                await Task.Delay(50, ct);
            }
        }
    }

    /// <summary>Asks the coordinator directly (no proxy); null if it does not answer within <paramref name="timeout"/>.</summary>
    public async Task<ClusterStatus?> StatusAsync(TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            await using RespClientConnection conn = await RespClientConnection.ConnectAsync(CoordinatorAddress, cts.Token);
            RespValue reply = await conn.SendAsync(cts.Token, Commands.VsStatus);
            if (reply.Kind != RespKind.BulkString) return null;
            using JsonDocument json = JsonDocument.Parse(reply.Text);
            JsonElement root = json.RootElement;
            return new ClusterStatus(root.GetProperty("view").GetInt64(), root.GetProperty("primary").GetString() ?? "",
                root.GetProperty("backup").GetString() ?? "", root.GetProperty("acked").GetBoolean());
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (NodeProcess node in Servers.Append(Coordinator)) node.Dispose();
        foreach (FaultProxy proxy in AllProxies) await proxy.DisposeAsync();
    }

    private static string DurationText(TimeSpan t) => string.Create(CultureInfo.InvariantCulture, $"{(long)t.TotalMilliseconds}ms");

    /// <summary>
    /// Free ports for the nodes, below the kernel's ephemeral range when it can: a killed server restarts on the same
    /// port, which an outgoing connection must not have taken in the meantime.
    /// </summary>
    private static int[] FreePorts(int n)
    {
        int low = 32768;
        try
        {
            string[] range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            low = int.Parse(range[0], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
        }
        var ports = new List<int>();
        for (int attempt = 0; ports.Count < n && attempt < 1000; attempt++)
        {
            int port = low > 12000 ? Random.Shared.Next(10000, low - 1) : 0;
            try
            {
                var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                port = ((IPEndPoint)listener.LocalEndpoint).Port;
                listener.Stop();
                if (!ports.Contains(port)) ports.Add(port);
            }
            catch (SocketException)
            {
            }
        }
        return ports.Count == n ? [.. ports] : throw new InvalidOperationException("no free ports");
    }
}
