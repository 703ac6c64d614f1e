using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;
using Tandem.Coordinator;
using Tandem.Protocol;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>
/// The Redis Sentinel discovery API on the coordinators: the replies' shapes over raw RESP, pub/sub of
/// <c>+switch-master</c>, and unmodified clients in Sentinel mode (StackExchange.Redis, ioredis under node) that find
/// the primary and, after it is killed, the new one by themselves.
/// </summary>
public class SentinelTests
{
    private static readonly TimeSpan Failover = TimeSpan.FromSeconds(45);

    private static async Task<(TestCluster Cluster, TestServer Primary, TestServer Backup)> StartGroupAsync(int servers = 2)
    {
        TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Coordinators = 3 });
        try
        {
            (TestServer primary, TestServer backup) = await cluster.StartPrimaryAndBackupAsync(Patience);
            for (int i = 2; i < servers; i++) await cluster.StartServerAsync();
            await cluster.WaitForSyncedPairAsync(Patience);
            // The backup holds the view's state once it installed the primary's snapshot (its pings say so).
            await Wait.UntilAsync(() => cluster.Coordinator.ViewService.GetStatus().Servers.Any(s => s.Address == backup.Address && s.HeldView == cluster.View.Number),
                Patience, "the backup to hold the view's state");
            // Every member answers from the view it applied: wait until all have this one.
            await Wait.UntilAsync(() => cluster.Coordinators.All(c => c.Node?.ViewService.CurrentView == cluster.View && c.Node.ViewService.PrimaryAcked),
                Patience, "every member to apply the view and its ack");
            return (cluster, primary, backup);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private static Dictionary<string, string> Fields(RespValue map)
    {
        Assert.Equal(RespKind.Array, map.Kind);
        RespValue[] items = map.Items!;
        Assert.True(items.Length % 2 == 0, $"not field/value pairs: {map}");
        Assert.All(items, i => Assert.Equal(RespKind.BulkString, i.Kind));
        var fields = new Dictionary<string, string>();
        for (int i = 0; i < items.Length; i += 2) fields.Add(items[i].Text, items[i + 1].Text);
        return fields;
    }

    private static (string Host, string Port) Split(string address) => View.SplitAddress(address);

    [Fact]
    public async Task SentinelCommands_OnEveryMember_AnswerInSentinelShapes()
    {
        (TestCluster cluster, TestServer primary, TestServer backup) = await StartGroupAsync();
        await using (cluster)
        {
            foreach (TestCoordinator member in cluster.Coordinators)
            {
                string at = member.Address;
                string[] others = cluster.Coordinators.Where(c => c != member).Select(c => c.Address).Order().ToArray();

                RespValue addr = await SendAsync(at, "SENTINEL", "get-master-addr-by-name", "tandem");
                Assert.Equal([Split(primary.Address).Host, Split(primary.Address).Port], addr.Items!.Select(i => i.Text));
                Assert.Equal(RespKind.BulkString, addr.Items![1].Kind); // Redis replies the port as a string
                RespValue unknown = await SendAsync(at, "SENTINEL", "get-master-addr-by-name", "nope");
                Assert.Equal(RespKind.Array, unknown.Kind);
                Assert.True(unknown.IsNull);

                RespValue masters = await SendAsync(at, "SENTINEL", "masters");
                Dictionary<string, string> master = Fields(Assert.Single(masters.Items!));
                Dictionary<string, string> one = Fields(await SendAsync(at, "SENTINEL", "master", "tandem"));
                Assert.Equal(master.Keys, one.Keys);
                foreach (string field in (string[])["name", "ip", "port", "runid", "flags", "config-epoch", "num-slaves", "num-other-sentinels", "quorum"])
                    Assert.Equal(master[field], one[field]);
                Assert.Equal("tandem", master["name"]);
                Assert.Equal(Split(primary.Address).Host, master["ip"]);
                Assert.Equal(Split(primary.Address).Port, master["port"]);
                Assert.Equal("master", master["flags"]);
                Assert.Equal("master", master["role-reported"]);
                Assert.Equal("1", master["num-slaves"]);
                Assert.Equal("2", master["num-other-sentinels"]);
                Assert.Equal("2", master["quorum"]);
                Assert.Equal(cluster.View.Number.ToString(), master["config-epoch"]);
                Assert.Matches("^[0-9a-f]{40}$", master["runid"]);

                foreach (string sub in (string[])["replicas", "slaves"])
                {
                    Dictionary<string, string> replica = Fields(Assert.Single((await SendAsync(at, "SENTINEL", sub, "tandem")).Items!));
                    Assert.Equal(backup.Address, replica["name"]);
                    Assert.Equal(Split(backup.Address).Host, replica["ip"]);
                    Assert.Equal(Split(backup.Address).Port, replica["port"]);
                    Assert.Equal("slave", replica["flags"]);
                    Assert.Equal("slave", replica["role-reported"]);
                    Assert.Equal("ok", replica["master-link-status"]);
                    Assert.Equal(Split(primary.Address).Host, replica["master-host"]);
                    Assert.Equal(Split(primary.Address).Port, replica["master-port"]);
                }

                RespValue sentinels = await SendAsync(at, "SENTINEL", "sentinels", "tandem");
                Dictionary<string, string>[] peers = sentinels.Items!.Select(Fields).ToArray();
                Assert.Equal(others, peers.Select(p => $"{p["ip"]}:{p["port"]}").Order());
                Assert.All(peers, p => Assert.Equal("sentinel", p["flags"]));
                Assert.All(peers, p => Assert.Equal(p["name"], p["runid"]));

                RespValue myId = await SendAsync(at, "SENTINEL", "myid");
                Assert.Matches("^[0-9a-f]{40}$", myId.Text);
                Assert.DoesNotContain(myId.Text, peers.Select(p => p["runid"]));

                RespValue down = await SendAsync(at, "SENTINEL", "is-master-down-by-addr", Split(primary.Address).Host, Split(primary.Address).Port, "0", "*");
                Assert.Equal("[:0, \"*\", :0]", down.ToString());

                Assert.Equal("ERR No such master with that name", (await SendAsync(at, "SENTINEL", "master", "nope")).Text);
                Assert.Equal("ERR No such master with that name", (await SendAsync(at, "SENTINEL", "replicas", "nope")).Text);
                Assert.Equal("ERR No such master with that name", (await SendAsync(at, "SENTINEL", "sentinels", "nope")).Text);
                Assert.Equal("ERR unknown subcommand 'fly'. Try SENTINEL HELP.", (await SendAsync(at, "SENTINEL", "fly")).Text);
                Assert.Equal("ERR wrong number of arguments for 'sentinel|master' command", (await SendAsync(at, "SENTINEL", "master")).Text);
                Assert.Equal("ERR wrong number of arguments for 'sentinel' command", (await SendAsync(at, "SENTINEL")).Text);

                Assert.Equal("[\"sentinel\", [\"tandem\"]]", (await SendAsync(at, "ROLE")).ToString());
                Assert.Equal("+PONG", (await SendAsync(at, "PING")).ToString());
                string info = (await SendAsync(at, "INFO")).Text;
                Assert.Contains("redis_mode:sentinel\r\n", info);
                Assert.Contains($"run_id:{myId.Text}\r\n", info);
                Assert.Contains("# Sentinel\r\nsentinel_masters:1\r\n", info);
                Assert.Contains($"master0:name=tandem,status=ok,address={primary.Address},slaves=1,sentinels=3\r\n", info);
                string section = (await SendAsync(at, "INFO", "sentinel")).Text;
                Assert.StartsWith("# Sentinel\r\n", section);
                Assert.DoesNotContain("# Server", section);
            }
        }
    }

    [Fact]
    public async Task ServiceName_IsTheMasterNameAnswered()
    {
        await using CoordinatorNode node = await CoordinatorNode.StartAsync(new CoordinatorNodeOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            ServiceName = "orders",
        }, TestContext.Current.CancellationToken);
        Assert.True((await SendAsync(node.Address, "SENTINEL", "get-master-addr-by-name", "tandem")).IsNull);
        Assert.Equal("ERR No such master with that name", (await SendAsync(node.Address, "SENTINEL", "master", "tandem")).Text);
        Dictionary<string, string> master = Fields(await SendAsync(node.Address, "SENTINEL", "master", "orders"));
        Assert.Equal("orders", master["name"]);
        Assert.Equal("s_down,o_down,master", master["flags"]); // no server has pinged: no primary yet
        Assert.Equal("[\"sentinel\", [\"orders\"]]", (await SendAsync(node.Address, "ROLE")).ToString());
        Assert.Throws<ArgumentException>(() => new CoordinatorNodeOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0), ServiceName = "two words" });
    }

    [Fact]
    public async Task PubSub_SwitchMasterIsPublishedByEveryMember_WhenThePrimaryIsKilled()
    {
        (TestCluster cluster, TestServer primary, TestServer backup) = await StartGroupAsync(servers: 3);
        await using (cluster)
        {
            var subscribers = new List<RawConnection>();
            foreach (TestCoordinator member in cluster.Coordinators)
            {
                RawConnection s = await RawConnection.ConnectAsync(member.Address);
                subscribers.Add(s);
                await s.SendAsync("SUBSCRIBE", "+switch-master", "other");
                Assert.Equal("[\"subscribe\", \"+switch-master\", :1]", (await s.ReadAsync()).ToString());
                Assert.Equal("[\"subscribe\", \"other\", :2]", (await s.ReadAsync()).ToString());
                await s.SendAsync("PSUBSCRIBE", "+switch-*");
                Assert.Equal("[\"psubscribe\", \"+switch-*\", :3]", (await s.ReadAsync()).ToString());
                await s.SendAsync("PING");
                Assert.Equal("[\"pong\", \"\"]", (await s.ReadAsync()).ToString());
                await s.SendAsync("SENTINEL", "masters");
                Assert.StartsWith("-ERR Can't execute 'sentinel': only (P|S)SUBSCRIBE", (await s.ReadAsync()).ToString());
            }

            await cluster.KillAsync(primary);
            (string oldHost, string oldPort) = Split(primary.Address);
            (string newHost, string newPort) = Split(backup.Address);
            string expected = $"tandem {oldHost} {oldPort} {newHost} {newPort}";
            foreach (RawConnection s in subscribers)
            {
                Assert.Equal($"[\"message\", \"+switch-master\", \"{expected}\"]", (await s.ReadAsync(Failover)).ToString());
                Assert.Equal($"[\"pmessage\", \"+switch-*\", \"+switch-master\", \"{expected}\"]", (await s.ReadAsync()).ToString());
                await s.SendAsync("UNSUBSCRIBE");
                Assert.Equal("[\"unsubscribe\", \"+switch-master\", :2]", (await s.ReadAsync()).ToString());
                Assert.Equal("[\"unsubscribe\", \"other\", :1]", (await s.ReadAsync()).ToString());
                await s.SendAsync("PUNSUBSCRIBE");
                Assert.Equal("[\"punsubscribe\", \"+switch-*\", :0]", (await s.ReadAsync()).ToString());
                await s.SendAsync("PUNSUBSCRIBE");
                Assert.Equal("[\"punsubscribe\", (nil), :0]", (await s.ReadAsync()).ToString());
                await s.SendAsync("PING"); // no longer subscribed: the plain reply
                Assert.Equal("+PONG", (await s.ReadAsync()).ToString());
                await s.DisposeAsync();
            }
            Assert.Equal([newHost, newPort], (await SendAsync(cluster.CoordinatorAddress.Split(',')[0], "SENTINEL", "get-master-addr-by-name", "tandem")).Items!.Select(i => i.Text));
        }
    }

    [Fact]
    public async Task PubSub_PushesAndPipelinedReplies_NeverInterleave()
    {
        await using CoordinatorNode node = await CoordinatorNode.StartAsync(new CoordinatorNodeOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, TestContext.Current.CancellationToken);
        await using RawConnection s = await RawConnection.ConnectAsync(node.Address);
        await s.SendAsync("SUBSCRIBE", "noise");
        Assert.Equal("[\"subscribe\", \"noise\", :1]", (await s.ReadAsync()).ToString());

        const int Pings = 20_000, Messages = 20_000;
        string payload = new('m', 300);
        Task publisher = Task.Run(() =>
        {
            for (int i = 0; i < Messages; i++) Assert.Equal(1, node.Events.Publish("noise", $"{i} {payload}"));
        }, TestContext.Current.CancellationToken);
        // Many pipelined PINGs, each with its own text, while messages are published from another thread.
        var frame = new ArrayBufferWriter<byte>();
        for (int i = 0; i < Pings; i++) RespWriter.WriteCommand(frame, "PING", $"p{i}");
        await s.SendRawAsync(frame.WrittenMemory);

        int pongs = 0, messages = 0;
        while (pongs < Pings || messages < Messages)
        {
            RespValue v = await s.ReadAsync();
            RespValue[] items = v.Items ?? throw new Xunit.Sdk.XunitException($"not a push or a pong: {v}");
            if (items[0].Text == "pong") Assert.Equal($"p{pongs++}", items[1].Text);
            else
            {
                Assert.Equal("message", items[0].Text);
                Assert.Equal($"{messages++} {payload}", items[2].Text);
            }
        }
        await publisher;
        Assert.Equal(1, node.Events.SubscriberCount("noise"));
        await s.DisposeAsync();
        await Wait.UntilAsync(() => node.Events.SubscriberCount("noise") == 0, Patience, "the closed connection to leave its channel");
    }

    [Fact]
    public async Task StackExchangeRedis_SentinelMode_FindsThePrimary_AndTheNewOneAfterTheKill()
    {
        (TestCluster cluster, TestServer primary, TestServer backup) = await StartGroupAsync(servers: 3);
        await using (cluster)
        {
            await using ConnectionMultiplexer redis = await ConnectSentinelModeAsync(cluster.CoordinatorAddress);
            IDatabase db = redis.GetDatabase();
            Assert.True(await db.StringSetAsync("se-sentinel", "before"));
            Assert.Equal("before", (string?)await db.StringGetAsync("se-sentinel"));
            Assert.Equal(primary.EndPoint, await PrimaryOfAsync(redis));

            await cluster.KillAsync(primary);
            await UntilWritableThroughAsync(redis, backup.EndPoint, "se-sentinel-after");
            Assert.Equal("before", await ReadAfterFailoverAsync(db, "se-sentinel"));
            Assert.Equal("se-sentinel-after", await ReadAfterFailoverAsync(db, "se-sentinel-after"));
        }
    }

    [Fact]
    public async Task StackExchangeRedis_SentinelMode_FollowsASigkilledPrimaryProcess()
    {
        int[] ports = ProcessTests.FreePorts(2);
        using var group = CoordinatorSet.Allocate(1);
        var processes = new List<TandemProcess>();
        try
        {
            processes.Add(group.Start(0));
            foreach (int port in ports)
                processes.Add(TandemProcess.Start("server", "--listen", $"127.0.0.1:{port}", "--coordinator", group.Peers));
            await Wait.UntilAsync(() => MasterAddress(group.Peers) is not null && ReplicaCount(group.Peers) == 1, TimeSpan.FromSeconds(60), "a primary and a backup");

            await using ConnectionMultiplexer redis = await ConnectSentinelModeAsync(group.Peers);
            IDatabase db = redis.GetDatabase();
            await UntilWritableThroughAsync(redis, null, "se-process");
            // Only a backup of an acknowledged view can take over (until then the primary is the only copy, and
            // its death loses the data rather than failing over): wait for the ack before the kill.
            await Wait.UntilAsync(() => PairAcknowledged(group.Peers), TimeSpan.FromSeconds(60), "the primary to acknowledge its view with the backup");
            EndPoint first = await PrimaryOfAsync(redis);
            processes.Single(p => p.Arguments.Contains($"127.0.0.1:{((IPEndPoint)first).Port} ")).Kill(); // SIGKILL

            IPEndPoint other = new(IPAddress.Loopback, ports.Single(p => p != ((IPEndPoint)first).Port));
            await UntilWritableThroughAsync(redis, other, "se-process-after");
            Assert.Equal("se-process", (string?)await db.StringGetAsync("se-process"));
        }
        finally
        {
            foreach (TandemProcess p in processes) p.Kill();
        }
    }

    [Fact]
    public async Task IoRedis_SentinelMode_FindsThePrimary_AndTheNewOneAfterTheKill()
    {
        string dir = IoRedisDirectory();
        (TestCluster cluster, TestServer primary, TestServer backup) = await StartGroupAsync(servers: 3);
        await using (cluster)
        {
            var info = new ProcessStartInfo("node")
            {
                WorkingDirectory = dir,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            info.ArgumentList.Add("sentinel.js");
            info.ArgumentList.Add(cluster.CoordinatorAddress);
            info.ArgumentList.Add("tandem");
            using Process node = Process.Start(info) ?? throw new InvalidOperationException("could not start node");
            var stderr = new System.Text.StringBuilder();
            node.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
            node.BeginErrorReadLine();
            try
            {
                string? first = await ReadLineAsync(node, TimeSpan.FromSeconds(60), stderr);
                Assert.Equal($"primary {primary.EndPoint.Port}", first);

                await cluster.KillAsync(primary);
                await node.StandardInput.WriteLineAsync("killed");
                await node.StandardInput.FlushAsync(TestContext.Current.CancellationToken);

                string? second = await ReadLineAsync(node, TimeSpan.FromSeconds(90), stderr);
                Assert.Equal($"switched {backup.EndPoint.Port}", second);
                Assert.True(node.WaitForExit(30_000), "node did not exit");
                Assert.True(node.ExitCode == 0, $"node exited {node.ExitCode}: {stderr}");
            }
            finally
            {
                if (!node.HasExited) node.Kill(entireProcessTree: true);
            }
        }
    }

    private static async Task<string?> ReadLineAsync(Process node, TimeSpan limit, System.Text.StringBuilder stderr)
    {
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            string? line = await node.StandardOutput.ReadLineAsync(timeout.Token);
            if (line is null)
            {
                node.WaitForExit(5_000);
                lock (stderr) throw new Xunit.Sdk.XunitException($"node ended early: {stderr}");
            }
            return line;
        }
        catch (OperationCanceledException)
        {
            lock (stderr) throw new Xunit.Sdk.XunitException($"node said nothing within {limit.TotalSeconds} s: {stderr}");
        }
    }

    /// <summary>tests/clients/ioredis, with its packages installed (<c>npm ci</c> when .ci/run has not done it).</summary>
    private static string IoRedisDirectory()
    {
        DirectoryInfo? root = new(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Tandem.slnx"))) root = root.Parent;
        Assert.True(root is not null, "the repository root (Tandem.slnx) is not above the test assembly");
        string dir = Path.Combine(root.FullName, "tests", "clients", "ioredis");
        if (!Directory.Exists(Path.Combine(dir, "node_modules", "ioredis")))
        {
            var info = new ProcessStartInfo("npm") { WorkingDirectory = dir, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in (string[])["ci", "--no-audit", "--no-fund"]) info.ArgumentList.Add(a);
            using Process npm = Process.Start(info) ?? throw new InvalidOperationException("could not start npm (install Node.js: apt-get install nodejs npm)");
            Task<string> err = npm.StandardError.ReadToEndAsync();
            _ = npm.StandardOutput.ReadToEndAsync();
            Assert.True(npm.WaitForExit(180_000) && npm.ExitCode == 0, $"npm ci failed in {dir}: {err.Result}");
        }
        return dir;
    }

    private static async Task<ConnectionMultiplexer> ConnectSentinelModeAsync(string coordinators)
    {
        var config = new ConfigurationOptions
        {
            ServiceName = "tandem",
            AbortOnConnectFail = false,
            ConnectTimeout = 10_000,
            SyncTimeout = 5_000,
            AsyncTimeout = 5_000,
        };
        foreach (string c in coordinators.Split(',')) config.EndPoints.Add(c);
        return await ConnectionMultiplexer.ConnectAsync(config);
    }

    /// <summary>The endpoint the multiplexer writes to (its connected primary).</summary>
    private static async Task<EndPoint> PrimaryOfAsync(ConnectionMultiplexer redis)
    {
        await Task.Yield();
        IServer server = redis.GetServers().Single(s => s.IsConnected && !s.IsReplica);
        return server.EndPoint;
    }

    /// <summary>Writes <paramref name="key"/> until a write succeeds through <paramref name="expected"/> (any primary when null).</summary>
    /// <summary>
    /// A GET right after a failover: the new primary names its own new backup in the same view, and a read it
    /// cannot confirm while that link starts gets TRYAGAIN (retryable; StackExchange.Redis does not retry it).
    /// </summary>
    private static async Task<string?> ReadAfterFailoverAsync(IDatabase db, string key)
    {
        DateTime deadline = DateTime.UtcNow + Failover;
        while (true)
        {
            try
            {
                return await db.StringGetAsync(key);
            }
            catch (RedisServerException e) when (e.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    private static async Task UntilWritableThroughAsync(ConnectionMultiplexer redis, EndPoint? expected, string key)
    {
        IDatabase db = redis.GetDatabase();
        DateTime deadline = DateTime.UtcNow + Failover;
        string last = "";
        while (true)
        {
            try
            {
                IServer[] primaries = redis.GetServers().Where(s => s.IsConnected && !s.IsReplica).ToArray();
                if (primaries.Length == 1 && (expected is null || primaries[0].EndPoint.Equals(expected)) && await db.StringSetAsync(key, key))
                    return;
                last = $"servers seen: {string.Join(", ", redis.GetServers().Select(p => $"{p.EndPoint} {p.ServerType} connected={p.IsConnected} replica={p.IsReplica}"))}";
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                last = e.Message;
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no write through {expected?.ToString() ?? "a primary"} within {Failover.TotalSeconds} s; last: {last}");
            await Task.Delay(100);
        }
    }

    private static string? MasterAddress(string coordinator)
    {
        try
        {
            RespValue reply = SendAsync(coordinator, "SENTINEL", "get-master-addr-by-name", "tandem").GetAwaiter().GetResult();
            return reply.IsNull ? null : $"{reply.Items![0].Text}:{reply.Items[1].Text}";
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>True when the coordinator's view has a backup and its primary has acknowledged it (<c>VS.VIEW</c>).</summary>
    private static bool PairAcknowledged(string coordinator)
    {
        try
        {
            RespValue view = SendAsync(coordinator, "VS.VIEW").GetAwaiter().GetResult();
            return view.Items is { Length: >= 4 } v && v[2].Text != "" && v[3].Integer == 1;
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    private static int ReplicaCount(string coordinator)
    {
        try
        {
            RespValue reply = SendAsync(coordinator, "SENTINEL", "replicas", "tandem").GetAwaiter().GetResult();
            return reply.Items?.Length ?? 0;
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            return 0;
        }
    }

    /// <summary>A plain socket that reads every frame the node sends, replies and pushes alike.</summary>
    private sealed class RawConnection : IAsyncDisposable
    {
        private readonly TcpClient _tcp;
        private readonly NetworkStream _stream;
        private byte[] _buffer = new byte[256 * 1024];
        private int _start, _end;

        private RawConnection(TcpClient tcp)
        {
            _tcp = tcp;
            _stream = tcp.GetStream();
        }

        public static async Task<RawConnection> ConnectAsync(string address)
        {
            var tcp = new TcpClient { NoDelay = true };
            await tcp.ConnectAsync((IPEndPoint)Tandem.Net.RespClientConnection.ParseEndPoint(address), Timeout());
            return new RawConnection(tcp);
        }

        public async Task SendAsync(params string[] args)
        {
            var frame = new ArrayBufferWriter<byte>();
            RespWriter.WriteCommand(frame, args);
            await SendRawAsync(frame.WrittenMemory);
        }

        public async Task SendRawAsync(ReadOnlyMemory<byte> bytes) => await _stream.WriteAsync(bytes, Timeout());

        /// <summary>The next frame; fails after <paramref name="limit"/> (default <see cref="Patience"/>).</summary>
        public async Task<RespValue> ReadAsync(TimeSpan? limit = null)
        {
            using var timeout = new CancellationTokenSource(limit ?? Patience);
            while (true)
            {
                var sequence = new ReadOnlySequence<byte>(_buffer, _start, _end - _start);
                if (RespReader.TryReadValue(ref sequence, RespLimits.Default, out RespValue? value))
                {
                    _start = _end - (int)sequence.Length;
                    return value!;
                }
                if (_start > 0)
                {
                    Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }
                if (_end == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2);
                int n = await _stream.ReadAsync(_buffer.AsMemory(_end), timeout.Token);
                if (n == 0) throw new IOException("the node closed the connection");
                _end += n;
            }
        }

        public ValueTask DisposeAsync()
        {
            _tcp.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
