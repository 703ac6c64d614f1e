using System.Net;
using Microsoft.Extensions.Logging;
using Tandem.Client;
using Tandem.Coordinator;
using Tandem.Protocol;
using Tandem.Server;
using Tandem.Storage;

namespace Tandem.Testing;

/// <summary>Settings of a <see cref="TestCluster"/>.</summary>
public sealed record TestClusterOptions
{
    /// <summary>P: the ping interval of coordinator and servers. Default 100 ms.</summary>
    public TimeSpan PingInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>D: pings missed before a server is dead. Default 5.</summary>
    public int DeadPings { get; init; } = 5;

    /// <summary>Adjusts the settings of every server the cluster starts (for example a shorter backup timeout).</summary>
    public Func<ServerNodeOptions, ServerNodeOptions>? ConfigureServer { get; init; }

    /// <summary>Bounds on every server's duplicate table (small ones let a test fill it). Default: the server default.</summary>
    public DuplicateTableOptions Duplicates { get; init; } = new();

    /// <summary>Members of the coordinator group (each a real Raft member with a data directory). Default 1.</summary>
    public int Coordinators { get; init; } = 1;

    /// <summary>Seed for the fault injection of each server (server i gets Seed + i).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>
    /// Where nodes log. When the environment variable <c>TANDEM_TEST_LOG</c> names a level (for example
    /// <c>Information</c>), defaults to the file <c>TANDEM_TEST_LOG_FILE</c> (or tandem-tests.log in the temp
    /// folder); else nowhere.
    /// </summary>
    public ILoggerFactory? LoggerFactory { get; init; } = Enum.TryParse(Environment.GetEnvironmentVariable("TANDEM_TEST_LOG"), out LogLevel level)
        ? Microsoft.Extensions.Logging.LoggerFactory.Create(b => b
            .AddProvider(new FileLoggerProvider(Environment.GetEnvironmentVariable("TANDEM_TEST_LOG_FILE") ?? Path.Combine(Path.GetTempPath(), "tandem-tests.log")))
            .SetMinimumLevel(level))
        : null;
}

/// <summary>
/// A coordinator group and any number of servers in this process, on real loopback sockets, with the fault
/// verbs the scenarios need: <see cref="KillAsync"/>, <see cref="RestartAsync"/>, <see cref="SetUnreliable"/>,
/// <see cref="IsolateFromCoordinator"/>, <see cref="DelayClientsAsync"/>, and for the group
/// <see cref="KillCoordinatorAsync"/> and <see cref="RestartCoordinatorAsync"/> (partitions of the group are
/// exercised by <c>tandem chaos</c>, on processes behind proxies).
/// Every integration test uses it.
/// </summary>
public sealed class TestCluster : IAsyncDisposable
{
    private readonly List<TestServer> _servers = new();
    private readonly List<TandemClient> _clients = new();
    private readonly List<DelayProxy> _proxies = new();
    private readonly List<TestCoordinator> _coordinators;
    private readonly string _dataRoot;
    private int _nextSeed;

    private TestCluster(TestClusterOptions options, TestCoordinator[] coordinators, string dataRoot)
    {
        Options = options;
        _coordinators = coordinators.ToList();
        _dataRoot = dataRoot;
        _nextSeed = options.Seed;
    }

    /// <summary>The settings.</summary>
    public TestClusterOptions Options { get; }

    /// <summary>The members of the coordinator group (running or killed).</summary>
    public IReadOnlyList<TestCoordinator> Coordinators => _coordinators;

    /// <summary>
    /// The running member whose engine leads (the first running member while none does): its view is the
    /// cluster's.
    /// </summary>
    public CoordinatorNode Coordinator =>
        _coordinators.Select(c => c.Node).FirstOrDefault(n => n?.ViewService.IsLeading == true)
        ?? _coordinators.Select(c => c.Node).FirstOrDefault(n => n is not null)
        ?? throw new InvalidOperationException("every coordinator is down");

    /// <summary>The coordinator group's member list, <c>A,B,C</c>, as servers and clients take it.</summary>
    public string CoordinatorAddress => string.Join(',', _coordinators.Select(c => c.Address));

    /// <summary>P * D: how long a silent server takes to be declared dead.</summary>
    public TimeSpan DeadTime => Options.PingInterval * Options.DeadPings;

    /// <summary>The servers started so far (running or killed).</summary>
    public IReadOnlyList<TestServer> Servers => _servers;

    /// <summary>The current view, as the coordinator has it.</summary>
    public View View => Coordinator.ViewService.CurrentView;

    /// <summary>Starts the coordinator group on free loopback ports, each member with a data directory, and waits for its leader.</summary>
    public static async Task<TestCluster> StartAsync(TestClusterOptions? options = null)
    {
        options ??= new TestClusterOptions();
        string dataRoot = Directory.CreateTempSubdirectory("tandem-test-").FullName;
        var peers = Enumerable.Range(0, options.Coordinators)
            .Select(i => new CoordinatorPeer($"127.0.0.1:{FreePort()}", new IPEndPoint(IPAddress.Loopback, FreePort())))
            .ToArray();
        var coordinators = peers.Select((peer, i) => new TestCoordinator(peer, peers, Path.Combine(dataRoot, $"coordinator-{i}"), options)).ToArray();
        var cluster = new TestCluster(options, coordinators, dataRoot);
        try
        {
            await Task.WhenAll(coordinators.Select(c => c.StartAsync()));
            await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
        return cluster;
    }

    /// <summary>Waits until a running member leads the group and its engine decides; returns it.</summary>
    public async Task<TestCoordinator> WaitForLeaderAsync(TimeSpan timeout)
    {
        int index = await Wait.UntilAsync(() =>
        {
            int at = _coordinators.FindIndex(c => c.Node?.ViewService.IsLeading == true);
            return at >= 0 ? at : (int?)null;
        }, timeout, "a leader of the coordinator group");
        return _coordinators[index];
    }

    /// <summary>
    /// Starts a new member on fresh ports and data directory, told that the group is <paramref name="group"/> plus
    /// itself (to be added with <c>add-coordinator</c>; until then the others do not count it).
    /// </summary>
    public async Task<TestCoordinator> StartNewCoordinatorAsync(IEnumerable<TestCoordinator> group)
    {
        var self = new CoordinatorPeer($"127.0.0.1:{FreePort()}", new IPEndPoint(IPAddress.Loopback, FreePort()));
        CoordinatorPeer[] peers = [.. group.Select(c => c.Peer), self];
        var member = new TestCoordinator(self, peers, Path.Combine(_dataRoot, $"coordinator-{_coordinators.Count}"), Options);
        _coordinators.Add(member);
        await member.StartAsync();
        return member;
    }

    /// <summary>Crashes coordinator group member <paramref name="member"/> (its data directory stays).</summary>
    public Task KillCoordinatorAsync(TestCoordinator member) => member.KillAsync();

    /// <summary>Starts member <paramref name="member"/> again on its data directory (killing it first if running).</summary>
    public Task RestartCoordinatorAsync(TestCoordinator member) => member.RestartAsync();

    private static int FreePort() => TestPorts.Next();

    /// <summary>
    /// Starts a new server on a free loopback port; <paramref name="arm"/> sets its faults up first, before it can
    /// receive anything.
    /// </summary>
    public async Task<TestServer> StartServerAsync(Action<FaultInjection>? arm = null)
    {
        var faults = new FaultInjection(Interlocked.Increment(ref _nextSeed));
        arm?.Invoke(faults);
        var options = new ServerNodeOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            Coordinator = CoordinatorAddress,
            PingInterval = Options.PingInterval,
            Faults = faults,
            LoggerFactory = Options.LoggerFactory,
            Duplicates = Options.Duplicates,
        };
        if (Options.ConfigureServer is { } configure) options = configure(options);
        ServerNode node = await ServerNode.StartAsync(options);
        var server = new TestServer(options, node, faults);
        lock (_servers) _servers.Add(server);
        return server;
    }

    /// <summary>Crashes <paramref name="server"/>: it answers nothing more and its state is gone.</summary>
    public Task KillAsync(TestServer server) => server.KillAsync();

    /// <summary>Starts <paramref name="server"/> again at the same address with an empty store (killing it first if running).</summary>
    public Task RestartAsync(TestServer server) => server.RestartAsync();

    /// <summary>Turns the unreliable network of the scenarios on or off for requests <paramref name="server"/> receives.</summary>
    public void SetUnreliable(TestServer server, bool unreliable) => server.Faults.Unreliable = unreliable;

    /// <summary>Cuts (or heals) the link from <paramref name="server"/> to the coordinator only; clients and servers still reach it.</summary>
    public void IsolateFromCoordinator(TestServer server, bool isolated = true) => server.Faults.CoordinatorLinkCut = isolated;

    /// <summary>A proxy in front of <paramref name="server"/> that delays client traffic by <paramref name="delay"/>.</summary>
    public Task<DelayProxy> DelayClientsAsync(TestServer server, TimeSpan delay)
    {
        var proxy = new DelayProxy(server.EndPoint) { Delay = delay };
        lock (_proxies) _proxies.Add(proxy);
        return Task.FromResult(proxy);
    }

    /// <summary>A new exactly-once client of this cluster (disposed with the cluster).</summary>
    public TandemClient CreateClient(TimeSpan? operationTimeout = null)
    {
        var client = new TandemClient(new TandemClientOptions
        {
            Coordinator = CoordinatorAddress,
            OperationTimeout = operationTimeout ?? TimeSpan.FromSeconds(60),
        });
        lock (_clients) _clients.Add(client);
        return client;
    }

    /// <summary>Waits until the coordinator's view satisfies <paramref name="condition"/>; fails after <paramref name="timeout"/>.</summary>
    public Task<View> WaitForViewAsync(Func<View, bool> condition, TimeSpan timeout, string what) =>
        Wait.UntilAsync(() => condition(View) ? View : (View?)null, timeout, what);

    /// <summary>Waits until <paramref name="server"/> is primary in the coordinator's view and acknowledged it (serving).</summary>
    public Task<View> WaitForPrimaryAsync(TestServer server, TimeSpan timeout) =>
        Wait.UntilAsync(() => View.Primary == server.Address && server.Node?.Replica.IsServingPrimary == true ? View : (View?)null,
            timeout, $"{server} to be the serving primary");

    /// <summary>
    /// Waits until <paramref name="server"/> is the backup of the coordinator's view and the primary has
    /// acknowledged that view (so the backup holds the whole state).
    /// </summary>
    public Task<View> WaitForBackupAsync(TestServer server, TimeSpan timeout) =>
        Wait.UntilAsync(() => View.Backup == server.Address && Coordinator.ViewService.PrimaryAcked ? View : (View?)null,
            timeout, $"{server} to be the synced backup");

    /// <summary>Starts two servers: the first becomes the serving primary, then the second its synced backup.</summary>
    public async Task<(TestServer Primary, TestServer Backup)> StartPrimaryAndBackupAsync(TimeSpan timeout)
    {
        TestServer primary = await StartServerAsync();
        await WaitForPrimaryAsync(primary, timeout);
        TestServer backup = await StartServerAsync();
        await WaitForBackupAsync(backup, timeout);
        return (primary, backup);
    }

    /// <summary>Waits for a view with a primary and a backup that the primary has acknowledged (the pair is synced).</summary>
    public Task<View> WaitForSyncedPairAsync(TimeSpan timeout) =>
        Wait.UntilAsync(() => View is { Primary: not "", Backup: not "" } && Coordinator.ViewService.PrimaryAcked ? View : (View?)null,
            timeout, "a synced primary/backup pair");

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (TandemClient c in _clients) await c.DisposeAsync();
        foreach (DelayProxy p in _proxies) await p.DisposeAsync();
        foreach (TestServer s in _servers) await s.KillAsync();
        foreach (TestCoordinator c in _coordinators) await c.KillAsync();
        try { Directory.Delete(_dataRoot, recursive: true); }
        catch (IOException) { }
    }
}

/// <summary>One member of a <see cref="TestCluster"/>'s coordinator group: a real Raft member with a data directory.</summary>
public sealed class TestCoordinator
{
    private readonly CoordinatorPeer _self;
    private readonly IReadOnlyList<CoordinatorPeer> _peers;
    private readonly TestClusterOptions _options;
    private readonly SemaphoreSlim _gate = new(1, 1);

    internal TestCoordinator(CoordinatorPeer self, IReadOnlyList<CoordinatorPeer> peers, string dataDirectory, TestClusterOptions options)
    {
        _self = self;
        _peers = peers;
        DataDirectory = dataDirectory;
        _options = options;
    }

    /// <summary>Its RESP address (fixed across restarts).</summary>
    public string Address => _self.Address;

    /// <summary>Its addresses, as the other members are told of it.</summary>
    public CoordinatorPeer Peer => _self;

    /// <summary>Where its log lives.</summary>
    public string DataDirectory { get; }

    /// <summary>The running node, or null while killed.</summary>
    public CoordinatorNode? Node { get; private set; }

    /// <summary>Starts the member on its data directory, unless it runs.</summary>
    public async Task StartAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (Node is not null) return;
            Node = await CoordinatorNode.StartAsync(new CoordinatorNodeOptions
            {
                Listen = (IPEndPoint)Tandem.Net.RespClientConnection.ParseEndPoint(_self.Address),
                ViewService = new ViewServiceOptions { PingInterval = _options.PingInterval, DeadPings = _options.DeadPings },
                Group = new CoordinatorGroupOptions
                {
                    Address = _self.Address,
                    RaftListen = _self.RaftEndPoint,
                    Peers = _peers,
                    DataDirectory = DataDirectory,
                },
                LoggerFactory = _options.LoggerFactory,
            }, CancellationToken.None);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Stops the member at once (its log stays on disk).</summary>
    public async Task KillAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (Node is null) return;
            await Node.KillAsync();
            Node = null;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Kills, then starts again on the same directory.</summary>
    public async Task RestartAsync()
    {
        await KillAsync();
        await StartAsync();
    }

    /// <inheritdoc />
    public override string ToString() => $"coordinator {Address}";
}

/// <summary>Polling waits with a deadline, for conditions that become true eventually.</summary>
public static class Wait
{
    /// <summary>Polls <paramref name="probe"/> until it returns a value; throws <see cref="TimeoutException"/> naming <paramref name="what"/>.</summary>
    public static async Task<T> UntilAsync<T>(Func<T?> probe, TimeSpan timeout, string what) where T : struct
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            T? value = probe();
            if (value.HasValue) return value.Value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out after {timeout.TotalSeconds:0.#} s waiting for {what}");
            await Task.Delay(10);
        }
    }

    /// <summary>Polls <paramref name="condition"/> until true; throws <see cref="TimeoutException"/> naming <paramref name="what"/>.</summary>
    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what) =>
        UntilAsync(() => condition() ? true : (bool?)null, timeout, what);
}
