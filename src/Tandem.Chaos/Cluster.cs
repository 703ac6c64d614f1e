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
/// One server identity of a run: <c>s1</c>, <c>s2</c>, ... The first <see cref="Cluster.ServerCount"/> start with the
/// cluster; the others are fresh servers that join later at new addresses (after a <see cref="FaultKind.Replace"/>).
/// The listen port and the proxies that others dial to reach it exist from the start, so every server's routes can
/// name every identity of the run; the proxies it dials out through are made when it first starts.
/// </summary>
internal sealed class ServerSlot(int index, string listen, FaultProxy clientProxy, FaultProxy coordinatorProxy)
{
    public int Index { get; } = index;

    public string Name { get; } = $"s{index + 1}";

    /// <summary>Where the process listens (only proxies dial it).</summary>
    public string Listen { get; } = listen;

    /// <summary>Clients to this server; its address is the server's identity in views.</summary>
    public FaultProxy ClientProxy { get; } = clientProxy;

    /// <summary>This server to the coordinator.</summary>
    public FaultProxy CoordinatorProxy { get; } = coordinatorProxy;

    /// <summary>[i]: this server dialing server i (null for itself, and until this server first starts).</summary>
    public FaultProxy?[] PeerProxies { get; set; } = [];

    /// <summary>Null until the server first starts.</summary>
    public NodeProcess? Node { get; set; }

    /// <summary>Killed for good by a replacement: it never starts again.</summary>
    public bool Retired { get; set; }

    /// <summary>Started and not retired: it belongs to the cluster (running, paused or killed for a while).</summary>
    public bool Member => Node is not null && !Retired;

    public string Identity => ClientProxy.Address;
}

/// <summary>
/// A coordinator and three servers as real processes, every link between them (and from clients to servers) through
/// a <see cref="FaultProxy"/> in this process:
/// <list type="bullet">
/// <item>clients to server i: server i advertises its client proxy's address, which is its identity in views;</item>
/// <item>server j to server i: server j has <c>--route Ai=proxy(j->i)</c>;</item>
/// <item>server i to the coordinator: server i's <c>--coordinator</c> is its own proxy.</item>
/// </list>
/// Servers that a replacement brings in later get identities of their own (<see cref="ServerSlot"/>), prepared at the
/// start. The chaos process itself talks to the coordinator directly.
/// </summary>
internal sealed class Cluster : IAsyncDisposable
{
    public const int ServerCount = 3;

    private readonly Lock _lock = new();
    private readonly ChaosOptions _options;
    private readonly TandemCommand _tandem;
    private readonly string _directory;

    private Cluster(ChaosOptions options, TandemCommand tandem, string directory, string coordinatorAddress, NodeProcess coordinator, ServerSlot[] slots)
    {
        _options = options;
        _tandem = tandem;
        _directory = directory;
        CoordinatorAddress = coordinatorAddress;
        Coordinator = coordinator;
        Slots = slots;
    }

    public string CoordinatorAddress { get; }

    public NodeProcess Coordinator { get; }

    /// <summary>Every server identity of the run, started or not.</summary>
    public ServerSlot[] Slots { get; }

    /// <summary>The servers that belong to the cluster now.</summary>
    public IEnumerable<ServerSlot> Members
    {
        get
        {
            lock (_lock) return [.. Slots.Where(s => s.Member)];
        }
    }

    public IEnumerable<FaultProxy> AllProxies
    {
        get
        {
            lock (_lock)
            {
                return [.. Slots.SelectMany(s => s.PeerProxies.OfType<FaultProxy>().Append(s.ClientProxy).Append(s.CoordinatorProxy))];
            }
        }
    }

    /// <summary>The slot whose identity is <paramref name="address"/>, or -1.</summary>
    public int IndexOf(string address) => Array.FindIndex(Slots, s => s.Identity == address);

    /// <summary>Server <paramref name="from"/> dialing server <paramref name="to"/>; null if <paramref name="from"/> never started.</summary>
    public FaultProxy? Peer(int from, int to)
    {
        lock (_lock) return Slots[from].PeerProxies is { Length: > 0 } peers ? peers[to] : null;
    }

    /// <param name="options">The run's settings.</param>
    /// <param name="tandem">How to start the nodes.</param>
    /// <param name="directory">Where node logs go.</param>
    /// <param name="extraServers">Fresh servers the run may bring in later (identities prepared now).</param>
    public static Cluster Start(ChaosOptions options, TandemCommand tandem, string directory, int extraServers = 0)
    {
        int slotCount = ServerCount + extraServers;
        int[] ports = FreePorts(1 + slotCount);
        string coordinatorAddress = $"127.0.0.1:{ports[0]}";
        var coordinator = new NodeProcess("coordinator", tandem, Path.Combine(directory, "coordinator.log"),
            "coordinator", "--listen", coordinatorAddress, "--ping-interval", DurationText(options.PingInterval),
            "--dead-pings", options.DeadPings.ToString(CultureInfo.InvariantCulture));
        ServerSlot[] slots = [.. Enumerable.Range(0, slotCount).Select(i =>
        {
            string listen = $"127.0.0.1:{ports[1 + i]}";
            return new ServerSlot(i, listen, new FaultProxy($"clients->s{i + 1}", listen), new FaultProxy($"s{i + 1}->coordinator", coordinatorAddress));
        })];
        return new Cluster(options, tandem, directory, coordinatorAddress, coordinator, slots);
    }

    /// <summary>Makes the slot's outgoing proxies and its process (first start only), and starts it.</summary>
    private void Launch(ServerSlot slot)
    {
        lock (_lock)
        {
            if (slot.Node is null)
            {
                slot.PeerProxies = [.. Slots.Select(t => t == slot ? null : new FaultProxy($"{slot.Name}->{t.Name}", t.Listen))];
                var args = new List<string>
                {
                    "server", "--listen", slot.Listen, "--coordinator", slot.CoordinatorProxy.Address,
                    "--ping-interval", DurationText(_options.PingInterval), "--advertise", slot.Identity,
                };
                foreach (ServerSlot peer in Slots)
                {
                    if (peer != slot) args.AddRange(["--route", $"{peer.Identity}={slot.PeerProxies[peer.Index]!.Address}"]);
                }
                // Flags the servers of this branch may not know yet: passed only when asked for.
                if (_options.MaxSessions is int sessions) args.AddRange(["--max-sessions", sessions.ToString(CultureInfo.InvariantCulture)]);
                if (_options.BackupTimeout is TimeSpan timeout) args.AddRange(["--backup-timeout", DurationText(timeout)]);
                slot.Node = new NodeProcess(slot.Name, _tandem, Path.Combine(_directory, $"{slot.Name}.log"), [.. args]);
            }
        }
        slot.Node.Start();
    }

    /// <summary>Starts the next unused identity as a fresh server; null when the run prepared no more.</summary>
    public ServerSlot? JoinFresh()
    {
        ServerSlot? slot;
        lock (_lock) slot = Slots.FirstOrDefault(s => s.Node is null);
        if (slot is not null) Launch(slot);
        return slot;
    }

    /// <summary>SIGKILL, for good: the slot never starts again.</summary>
    public void Retire(ServerSlot slot)
    {
        lock (_lock) slot.Retired = true;
        slot.Node?.Kill();
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
        Launch(Slots[0]);
        await UntilAsync(s => s is { Acked: true, Primary: not "" }, "a first primary");
        Launch(Slots[1]);
        await UntilAsync(s => s is { Acked: true, Primary: not "", Backup: not "" }, "a backup");
        Launch(Slots[2]);
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
        foreach (NodeProcess node in Slots.Select(s => s.Node).OfType<NodeProcess>().Append(Coordinator)) node.Dispose();
        foreach (FaultProxy proxy in AllProxies) await proxy.DisposeAsync();
    }

    private static string DurationText(TimeSpan t) => string.Create(CultureInfo.InvariantCulture, $"{(long)t.TotalMilliseconds}ms");

    /// <summary>
    /// Free ports for the nodes, below the kernel's ephemeral range when it can: a killed server restarts on the same
    /// port, and a fresh server starts on a port chosen at the start, which an outgoing connection must not have taken
    /// in the meantime.
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
