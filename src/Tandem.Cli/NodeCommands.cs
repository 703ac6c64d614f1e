using System.CommandLine;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Tandem.Coordinator;
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
        deadPings.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) r.AddError("--dead-pings must be at least 1"); });

        Option<int> maxConnections = MaxConnections("servers and clients");
        Option<long> maxBuffered = MaxBufferedBytes();
        Option<TimeSpan?> frameTimeout = CliParsers.Duration("--frame-timeout", Tandem.Net.RespConnectionHandler.DefaultFrameTimeout,
            "Close a client whose command stays incomplete this long.");

        var command = new Command("coordinator", "Run the coordinator (view service).") { listen, pingInterval, deadPings, maxConnections, maxBuffered, frameTimeout };
        command.SetAction(async (parse, ct) =>
        {
            using ILoggerFactory logging = ConsoleLogging();
            CoordinatorNode node;
            try
            {
                node = await CoordinatorNode.StartAsync(new CoordinatorNodeOptions
                {
                    Listen = parse.GetValue(listen)!,
                    ViewService = new ViewServiceOptions { PingInterval = parse.GetDuration(pingInterval, DefaultPingInterval), DeadPings = parse.GetValue(deadPings) },
                    MaxConnections = parse.GetValue(maxConnections),
                    MaxBufferedBytes = parse.GetValue(maxBuffered),
                    FrameTimeout = parse.GetDuration(frameTimeout, Tandem.Net.RespConnectionHandler.DefaultFrameTimeout),
                    LoggerFactory = logging,
                }, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return Fail($"cannot start the coordinator on {parse.GetValue(listen)}: {e.Message}");
            }
            Console.WriteLine($"tandem coordinator listening on {node.Address}");
            await Signals.WaitForShutdownAsync(ct);
            await node.StopAsync();
            return 0;
        });
        return command;
    }

    private static Option<long> MaxBufferedBytes()
    {
        var option = new Option<long>("--max-buffered-bytes")
        {
            HelpName = "N",
            Description = "Memory budget of all connections together: most bytes of incomplete commands held at once (beyond 64 KiB each); a connection that would pass it is cut.",
            DefaultValueFactory = _ => Tandem.Net.RespConnectionHandler.DefaultMaxBufferedBytes,
        };
        option.Validators.Add(r => { if (r.GetValueOrDefault<long>() < 1) r.AddError("--max-buffered-bytes must be at least 1"); });
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
        option.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) r.AddError("--max-connections must be at least 1"); });
        return option;
    }

    private static Command Server()
    {
        Option<IPEndPoint> listen = CliParsers.Listen("Address to listen on; it is also this server's identity in views.");
        Option<string> coordinator = CliParsers.Remote("--coordinator", "The coordinator to ping.");
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
        maxValue.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 512 * 1024 * 1024) r.AddError("--max-value-bytes must be between 1 and 536870912"); });
        var maxKey = new Option<int>("--max-key-bytes") { HelpName = "N", Description = "Largest key accepted.", DefaultValueFactory = _ => 64 * 1024 };
        maxKey.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 512 * 1024 * 1024) r.AddError("--max-key-bytes must be between 1 and 536870912"); });

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
        maxSessions.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) r.AddError("--max-sessions must be at least 1"); });
        var maxSessionBytes = new Option<long>("--max-session-bytes")
        {
            HelpName = "N",
            Description = "Most bytes of saved replies the duplicate table keeps (a saved PUTHASH reply holds a whole value).",
            DefaultValueFactory = _ => new Tandem.Storage.DuplicateTableOptions().MaxBytes,
        };
        maxSessionBytes.Validators.Add(r => { if (r.GetValueOrDefault<long>() < 1) r.AddError("--max-session-bytes must be at least 1"); });

        TimeSpan defaultBackupTimeout = TimeSpan.FromMilliseconds(1500);
        Option<TimeSpan?> backupTimeout = CliParsers.Duration("--backup-timeout", defaultBackupTimeout,
            "A primary waits this long for any answer of its backup; a backup failing this long is reported to the coordinator and replaced.");
        var maxBacklog = new Option<long>("--max-backlog-bytes")
        {
            HelpName = "N",
            Description = "Most bytes of writes a primary holds for a backup that is behind; past it writes get TRYAGAIN (not applied).",
            DefaultValueFactory = _ => 256L * 1024 * 1024,
        };
        maxBacklog.Validators.Add(r => { if (r.GetValueOrDefault<long>() < 1) r.AddError("--max-backlog-bytes must be at least 1"); });

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
        servers.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 100) r.AddError("--servers must be between 1 and 100"); });
        var port = new Option<int>("--port") { HelpName = "PORT", Description = "Coordinator port; servers take the next ports.", DefaultValueFactory = _ => 7000 };
        port.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 65000) r.AddError("--port must be between 1 and 65000"); });

        var command = new Command("dev", "Run a coordinator and servers on 127.0.0.1 in this process, for trying Tandem out.") { servers, port };
        command.SetAction(async (parse, ct) =>
        {
            int count = parse.GetValue(servers), basePort = parse.GetValue(port);
            using ILoggerFactory logging = ConsoleLogging();
            CoordinatorNode coordinator;
            try
            {
                coordinator = await CoordinatorNode.StartAsync(new CoordinatorNodeOptions
                {
                    Listen = new IPEndPoint(IPAddress.Loopback, basePort),
                    ViewService = new ViewServiceOptions(),
                    LoggerFactory = logging,
                }, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return Fail($"cannot start the coordinator on 127.0.0.1:{basePort}: {e.Message}");
            }
            coordinator.ViewService.ViewChanged += view => Console.WriteLine($"{DateTime.Now:HH:mm:ss.fff} {view}");

            var nodes = new List<ServerNode>();
            int exitCode = 0;
            try
            {
                for (int i = 1; i <= count; i++)
                {
                    nodes.Add(await ServerNode.StartAsync(new ServerNodeOptions
                    {
                        Listen = new IPEndPoint(IPAddress.Loopback, basePort + i),
                        Coordinator = coordinator.Address,
                        LoggerFactory = logging,
                    }, ct));
                    // The first server becomes primary before the others start, so the tour's
                    // `redis-cli -p 7001` reaches the primary; then the first of the rest becomes its backup.
                    if (i == 1) await WaitUntilAsync(() => nodes[0].Replica.IsServingPrimary, ct);
                }
                if (count > 1) await WaitUntilAsync(() => nodes[0].Replica.ViewNumberForPing() == coordinator.ViewService.CurrentView.Number
                                                          && coordinator.ViewService.CurrentView.Backup != "", ct);
                PrintDevBanner(coordinator.Address, basePort, count);
                await Signals.WaitForShutdownAsync(ct);
                Console.WriteLine("stopping...");
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                exitCode = Fail($"cannot start server {nodes.Count + 1} on 127.0.0.1:{basePort + nodes.Count + 1}: {e.Message}");
            }
            finally
            {
                await Task.WhenAll(nodes.Select(n => n.StopAsync()));
                await coordinator.StopAsync();
            }
            return exitCode;
        });
        return command;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken ct)
    {
        while (!condition()) await Task.Delay(20, ct);
    }

    private static void PrintDevBanner(string coordinator, int basePort, int count)
    {
        string first = (basePort + 1).ToString(CultureInfo.InvariantCulture);
        string last = (basePort + count).ToString(CultureInfo.InvariantCulture);
        string flag = coordinator == "127.0.0.1:7000" ? "" : $" --coordinator {coordinator}";
        Console.WriteLine($"""
            tandem dev: coordinator on {coordinator}, {count} server(s) on 127.0.0.1:{first}{(count > 1 ? "-" + last : "")}
              tandem status{flag}
              tandem put KEY VALUE{flag}
              tandem get KEY{flag}
              redis-cli -p {first}    (plain RESP on the primary; the others answer NOTPRIMARY)
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
