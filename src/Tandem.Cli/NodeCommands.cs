using System.CommandLine;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Tandem.Coordinator;
using Tandem.Protocol;
using Tandem.Server;

namespace Tandem.Cli;

/// <summary><c>tandem coordinator</c>, <c>tandem server</c> and <c>tandem dev</c>: run nodes until SIGINT/SIGTERM.</summary>
internal static class NodeCommands
{
    private static readonly TimeSpan DefaultPingInterval = TimeSpan.FromMilliseconds(100);

    public static IEnumerable<Command> Create() => [Coordinator(), Server(), Dev()];

    private static Command Coordinator()
    {
        Option<IPEndPoint> listen = CliParsers.Listen("Address to listen on, for servers and clients.");
        Option<TimeSpan?> pingInterval = CliParsers.Duration("--ping-interval", DefaultPingInterval, "How often servers are expected to ping.");
        var deadPings = new Option<int>("--dead-pings")
        {
            Description = "Missed pings after which a server is dead.",
            HelpName = "N",
            DefaultValueFactory = _ => 5,
        };
        CliParsers.Reject(deadPings, r => r.GetValueOrDefault<int>() < 1, "--dead-pings must be at least 1");

        Option<int> maxConnections = MaxConnections("servers and clients");
        Option<long> maxBuffered = MaxBufferedBytes();
        Option<TimeSpan?> frameTimeout = CliParsers.Duration("--frame-timeout", Tandem.Net.RespConnectionHandler.DefaultFrameTimeout,
            "Close a client whose command stays incomplete this long.");

        Option<string> peers = CliParsers.RemoteList("--peers",
            "Every member of the coordinator group, this one included (the same list on each member). Without it the group has one member.",
            () => "");
        peers.Validators.Clear();
        var dataDir = new Option<string>("--data-dir")
        {
            HelpName = "DIR",
            Description = "Where this member keeps its log of views (kept across restarts). Default: the directory coordinator-PORT under the working directory, PORT being --listen's port.",
        };
        Option<int> raftOffset = RaftPortOffset();
        Option<TimeSpan?> electionTimeout = CliParsers.Duration("--election-timeout", DefaultElectionTimeout,
            "Followers elect a new leader after hearing nothing from it for a random time between this and twice this.");

        var serviceName = new Option<string>("--service-name")
        {
            HelpName = "NAME",
            Description = "The master name Redis Sentinel clients ask for (SENTINEL get-master-addr-by-name NAME); the same on every member.",
            DefaultValueFactory = _ => CoordinatorHandler.DefaultServiceName,
        };
        CliParsers.Reject(serviceName, r => !CoordinatorHandler.IsServiceName(r.GetValueOrDefault<string>()),
            "--service-name must be one word of printable ASCII (at most 128 characters)");

        var command = new Command("coordinator", "Run a member of the coordinator group (the view service).")
        {
            listen, peers, dataDir, pingInterval, deadPings, raftOffset, electionTimeout, maxConnections, maxBuffered, frameTimeout, serviceName,
        };
        command.SetAction(async (parse, ct) =>
        {
            using ILoggerFactory logging = ConsoleLogging();
            IPEndPoint endPoint = parse.GetValue(listen)!;
            CoordinatorGroupOptions group;
            try
            {
                group = GroupOptions(endPoint, parse.GetValue(peers) ?? "", parse.GetValue(dataDir), parse.GetValue(raftOffset),
                    parse.GetDuration(electionTimeout, DefaultElectionTimeout));
            }
            catch (FormatException e)
            {
                return Fail(e.Message);
            }
            CoordinatorNode node;
            try
            {
                node = await CoordinatorNode.StartAsync(new CoordinatorNodeOptions
                {
                    Listen = endPoint,
                    ViewService = new ViewServiceOptions { PingInterval = parse.GetDuration(pingInterval, DefaultPingInterval), DeadPings = parse.GetValue(deadPings) },
                    Group = group,
                    MaxConnections = parse.GetValue(maxConnections),
                    MaxBufferedBytes = parse.GetValue(maxBuffered),
                    FrameTimeout = parse.GetDuration(frameTimeout, Tandem.Net.RespConnectionHandler.DefaultFrameTimeout),
                    ServiceName = parse.GetValue(serviceName)!,
                    LoggerFactory = logging,
                }, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return Fail($"cannot start the coordinator on {endPoint}: {e.Message}");
            }
            Console.WriteLine($"tandem coordinator listening on {node.Address}, group of {Math.Max(1, group.Peers.Count)} (Raft on {group.RaftListen}), data in {group.DataDirectory}");
            await Signals.WaitForShutdownAsync(ct);
            await node.StopAsync();
            return 0;
        });
        return command;
    }

    private static readonly TimeSpan DefaultElectionTimeout = TimeSpan.FromMilliseconds(150);

    /// <summary>The default distance from a coordinator's port to its Raft port.</summary>
    public const int DefaultRaftPortOffset = 10000;

    internal static Option<int> RaftPortOffset()
    {
        var option = new Option<int>("--raft-port-offset")
        {
            HelpName = "N",
            Description = "Each member also listens on its port + N for the group's Raft traffic (the same N on every member).",
            DefaultValueFactory = _ => DefaultRaftPortOffset,
        };
        CliParsers.Reject(option, r => r.GetValueOrDefault<int>() is < 1 or > 65534, "--raft-port-offset must be between 1 and 65534");
        return option;
    }

    /// <summary>
    /// The group settings of the member listening on <paramref name="listen"/>: its RESP address, its Raft
    /// address (port + offset) and every member's, resolved to IP addresses.
    /// </summary>
    internal static CoordinatorGroupOptions GroupOptions(IPEndPoint listen, string peers, string? dataDir, int raftOffset, TimeSpan electionTimeout)
    {
        if (listen.Port == 0) throw new FormatException("--listen: a coordinator needs a fixed port (its Raft port is port + --raft-port-offset)");
        string self = AddressOf(listen);
        IReadOnlyList<string> members = peers == "" ? [self] : Tandem.Net.CoordinatorMembers.Parse(peers);
        var raft = members.Select(m => RaftEndPoint(m, raftOffset)).ToList();
        IPEndPoint raftSelf = RaftEndPoint(self, raftOffset);
        // This member is the peer at its own address; with a wildcard --listen, the one peer on this port whose
        // address is one of this host's.
        int[] matches = Enumerable.Range(0, raft.Count).Where(i => raft[i].Equals(raftSelf)).ToArray();
        if (matches.Length == 0 && (listen.Address.Equals(IPAddress.Any) || listen.Address.Equals(IPAddress.IPv6Any)))
        {
            HashSet<IPAddress> local = LocalAddresses();
            matches = Enumerable.Range(0, raft.Count).Where(i => raft[i].Port == raftSelf.Port && local.Contains(raft[i].Address)).ToArray();
        }
        if (matches.Length == 0) throw new FormatException($"--peers must list this member's --listen address {self} among the members");
        if (matches.Length > 1)
            throw new FormatException($"--peers names this host more than once on port {listen.Port}; give --listen the member's own address");
        int at = matches[0];
        return new CoordinatorGroupOptions
        {
            Address = members[at],
            RaftListen = new IPEndPoint(listen.Address, raftSelf.Port),
            RaftAdvertised = raft[at],
            Peers = members.Select((m, i) => new CoordinatorPeer(m, raft[i])).ToList(),
            DataDirectory = Path.GetFullPath(dataDir ?? $"coordinator-{listen.Port.ToString(CultureInfo.InvariantCulture)}"),
            ElectionTimeout = electionTimeout,
        };
    }

    private static HashSet<IPAddress> LocalAddresses()
    {
        var local = new HashSet<IPAddress> { IPAddress.Loopback, IPAddress.IPv6Loopback };
        foreach (System.Net.NetworkInformation.NetworkInterface nic in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces())
            foreach (System.Net.NetworkInformation.UnicastIPAddressInformation a in nic.GetIPProperties().UnicastAddresses)
                local.Add(a.Address);
        return local;
    }

    private static string AddressOf(IPEndPoint listen) =>
        listen.Address.Equals(IPAddress.Any) ? $"{Dns.GetHostName()}:{listen.Port.ToString(CultureInfo.InvariantCulture)}" : listen.ToString();

    /// <summary>The Raft address of the member at <paramref name="address"/> (HOST:PORT): its IP, port + offset.</summary>
    internal static IPEndPoint RaftEndPoint(string address, int offset)
    {
        var endPoint = Tandem.Net.RespClientConnection.ParseEndPoint(address);
        (IPAddress ip, int port) = endPoint switch
        {
            IPEndPoint e => (e.Address, e.Port),
            DnsEndPoint d => (Dns.GetHostAddresses(d.Host).OrderBy(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 0 : 1).FirstOrDefault()
                ?? throw new FormatException($"cannot resolve {d.Host}"), d.Port),
            _ => throw new FormatException($"'{address}' is not HOST:PORT"),
        };
        if (port + offset > 65535) throw new FormatException($"{address}: port + --raft-port-offset {offset} is above 65535");
        return new IPEndPoint(ip, port + offset);
    }

    private static Option<long> MaxBufferedBytes()
    {
        var option = new Option<long>("--max-buffered-bytes")
        {
            HelpName = "N",
            Description = "Memory budget of all connections together: most bytes of incomplete commands held at once (beyond 64 KiB each); a connection that would pass it is cut.",
            DefaultValueFactory = _ => Tandem.Net.RespConnectionHandler.DefaultMaxBufferedBytes,
        };
        CliParsers.Reject(option, r => r.GetValueOrDefault<long>() < 1, "--max-buffered-bytes must be at least 1");
        return option;
    }

    private static Option<int> MaxConnections(string who)
    {
        var option = new Option<int>("--max-connections")
        {
            HelpName = "N",
            Description = $"Most connections served at once ({who}).",
            DefaultValueFactory = _ => Tandem.Net.RespHost.DefaultMaxConnections,
        };
        CliParsers.Reject(option, r => r.GetValueOrDefault<int>() < 1, "--max-connections must be at least 1");
        return option;
    }

    private static Command Server()
    {
        Option<IPEndPoint> listen = CliParsers.Listen("Address to listen on; it is also this server's identity in views.");
        Option<string> coordinator = CliParsers.RemoteList("--coordinator", "The coordinator group's members (one address for a group of one); the server pings the leader.");
        Option<TimeSpan?> pingInterval = CliParsers.Duration("--ping-interval", DefaultPingInterval, "How often to ping the coordinator.");
        var advertise = new Option<string?>("--advertise")
        {
            HelpName = "HOST:PORT",
            Description = "The address others use to reach this server (its identity); default: the --listen address. Needed when listening on 0.0.0.0.",
        };
        advertise.Validators.Add(r =>
        {
            string? v = r.GetValueOrDefault<string?>();
            try { if (v is not null) Tandem.Net.RespClientConnection.ParseEndPoint(v); }
            catch (FormatException e) { r.AddError($"--advertise: {e.Message}"); }
        });
        var maxValue = new Option<int>("--max-value-bytes") { HelpName = "N", Description = "Largest value accepted.", DefaultValueFactory = _ => 8 * 1024 * 1024 };
        CliParsers.Reject(maxValue, r => r.GetValueOrDefault<int>() is < 1 or > 512 * 1024 * 1024, "--max-value-bytes must be between 1 and 536870912");
        var maxKey = new Option<int>("--max-key-bytes") { HelpName = "N", Description = "Largest key accepted.", DefaultValueFactory = _ => 64 * 1024 };
        CliParsers.Reject(maxKey, r => r.GetValueOrDefault<int>() is < 1 or > 512 * 1024 * 1024, "--max-key-bytes must be between 1 and 536870912");

        var routes = new Option<string[]>("--route")
        {
            HelpName = "PEER=VIA",
            Description = "Dial VIA (HOST:PORT) to reach the peer server PEER; repeatable. For fault-injecting proxies.",
            AllowMultipleArgumentsPerToken = false,
        };
        routes.Validators.Add(r =>
        {
            foreach (string route in r.GetValueOrDefault<string[]>() ?? [])
            {
                string[] parts = route.Split('=');
                try
                {
                    if (parts.Length != 2) throw new FormatException($"'{route}' is not PEER=VIA");
                    Tandem.Net.RespClientConnection.ParseEndPoint(parts[0]);
                    Tandem.Net.RespClientConnection.ParseEndPoint(parts[1]);
                }
                catch (FormatException e) { r.AddError($"--route: {e.Message}"); }
            }
        });

        Option<TimeSpan?> frameTimeout = CliParsers.Duration("--frame-timeout", Tandem.Net.RespConnectionHandler.DefaultFrameTimeout,
            "Close a client whose command stays incomplete this long.");
        Option<int> maxConnections = MaxConnections("clients and other servers");
        Option<long> maxBuffered = MaxBufferedBytes();
        var maxSessions = new Option<int>("--max-sessions")
        {
            HelpName = "N",
            Description = "Most client sessions the duplicate table keeps; beyond it the oldest are dropped and their retries refused.",
            DefaultValueFactory = _ => new Tandem.Storage.DuplicateTableOptions().MaxClients,
        };
        CliParsers.Reject(maxSessions, r => r.GetValueOrDefault<int>() < 1, "--max-sessions must be at least 1");
        var maxSessionBytes = new Option<long>("--max-session-bytes")
        {
            HelpName = "N",
            Description = "Most bytes of saved replies the duplicate table keeps (a saved PUTHASH reply holds a whole value).",
            DefaultValueFactory = _ => new Tandem.Storage.DuplicateTableOptions().MaxBytes,
        };
        CliParsers.Reject(maxSessionBytes, r => r.GetValueOrDefault<long>() < 1, "--max-session-bytes must be at least 1");

        TimeSpan defaultBackupTimeout = TimeSpan.FromMilliseconds(1500);
        Option<TimeSpan?> backupTimeout = CliParsers.Duration("--backup-timeout", defaultBackupTimeout,
            "A primary waits this long for any answer of its backup; a backup failing this long is reported to the coordinator and replaced.");
        var maxBacklog = new Option<long>("--max-backlog-bytes")
        {
            HelpName = "N",
            Description = "Most bytes of writes a primary holds for a backup that is behind; past it writes get TRYAGAIN (not applied).",
            DefaultValueFactory = _ => 256L * 1024 * 1024,
        };
        CliParsers.Reject(maxBacklog, r => r.GetValueOrDefault<long>() < 1, "--max-backlog-bytes must be at least 1");

        var command = new Command("server", "Run a key-value server.")
        {
            listen, coordinator, pingInterval, advertise, maxValue, maxKey, routes, frameTimeout, maxConnections, maxBuffered, backupTimeout,
            maxBacklog, maxSessions, maxSessionBytes,
        };

        command.SetAction(async (parse, ct) =>
        {
            long room = (long)parse.GetValue(maxValue) + parse.GetValue(maxKey) + 64;
            if (parse.GetValue(maxBacklog) < room)
                return Fail($"--max-backlog-bytes must leave room for the largest write: at least {room} (--max-value-bytes + --max-key-bytes + 64)");
            long frame = (long)parse.GetValue(maxValue) + parse.GetValue(maxKey) + 1024 * 1024;
            if (parse.GetValue(maxBuffered) < frame)
                return Fail($"--max-buffered-bytes must hold the largest write: at least {frame} (--max-value-bytes + --max-key-bytes + 1 MiB)");
            using ILoggerFactory logging = ConsoleLogging();
            ServerNode node;
            try
            {
                node = await ServerNode.StartAsync(new ServerNodeOptions
                {
                    Listen = parse.GetValue(listen)!,
                    Coordinator = parse.GetValue(coordinator)!,
                    PingInterval = parse.GetDuration(pingInterval, DefaultPingInterval),
                    AdvertisedAddress = parse.GetValue(advertise),
                    MaxValueBytes = parse.GetValue(maxValue),
                    MaxKeyBytes = parse.GetValue(maxKey),
                    Routes = (parse.GetValue(routes) ?? []).Select(r => r.Split('=')).ToDictionary(p => p[0], p => p[1]),
                    FrameTimeout = parse.GetDuration(frameTimeout, Tandem.Net.RespConnectionHandler.DefaultFrameTimeout),
                    MaxConnections = parse.GetValue(maxConnections),
                    MaxBufferedBytes = parse.GetValue(maxBuffered),
                    BackupTimeout = parse.GetDuration(backupTimeout, defaultBackupTimeout),
                    MaxBacklogBytes = parse.GetValue(maxBacklog),
                    Duplicates = new Tandem.Storage.DuplicateTableOptions
                    {
                        MaxClients = parse.GetValue(maxSessions),
                        MaxBytes = parse.GetValue(maxSessionBytes),
                    },
                    LoggerFactory = logging,
                }, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return Fail($"cannot start the server on {parse.GetValue(listen)}: {e.Message}");
            }
            Console.WriteLine($"tandem server listening on {node.Address}, coordinator {parse.GetValue(coordinator)}");
            await Signals.WaitForShutdownAsync(ct);
            await node.StopAsync();
            return 0;
        });
        return command;
    }

    private static Command Dev()
    {
        var servers = new Option<int>("--servers") { HelpName = "N", Description = "Number of servers.", DefaultValueFactory = _ => 3 };
        CliParsers.Reject(servers, r => r.GetValueOrDefault<int>() is < 1 or > 100, "--servers must be between 1 and 100");
        var port = new Option<int>("--port") { HelpName = "PORT", Description = "First coordinator port; the other members and then the servers take the next ports.", DefaultValueFactory = _ => 7000 };
        CliParsers.Reject(port, r => r.GetValueOrDefault<int>() is < 1 or > 55000, "--port must be between 1 and 55000");
        var coordinators = new Option<int>("--coordinators")
        {
            HelpName = "N",
            Description = $"Members of the coordinator group (1, 3 or 5), on PORT.. PORT+N-1, their Raft traffic on those ports + {DefaultRaftPortOffset}. Their logs live in a temporary directory removed on exit.",
            DefaultValueFactory = _ => 1,
        };
        CliParsers.Reject(coordinators, r => r.GetValueOrDefault<int>() is < 1 or > 9, "--coordinators must be between 1 and 9");

        var command = new Command("dev", "Run a coordinator group and servers on 127.0.0.1 in this process, for trying Tandem out.") { servers, port, coordinators };
        command.SetAction(async (parse, ct) =>
        {
            int count = parse.GetValue(servers), basePort = parse.GetValue(port), members = parse.GetValue(coordinators);
            using ILoggerFactory logging = ConsoleLogging();
            string dataRoot = Directory.CreateTempSubdirectory("tandem-dev-").FullName;
            string peers = string.Join(',', Enumerable.Range(basePort, members).Select(p => $"127.0.0.1:{p.ToString(CultureInfo.InvariantCulture)}"));
            var group = new List<CoordinatorNode>();
            try
            {
                for (int m = 0; m < members; m++)
                {
                    var listen = new IPEndPoint(IPAddress.Loopback, basePort + m);
                    group.Add(await CoordinatorNode.StartAsync(new CoordinatorNodeOptions
                    {
                        Listen = listen,
                        ViewService = new ViewServiceOptions(),
                        Group = GroupOptions(listen, peers, Path.Combine(dataRoot, $"coordinator-{basePort + m}"), DefaultRaftPortOffset, DefaultElectionTimeout),
                        LoggerFactory = logging,
                    }, ct));
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                await Task.WhenAll(group.Select(c => c.StopAsync()));
                Directory.Delete(dataRoot, recursive: true);
                return Fail($"cannot start coordinator {group.Count + 1} on 127.0.0.1:{basePort + group.Count}: {e.Message}");
            }
            group[0].ViewService.ViewChanged += view => Console.WriteLine($"{DateTime.Now:HH:mm:ss.fff} {view}");
            View CurrentView() => group.Select(c => c.ViewService).FirstOrDefault(v => v.IsLeading)?.CurrentView ?? group[0].ViewService.CurrentView;

            var nodes = new List<ServerNode>();
            int exitCode = 0;
            try
            {
                for (int i = 1; i <= count; i++)
                {
                    nodes.Add(await ServerNode.StartAsync(new ServerNodeOptions
                    {
                        Listen = new IPEndPoint(IPAddress.Loopback, basePort + members - 1 + i),
                        Coordinator = peers,
                        LoggerFactory = logging,
                    }, ct));
                    // The first server becomes primary before the others start, so the tour's
                    // `redis-cli -p 7001` reaches the primary; then the first of the rest becomes its backup.
                    if (i == 1) await WaitUntilAsync(() => nodes[0].Replica.IsServingPrimary, ct);
                }
                if (count > 1) await WaitUntilAsync(() => nodes[0].Replica.ViewNumberForPing() == CurrentView().Number && CurrentView().Backup != "", ct);
                PrintDevBanner(peers, basePort + members - 1, count, members);
                await Signals.WaitForShutdownAsync(ct);
                Console.WriteLine("stopping...");
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                exitCode = Fail($"cannot start server {nodes.Count + 1} on 127.0.0.1:{basePort + members + nodes.Count}: {e.Message}");
            }
            finally
            {
                await Task.WhenAll(nodes.Select(n => n.StopAsync()));
                await Task.WhenAll(group.Select(c => c.StopAsync()));
                Directory.Delete(dataRoot, recursive: true);
            }
            return exitCode;
        });
        return command;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken ct)
    {
        while (!condition()) await Task.Delay(20, ct);
    }

    private static void PrintDevBanner(string coordinator, int basePort, int count, int members)
    {
        string first = (basePort + 1).ToString(CultureInfo.InvariantCulture);
        string last = (basePort + count).ToString(CultureInfo.InvariantCulture);
        string flag = coordinator == "127.0.0.1:7000" ? "" : $" --coordinator {coordinator}";
        string who = members == 1 ? $"coordinator on {coordinator}" : $"coordinator group of {members} on {coordinator}";
        Console.WriteLine($"""
            tandem dev: {who}, {count} server(s) on 127.0.0.1:{first}{(count > 1 ? "-" + last : "")}
              tandem status{flag}
              tandem put KEY VALUE{flag}
              tandem get KEY{flag}
              redis-cli -p {first}    (plain RESP on the primary; the others answer READONLY to writes, NOTPRIMARY to reads)
            View changes are printed below. Press Ctrl-C to stop.
            """);
    }

    private static ILoggerFactory ConsoleLogging() => LoggerFactory.Create(builder => builder
        .SetMinimumLevel(LogLevel.Warning)
        .AddSimpleConsole(o => o.SingleLine = true)
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));

    internal static int Fail(string message)
    {
        Console.Error.WriteLine($"tandem: {message}");
        return 1;
    }
}
