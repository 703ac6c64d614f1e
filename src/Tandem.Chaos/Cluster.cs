using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Chaos;

/// <summary>The leader's view and whether the primary acknowledged it, as <c>VS.STATUS</c> reports.</summary>
/// <param name="View">The current view's number.</param>
/// <param name="Primary">Its primary ("" for none).</param>
/// <param name="Backup">Its backup ("" for none).</param>
/// <param name="Acked">Whether the primary acknowledged it.</param>
/// <param name="Servers">What the leader heard from each server, by address (empty when not read).</param>
/// <param name="DeadTimeMs">The coordinator's dead time (ping interval times dead pings).</param>
/// <param name="BackupReported">The primary reported the backup unreachable: the next tick drops it.</param>
internal readonly record struct ClusterStatus(long View, string Primary, string Backup, bool Acked, IReadOnlyDictionary<string, ServerHeard>? Servers = null,
    long DeadTimeMs = 500, bool BackupReported = false)
{
    /// <summary>
    /// Whether <paramref name="address"/> is known to hold the current view's whole state and to go on holding it
    /// in the coordinator's eyes: it pinged the leader within the last half dead time (one about to be taken for
    /// dead is not a copy to count on: the coordinator would drop it as the other one is killed), alive, not
    /// restarted, saying it holds this view (a server started again empty says 0; a leader that has not heard
    /// from it since it took over knows nothing), not a backup its primary reported unreachable, and that ping
    /// came after the server's last kill, <paramref name="sinceKilled"/> ago: a ping of the incarnation before a
    /// kill says what a dead process held.
    /// </summary>
    public bool Holds(string address, TimeSpan sinceKilled) =>
        address != "" && Servers is { } servers && servers.TryGetValue(address, out ServerHeard heard)
        && heard is { Alive: true, Restarted: false } && heard.SinceLastPingMs <= DeadTimeMs / 2 && heard.HeldView >= View
        && !(address == Backup && BackupReported)
        && TimeSpan.FromMilliseconds(heard.SinceLastPingMs + 100) < sinceKilled;
}

/// <summary>One server as the leader last heard from it (an entry of <c>VS.STATUS</c>'s <c>servers</c>).</summary>
internal readonly record struct ServerHeard(bool Alive, long SinceLastPingMs, long HeldView, bool Restarted);

/// <summary>One member of the coordinator group as it answers <c>VS.MEMBER</c>.</summary>
/// <param name="Leads">It says it leads (and decides).</param>
/// <param name="Term">Its Raft term.</param>
/// <param name="View">The view number it has applied.</param>
internal readonly record struct MemberState(bool Leads, long Term, long View);

/// <summary>
/// One member of the coordinator group: <c>c1</c>, <c>c2</c>, ... A process listening on <see cref="Address"/> (and
/// on its port + the Raft port offset for the group's traffic), keeping its log in <see cref="DataDirectory"/>, so
/// that a kill -9 and a start again keep the view history.
/// </summary>
internal sealed class CoordinatorMember(int index, string address, string dataDirectory, NodeProcess node)
{
    public int Index { get; } = index;

    public string Name { get; } = $"c{index + 1}";

    /// <summary>Its RESP address, as clients and the chaos process dial it (servers go through their proxies).</summary>
    public string Address { get; } = address;

    /// <summary>Where its log lives, across restarts.</summary>
    public string DataDirectory { get; } = dataDirectory;

    public NodeProcess Node { get; } = node;
}

/// <summary>
/// One server identity of a run: <c>s1</c>, <c>s2</c>, ... The first <see cref="Cluster.ServerCount"/> start with the
/// cluster; the others are fresh servers that join later at new addresses (after a <see cref="FaultKind.Replace"/>).
/// The listen port and the proxies that others dial to reach it exist from the start, so every server's routes can
/// name every identity of the run; the proxies it dials out through are made when it first starts.
/// </summary>
internal sealed class ServerSlot(int index, string listen, FaultProxy clientProxy, FaultProxy[] coordinatorProxies)
{
    public int Index { get; } = index;

    public string Name { get; } = $"s{index + 1}";

    /// <summary>Where the process listens (only proxies dial it).</summary>
    public string Listen { get; } = listen;

    /// <summary>Clients to this server; its address is the server's identity in views.</summary>
    public FaultProxy ClientProxy { get; } = clientProxy;

    /// <summary>[j]: this server to coordinator member j (a member naming the leader names this server's proxy to it).</summary>
    public FaultProxy[] CoordinatorProxies { get; } = coordinatorProxies;

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
/// A coordinator group and three servers as real processes, every link between servers, from servers to the group's
/// members and from clients to servers through a <see cref="FaultProxy"/> in this process:
/// <list type="bullet">
/// <item>clients to server i: server i advertises its client proxy's address, which is its identity in views;</item>
/// <item>server j to server i: server j has <c>--route Ai=proxy(j->i)</c>;</item>
/// <item>server i to member k: server i's <c>--coordinator</c> lists its own proxy to each member; a member's
/// <c>NOTLEADER leader X</c> is rewritten on the way back to name server i's proxy to X, so following the leader
/// never bypasses the proxies.</item>
/// </list>
/// The members' Raft traffic goes between them directly (each on its port + <see cref="RaftPortOffset"/>).
/// Servers that a replacement brings in later get identities of their own (<see cref="ServerSlot"/>), prepared at the
/// start. The chaos process and the clients talk to the members directly.
/// </summary>
internal sealed class Cluster : IAsyncDisposable
{
    public const int ServerCount = 3;

    /// <summary>Each member listens for Raft traffic on its port + this (the ports are chosen so that both are free).</summary>
    public const int RaftPortOffset = 10000;

    private readonly Lock _lock = new();
    private readonly ChaosOptions _options;
    private readonly TandemCommand _tandem;
    private readonly string _directory;

    private Cluster(ChaosOptions options, TandemCommand tandem, string directory, CoordinatorMember[] coordinators, ServerSlot[] slots)
    {
        _options = options;
        _tandem = tandem;
        _directory = directory;
        Coordinators = coordinators;
        CoordinatorList = string.Join(",", coordinators.Select(c => c.Address));
        Slots = slots;
    }

    /// <summary>Every member's address, comma-separated: what clients take as <c>--coordinator</c>.</summary>
    public string CoordinatorList { get; }

    /// <summary>The members of the coordinator group.</summary>
    public CoordinatorMember[] Coordinators { get; }

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
                return [.. Slots.SelectMany(s => s.PeerProxies.OfType<FaultProxy>().Append(s.ClientProxy).Concat(s.CoordinatorProxies))];
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
    /// <param name="directory">Where node logs and the members' data directories go.</param>
    /// <param name="extraServers">Fresh servers the run may bring in later (identities prepared now).</param>
    public static Cluster Start(ChaosOptions options, TandemCommand tandem, string directory, int extraServers = 0)
    {
        int slotCount = ServerCount + extraServers;
        int[] coordinatorPorts = FreePorts(options.Coordinators, RaftPortOffset);
        int[] ports = FreePorts(slotCount, 0, coordinatorPorts.SelectMany(p => new[] { p, p + RaftPortOffset }));
        string[] addresses = [.. coordinatorPorts.Select(p => $"127.0.0.1:{p}")];
        string peers = string.Join(",", addresses);
        CoordinatorMember[] coordinators = [.. addresses.Select((address, i) =>
        {
            string data = Path.Combine(directory, $"c{i + 1}-data");
            var node = new NodeProcess($"c{i + 1}", tandem, Path.Combine(directory, $"c{i + 1}.log"),
                "coordinator", "--listen", address, "--peers", peers, "--data-dir", data,
                "--raft-port-offset", RaftPortOffset.ToString(CultureInfo.InvariantCulture),
                "--ping-interval", DurationText(options.PingInterval), "--dead-pings", options.DeadPings.ToString(CultureInfo.InvariantCulture));
            return new CoordinatorMember(i, address, data, node);
        })];
        ServerSlot[] slots = [.. Enumerable.Range(0, slotCount).Select(i =>
        {
            string listen = $"127.0.0.1:{ports[i]}";
            FaultProxy[] toCoordinators = [.. coordinators.Select(c => new FaultProxy($"s{i + 1}->{c.Name}", c.Address))];
            // A member naming the leader names this server's proxy to it.
            (string, string)[] rewrites = [.. coordinators.Select((c, k) =>
                ($"-{ErrorCodes.NotLeader} leader {c.Address}\r\n", $"-{ErrorCodes.NotLeader} leader {toCoordinators[k].Address}\r\n"))];
            foreach (FaultProxy proxy in toCoordinators) proxy.ReplyRewrites = rewrites;
            return new ServerSlot(i, listen, new FaultProxy($"clients->s{i + 1}", listen), toCoordinators);
        })];
        return new Cluster(options, tandem, directory, coordinators, slots);
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
                    "server", "--listen", slot.Listen, "--coordinator", string.Join(",", slot.CoordinatorProxies.Select(p => p.Address)),
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
    /// Starts the coordinator group and waits for a leader, then the servers one at a time (each once the previous
    /// one has a role), so that start-up does not have every process compiling at once on a small machine; returns
    /// when the view has an acknowledged primary and a backup.
    /// </summary>
    public async Task StartAsync(Action<string> log, CancellationToken ct)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        foreach (CoordinatorMember member in Coordinators) member.Node.Start();
        await UntilAsync(s => true, "coordinator leader to answer", TimeSpan.FromSeconds(60));
        Launch(Slots[0]);
        await UntilAsync(s => s is { Acked: true, Primary: not "" }, "a first primary", TimeSpan.FromSeconds(30));
        Launch(Slots[1]);
        await UntilAsync(s => s is { Acked: true, Primary: not "", Backup: not "" }, "a backup", TimeSpan.FromSeconds(30));
        Launch(Slots[2]);
        await Task.Delay(TimeSpan.FromSeconds(1), ct);
        ClusterStatus ready = await UntilAsync(s => s is { Acked: true, Primary: not "", Backup: not "" }, "an acknowledged view with a backup", TimeSpan.FromSeconds(30));
        log($"cluster ready after {waited.Elapsed.TotalSeconds:0.0}s: view {ready.View}");

        async Task<ClusterStatus> UntilAsync(Func<ClusterStatus, bool> condition, string what, TimeSpan limit)
        {
            var step = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                if (await StatusAsync(TimeSpan.FromSeconds(1), ct) is { } status && condition(status)) return status;
                if (step.Elapsed > limit)
                    throw new InvalidOperationException($"start-up: no {what} within {limit.TotalSeconds:0} s (see the node logs)");
                await Task.Delay(50, ct);
            }
        }
    }

    /// <summary>
    /// Asks every member <c>VS.MEMBER</c> at once (directly, no proxy); [k] is member k's answer, or null if it did
    /// not answer within <paramref name="timeout"/> (killed, paused, starting).
    /// </summary>
    public async Task<MemberState?[]> MembersAsync(TimeSpan timeout, CancellationToken ct) =>
        await Task.WhenAll(Coordinators.Select(c => MemberAsync(c.Address, timeout, ct)));

    private static async Task<MemberState?> MemberAsync(string address, TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            await using RespClientConnection conn = await RespClientConnection.ConnectAsync(address, cts.Token);
            RespValue reply = await conn.SendAsync(cts.Token, Commands.VsMember);
            return reply.Kind == RespKind.BulkString ? ParseMember(reply.Text) : null;
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Reads a <c>VS.MEMBER</c> reply: <c>{"address","role","term","leader","view"}</c>.</summary>
    internal static MemberState ParseMember(string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        JsonElement root = document.RootElement;
        return new MemberState(root.GetProperty("role").GetString() == "leader", root.GetProperty("term").GetInt64(), root.GetProperty("view").GetInt64());
    }

    /// <summary>
    /// The member that leads, from answers of <see cref="MembersAsync"/>: among those that say they lead, the one
    /// of the highest term (a leader just resumed from a pause may still say it leads an old term); -1 if none.
    /// </summary>
    public static int LeaderOf(IReadOnlyList<MemberState?> members)
    {
        int leader = -1;
        for (int k = 0; k < members.Count; k++)
        {
            if (members[k] is { Leads: true } m && (leader < 0 || m.Term > members[leader]!.Value.Term)) leader = k;
        }
        // A member of a higher term that does not lead means the one found is deposed (an election is going on).
        return leader >= 0 && members.Any(m => m is { } other && other.Term > members[leader]!.Value.Term) ? -1 : leader;
    }

    /// <summary>
    /// The view as the group's leader reports it (<c>VS.STATUS</c>, directly, no proxy); null if no member leads
    /// now, the leader does not answer within <paramref name="timeout"/>, or its view is older than one a member has
    /// applied (a deposed leader that has not noticed yet).
    /// </summary>
    public async Task<ClusterStatus?> StatusAsync(TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            MemberState?[] members = await MembersAsync(timeout, ct);
            int leader = LeaderOf(members);
            if (leader < 0) return null;
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            await using RespClientConnection conn = await RespClientConnection.ConnectAsync(Coordinators[leader].Address, cts.Token);
            RespValue reply = await conn.SendAsync(cts.Token, Commands.VsStatus);
            if (reply.Kind != RespKind.BulkString) return null;
            using JsonDocument json = JsonDocument.Parse(reply.Text);
            JsonElement root = json.RootElement;
            var servers = new Dictionary<string, ServerHeard>();
            if (root.TryGetProperty("servers", out JsonElement list))
            {
                foreach (JsonElement e in list.EnumerateArray())
                {
                    servers[e.GetProperty("address").GetString() ?? ""] = new ServerHeard(e.GetProperty("alive").GetBoolean(),
                        e.GetProperty("lastPingMsAgo").GetInt64(), e.TryGetProperty("heldView", out JsonElement held) ? held.GetInt64() : -1,
                        e.GetProperty("restarted").GetBoolean());
                }
            }
            var status = new ClusterStatus(root.GetProperty("view").GetInt64(), root.GetProperty("primary").GetString() ?? "",
                root.GetProperty("backup").GetString() ?? "", root.GetProperty("acked").GetBoolean(), servers,
                (long)(root.GetProperty("pingIntervalMs").GetDouble() * root.GetProperty("deadPings").GetInt32()),
                root.TryGetProperty("backupReported", out JsonElement reported) && reported.GetBoolean());
            return members.Any(m => m is { } other && other.View > status.View) ? null : status;
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (NodeProcess node in Slots.Select(s => s.Node).OfType<NodeProcess>().Concat(Coordinators.Select(c => c.Node))) node.Dispose();
        foreach (FaultProxy proxy in AllProxies) await proxy.DisposeAsync();
    }

    private static string DurationText(TimeSpan t) => string.Create(CultureInfo.InvariantCulture, $"{(long)t.TotalMilliseconds}ms");

    /// <summary>
    /// <paramref name="n"/> free ports P (with P + <paramref name="offset"/> free as well when the offset is not 0),
    /// none in <paramref name="taken"/>, below the kernel's ephemeral range when it can: a killed node restarts on
    /// the same port, and a fresh server starts on a port chosen at the start, which an outgoing connection must not
    /// have taken in the meantime.
    /// </summary>
    private static int[] FreePorts(int n, int offset = 0, IEnumerable<int>? taken = null)
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
        var avoid = new HashSet<int>(taken ?? []);
        var ports = new List<int>();
        // Below the ephemeral range when it leaves room (P and P + offset both under it), else anywhere up to 65535.
        int high = low - 1 - offset > 11000 ? low - 1 - offset : 65535 - offset;
        for (int attempt = 0; ports.Count < n && attempt < 2000; attempt++)
        {
            int port = Random.Shared.Next(10000, high);
            if (avoid.Contains(port) || offset > 0 && avoid.Contains(port + offset) || ports.Contains(port) || ports.Contains(port + offset)
                || ports.Any(p => p + offset == port)) continue;
            if (IsFree(port) && (offset == 0 || IsFree(port + offset))) ports.Add(port);
        }
        return ports.Count == n ? [.. ports] : throw new InvalidOperationException("no free ports");
    }

    private static bool IsFree(int port)
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
}
