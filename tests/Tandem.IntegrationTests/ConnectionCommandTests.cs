using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using StackExchange.Redis;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>
/// The connection and server commands over real sockets, byte for byte against what Redis 7 sends, and with real
/// clients in RESP2 and RESP3 (redis-cli, StackExchange.Redis, redis-py).
/// </summary>
public class ConnectionCommandTests
{
    private static async Task<(TestCluster Cluster, TestServer Primary, TestServer Backup)> StartPairAsync()
    {
        TestCluster cluster = await TestCluster.StartAsync();
        (TestServer primary, TestServer backup) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await cluster.WaitForSyncedPairAsync(Patience);
        return (cluster, primary, backup);
    }

    private static string Hello(int proto, long id, string role = "master") =>
        (proto == 3 ? "%7\r\n" : "*14\r\n") + "$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n$5\r\nproto\r\n" +
        $":{proto}\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n${role.Length}\r\n{role}\r\n$7\r\nmodules\r\n*0\r\n";

    [Fact]
    public async Task Hello_SwitchesTheConnectionToResp3_WithRedisRepliesAndErrors()
    {
        (TestCluster cluster, TestServer primary, TestServer backup) = await StartPairAsync();
        await using (cluster)
        {
            await using var c = await Raw.ConnectAsync(primary.EndPoint);
            long id = long.Parse((await c.SendAsync("CLIENT", "ID"))[1..^2]);
            Assert.Equal(Hello(2, id), await c.SendAsync("HELLO"));
            Assert.Equal("$-1\r\n", await c.SendAsync("GET", "nokey"));
            Assert.Equal(Hello(3, id), await c.SendAsync("HELLO", "3"));
            Assert.Equal("_\r\n", await c.SendAsync("GET", "nokey"));
            Assert.Equal("+OK\r\n", await c.SendAsync("SET", "k", "v"));
            Assert.Equal("$1\r\nv\r\n", await c.SendAsync("GET", "k"));
            Assert.Equal("%1\r\n$7\r\ntimeout\r\n$1\r\n0\r\n", await c.SendAsync("CONFIG", "GET", "timeout"));
            Assert.Equal(Hello(2, id), await c.SendAsync("HELLO", "2"));
            Assert.Equal("$-1\r\n", await c.SendAsync("GET", "nokey"));
            Assert.Equal("*2\r\n$7\r\ntimeout\r\n$1\r\n0\r\n", await c.SendAsync("CONFIG", "GET", "timeout"));

            Assert.Equal("-NOPROTO unsupported protocol version\r\n", await c.SendAsync("HELLO", "4"));
            Assert.Equal("-NOPROTO unsupported protocol version\r\n", await c.SendAsync("HELLO", "1"));
            Assert.Equal("-ERR Protocol version is not an integer or out of range\r\n", await c.SendAsync("HELLO", "x"));
            Assert.Equal("-WRONGPASS invalid username-password pair or user is disabled.\r\n", await c.SendAsync("HELLO", "3", "AUTH", "bob", "x"));
            Assert.Equal("-ERR Syntax error in HELLO option 'b'\r\n", await c.SendAsync("HELLO", "3", "SETNAME", "a", "b"));
            Assert.Equal("-ERR Syntax error in HELLO option 'AUTH'\r\n", await c.SendAsync("HELLO", "3", "AUTH", "a"));
            Assert.Equal("$-1\r\n", await c.SendAsync("GET", "nokey")); // a refused HELLO changed nothing
            Assert.Equal(Hello(3, id), await c.SendAsync("HELLO", "3", "AUTH", "default", "anything", "SETNAME", "me"));
            Assert.Equal("$2\r\nme\r\n", await c.SendAsync("CLIENT", "GETNAME"));
            Assert.Equal("-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
                await c.SendAsync("AUTH", "pw"));
            Assert.Equal("+OK\r\n", await c.SendAsync("AUTH", "default", "pw"));

            // Pipelined in one write: each reply is in the protocol of its moment, HELLO's own in the new one.
            await using var p = await Raw.ConnectAsync(primary.EndPoint);
            long pid = long.Parse((await p.SendAsync("CLIENT", "ID"))[1..^2]);
            string replies = await p.SendManyAsync(3, ["GET", "nokey"], ["HELLO", "3"], ["GET", "nokey"]);
            Assert.Equal("$-1\r\n" + Hello(3, pid) + "_\r\n", replies);

            // The backup answers HELLO too, as a replica.
            await using var b = await Raw.ConnectAsync(backup.EndPoint);
            long bid = long.Parse((await b.SendAsync("CLIENT", "ID"))[1..^2]);
            Assert.Equal(Hello(3, bid, "replica"), await b.SendAsync("HELLO", "3"));
        }
    }

    [Fact]
    public async Task Client_Subcommands_AnswerInRedisFormats()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            await using var c = await Raw.ConnectAsync(primary.EndPoint);
            long id = long.Parse((await c.SendAsync("CLIENT", "ID"))[1..^2]);
            Assert.Equal("$-1\r\n", await c.SendAsync("CLIENT", "GETNAME"));
            Assert.Equal("+OK\r\n", await c.SendAsync("CLIENT", "SETNAME", "worker-1"));
            Assert.Equal("$8\r\nworker-1\r\n", await c.SendAsync("CLIENT", "GETNAME"));
            Assert.Equal("-ERR Client names cannot contain spaces, newlines or special characters.\r\n", await c.SendAsync("CLIENT", "SETNAME", "a b"));
            Assert.Equal("-ERR wrong number of arguments for 'client|setname' command\r\n", await c.SendAsync("CLIENT", "SETNAME"));
            Assert.Equal("-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n", await c.SendAsync("CLIENT", "FOO"));
            Assert.Equal("+OK\r\n", await c.SendAsync("CLIENT", "NO-EVICT", "on"));
            Assert.Equal("-ERR syntax error\r\n", await c.SendAsync("CLIENT", "NO-EVICT", "x"));
            Assert.Equal("+OK\r\n", await c.SendAsync("CLIENT", "REPLY", "ON"));
            Assert.Equal("-ERR syntax error\r\n", await c.SendAsync("CLIENT", "REPLY", "x"));
            Assert.Equal("+OK\r\n", await c.SendAsync("CLIENT", "SETINFO", "LIB-NAME", "tests"));
            Assert.Equal("-ERR Unrecognized option 'foo'\r\n", await c.SendAsync("CLIENT", "SETINFO", "foo", "x"));

            string line = $@"id={id} addr=127\.0\.0\.1:\d+ laddr=127\.0\.0\.1:{primary.EndPoint.Port} fd=\d+ name=worker-1 age=\d+ idle=\d+ flags=e db=0 " +
                          @"sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r " +
                          @"cmd=client\|info user=default redir=-1 resp=2 lib-name=tests lib-ver=\n";
            string info = await c.SendAsync("CLIENT", "INFO");
            Assert.Matches($@"^\$\d+\r\n{line}\r\n$", info);
            Assert.Equal(info.Length - info.IndexOf('\n') - 3, int.Parse(info[1..info.IndexOf('\r')]));
            await c.SendAsync("HELLO", "3");
            Assert.Matches($@"^=\d+\r\ntxt:{line.Replace("resp=2", "resp=3")}\r\n$", await c.SendAsync("CLIENT", "INFO"));
            await c.SendAsync("HELLO", "2");

            await using var other = await Raw.ConnectAsync(primary.EndPoint);
            long otherId = long.Parse((await other.SendAsync("CLIENT", "ID"))[1..^2]);
            string list = await c.SendAsync("CLIENT", "LIST");
            Assert.Contains($"id={id} ", list);
            Assert.Contains($"id={otherId} ", list);
            Assert.Contains("cmd=client|list", list);
            Assert.DoesNotContain($"id={otherId} ", await c.SendAsync("CLIENT", "LIST", "ID", id.ToString()));
            Assert.Equal("$0\r\n\r\n", await c.SendAsync("CLIENT", "LIST", "ID", "999999"));
            Assert.Equal("-ERR Invalid client ID\r\n", await c.SendAsync("CLIENT", "LIST", "ID", "x"));
            Assert.Equal("-ERR Unknown client type 'foo'\r\n", await c.SendAsync("CLIENT", "LIST", "TYPE", "foo"));
            Assert.Contains($"id={otherId} ", await c.SendAsync("CLIENT", "LIST", "TYPE", "normal"));

            Assert.Equal("-ERR No such client\r\n", await c.SendAsync("CLIENT", "KILL", "1.2.3.4:5"));
            Assert.Equal("-ERR client-id should be greater than 0\r\n", await c.SendAsync("CLIENT", "KILL", "ID", "x"));
            Assert.Equal("-ERR No such user 'bob'\r\n", await c.SendAsync("CLIENT", "KILL", "USER", "bob"));
            Assert.Equal("-ERR syntax error\r\n", await c.SendAsync("CLIENT", "KILL", "ID", "1", "SKIPME"));
            Assert.Equal(":0\r\n", await c.SendAsync("CLIENT", "KILL", "ID", "999999"));
            Assert.Equal(":0\r\n", await c.SendAsync("CLIENT", "KILL", "ID", id.ToString())); // SKIPME yes by default
            Assert.Equal(":1\r\n", await c.SendAsync("CLIENT", "KILL", "ID", otherId.ToString()));
            Assert.True(await other.ClosedAsync(), "the killed connection is closed");
            Assert.DoesNotContain($"id={otherId} ", await c.SendAsync("CLIENT", "LIST"));

            // A connection that kills itself gets its reply, then the connection closes.
            await using var self = await Raw.ConnectAsync(primary.EndPoint);
            long selfId = long.Parse((await self.SendAsync("CLIENT", "ID"))[1..^2]);
            Assert.Equal(":1\r\n", await self.SendAsync("CLIENT", "KILL", "ID", selfId.ToString(), "SKIPME", "no"));
            Assert.True(await self.ClosedAsync(), "the connection that killed itself is closed");
            Assert.Equal("+PONG\r\n", await c.SendAsync("PING"));
        }
    }

    [Fact]
    public async Task ResetSelectTimeLastsave_AsRedis()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            await using var c = await Raw.ConnectAsync(primary.EndPoint);
            await c.SendAsync("HELLO", "3", "SETNAME", "n");
            Assert.Equal("+RESET\r\n", await c.SendAsync("RESET"));
            Assert.Equal("$-1\r\n", await c.SendAsync("CLIENT", "GETNAME"));
            Assert.Equal("$-1\r\n", await c.SendAsync("GET", "nokey")); // back to RESP2

            Assert.Equal("+OK\r\n", await c.SendAsync("SELECT", "0"));
            Assert.Equal("-ERR DB index is out of range\r\n", await c.SendAsync("SELECT", "1"));
            Assert.Equal("-ERR value is not an integer or out of range\r\n", await c.SendAsync("SELECT", "x"));

            Match time = Regex.Match(await c.SendAsync("TIME"), @"^\*2\r\n\$\d+\r\n(\d+)\r\n\$\d+\r\n(\d+)\r\n$");
            Assert.True(time.Success);
            Assert.InRange(long.Parse(time.Groups[1].Value), DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 60, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 60);
            Assert.InRange(long.Parse(time.Groups[2].Value), 0, 999_999);
            Match lastSave = Regex.Match(await c.SendAsync("LASTSAVE"), @"^:(\d+)\r\n$");
            Assert.True(lastSave.Success);
            Assert.InRange(long.Parse(lastSave.Groups[1].Value), DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 600, DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        }
    }

    [Fact]
    public async Task Command_DescribesTheNodesOwnTable_WithoutInternalCommands()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            await using var c = await Raw.ConnectAsync(primary.EndPoint);
            int count = int.Parse((await c.SendAsync("COMMAND", "COUNT"))[1..^2]);
            string all = await c.SendAsync("COMMAND");
            Assert.StartsWith($"*{count}\r\n", all);
            Assert.DoesNotContain("repl.apply", all, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("$3\r\nget\r\n:2\r\n", all);

            string ping = "*10\r\n$4\r\nping\r\n:-1\r\n*1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n";
            Assert.Equal("*1\r\n" + ping, await c.SendAsync("COMMAND", "INFO", "ping"));
            Assert.Equal("*2\r\n$-1\r\n" + ping, await c.SendAsync("COMMAND", "INFO", "nosuch", "PING"));
            Assert.Equal("*1\r\n$-1\r\n", await c.SendAsync("COMMAND", "INFO", "repl.apply"));
            string clientList = await c.SendAsync("COMMAND", "INFO", "client|list");
            Assert.StartsWith("*1\r\n*10\r\n$11\r\nclient|list\r\n:-2\r\n", clientList);
            Assert.Contains("$11\r\nclient|kill\r\n", await c.SendAsync("COMMAND", "INFO", "client"));

            Assert.Equal("*0\r\n", await c.SendAsync("COMMAND", "DOCS", "nosuch"));
            Assert.StartsWith("*2\r\n$4\r\necho\r\n*6\r\n$7\r\nsummary\r\n", await c.SendAsync("COMMAND", "DOCS", "echo"));
            string list = await c.SendAsync("COMMAND", "LIST");
            Assert.Contains("$11\r\nclient|list\r\n", list);
            Assert.DoesNotContain("repl.", list, StringComparison.OrdinalIgnoreCase);
            string filtered = await c.SendAsync("COMMAND", "LIST", "FILTERBY", "PATTERN", "client|i*");
            Assert.StartsWith("*2\r\n", filtered);
            Assert.Contains("$11\r\nclient|info\r\n", filtered);
            Assert.Contains("$9\r\nclient|id\r\n", filtered);
            Assert.Equal("-ERR syntax error\r\n", await c.SendAsync("COMMAND", "LIST", "FILTERBY"));
            Assert.Equal("-ERR Invalid command specified\r\n", await c.SendAsync("COMMAND", "GETKEYS", "nosuch", "a"));
            Assert.Equal("-ERR The command has no key arguments\r\n", await c.SendAsync("COMMAND", "GETKEYS", "echo", "a"));
            Assert.Equal("-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n", await c.SendAsync("COMMAND", "FOO"));
            Assert.Equal("-ERR wrong number of arguments for 'command|count' command\r\n", await c.SendAsync("COMMAND", "COUNT", "x"));

            await c.SendAsync("HELLO", "3");
            Assert.Equal("*1\r\n*10\r\n$4\r\nping\r\n:-1\r\n~1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n~1\r\n+@fast\r\n~0\r\n~0\r\n~0\r\n", await c.SendAsync("COMMAND", "INFO", "ping"));
            Assert.Equal("%0\r\n", await c.SendAsync("COMMAND", "DOCS", "nosuch"));

            // The coordinator answers from its own table.
            var coordinator = (IPEndPoint)Tandem.Net.RespClientConnection.ParseEndPoint(cluster.CoordinatorAddress);
            await using var k = await Raw.ConnectAsync(coordinator);
            Assert.Equal("*1\r\n" + ping, await k.SendAsync("COMMAND", "INFO", "ping"));
            Assert.Equal("*1\r\n$-1\r\n", await k.SendAsync("COMMAND", "INFO", "vs.ping"));
            Assert.StartsWith("*14\r\n$6\r\nserver\r\n", await k.SendAsync("HELLO"));
        }
    }

    [Fact]
    public async Task InfoAndRole_ReportThePairInRedisFields()
    {
        (TestCluster cluster, TestServer primary, TestServer backup) = await StartPairAsync();
        await using (cluster)
        {
            await using var c = await Raw.ConnectAsync(primary.EndPoint);
            Assert.Equal("+OK\r\n", await c.SendAsync("SET", "k", "v"));
            Assert.Equal("+OK\r\n", await c.SendAsync("CONFIG", "RESETSTAT"));
            Assert.Equal("$1\r\nv\r\n", await c.SendAsync("GET", "k"));
            Assert.Equal("$1\r\nv\r\n", await c.SendAsync("GET", "k"));
            await c.SendAsync("GET");

            string info = Body(await c.SendAsync("INFO"));
            string[] headers = [.. info.Split("\r\n").Where(l => l.StartsWith('#'))];
            Assert.Equal(["# Server", "# Clients", "# Memory", "# Persistence", "# Stats", "# Replication", "# CPU", "# Modules", "# Errorstats", "# Cluster", "# Keyspace"], headers);
            Assert.Contains("\r\n\r\n# Clients\r\n", info);
            Assert.EndsWith("\r\n", info);
            Dictionary<string, string> f = Fields(info);
            Assert.Equal("7.2.0", f["redis_version"]);
            Assert.Equal("standalone", f["redis_mode"]);
            Assert.Equal(primary.EndPoint.Port.ToString(), f["tcp_port"]);
            Assert.Equal(Environment.ProcessId.ToString(), f["process_id"]);
            Assert.True(long.Parse(f["used_memory"]) > 0);
            Assert.True(int.Parse(f["connected_clients"]) >= 1);
            Assert.Equal("master", f["role"]);
            Assert.Equal("1", f["connected_slaves"]);
            Assert.Matches($@"^ip=127\.0\.0\.1,port={backup.EndPoint.Port},state=online,offset=\d+,lag=0$", f["slave0"]);
            Assert.Equal("db0:keys=1,expires=0,avg_ttl=0", info.Split("\r\n").Single(l => l.StartsWith("db0:")));
            Assert.Equal(primary.Address, f["tandem_address"]);
            Assert.Equal(primary.Address, f["tandem_primary"]);
            Assert.True(long.Parse(f["total_commands_processed"]) >= 2);

            string stats = Body(await c.SendAsync("INFO", "commandstats"));
            Assert.StartsWith("# Commandstats\r\n", stats);
            Assert.Matches(@"\r\ncmdstat_get:calls=2,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=1,failed_calls=0\r\n", stats);
            Assert.Matches(@"\r\ncmdstat_config\|resetstat:calls=1,", stats);
            Assert.DoesNotContain("cmdstat_set:", stats);
            Assert.Contains("# Commandstats", Body(await c.SendAsync("INFO", "everything")));
            Assert.Contains("# Keyspace", Body(await c.SendAsync("INFO", "all")));
            Assert.Equal("# Server", Body(await c.SendAsync("INFO", "SERVER")).Split("\r\n")[0]);
            Assert.Equal(["# Clients", "# Replication"],
                Body(await c.SendAsync("INFO", "replication", "clients")).Split("\r\n").Where(l => l.StartsWith('#')));
            Assert.Equal("$0\r\n\r\n", await c.SendAsync("INFO", "nosuch"));

            string role = await c.SendAsync("ROLE");
            Assert.Matches($@"^\*3\r\n\$6\r\nmaster\r\n:\d+\r\n\*1\r\n\*3\r\n\$9\r\n127\.0\.0\.1\r\n\$\d\r\n{backup.EndPoint.Port}\r\n\$\d+\r\n\d+\r\n$", role);

            await using var b = await Raw.ConnectAsync(backup.EndPoint);
            Dictionary<string, string> r = Fields(Body(await b.SendAsync("INFO", "replication")));
            Assert.Equal("slave", r["role"]);
            Assert.Equal("127.0.0.1", r["master_host"]);
            Assert.Equal(primary.EndPoint.Port.ToString(), r["master_port"]);
            Assert.Equal("up", r["master_link_status"]);
            Assert.Matches($@"^\*5\r\n\$5\r\nslave\r\n\$9\r\n127\.0\.0\.1\r\n:{primary.EndPoint.Port}\r\n\$9\r\nconnected\r\n:\d+\r\n$", await b.SendAsync("ROLE"));

            await c.SendAsync("HELLO", "3");
            Assert.StartsWith("=", await c.SendAsync("INFO", "server"));
            Assert.Equal("=4\r\ntxt:\r\n", await c.SendAsync("INFO", "nosuch"));
        }
    }

    [Fact]
    public async Task ConfigAndDebug_AnswerAsRedis()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            await using var c = await Raw.ConnectAsync(primary.EndPoint);
            Assert.Equal("*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n", await c.SendAsync("CONFIG", "GET", "save", "appendonly"));
            Assert.Equal("*0\r\n", await c.SendAsync("CONFIG", "GET", "nosuch"));
            Assert.Equal("-ERR Unknown option or number of arguments for CONFIG SET - 'foo'\r\n", await c.SendAsync("CONFIG", "SET", "foo", "bar"));
            Assert.Equal("-ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config\r\n",
                await c.SendAsync("CONFIG", "SET", "databases", "4"));
            Assert.Equal("-ERR wrong number of arguments for 'config|set' command\r\n", await c.SendAsync("CONFIG", "SET", "timeout"));
            Assert.Equal("-ERR CONFIG SET failed (possibly related to argument 'timeout') - duplicate parameter\r\n",
                await c.SendAsync("CONFIG", "SET", "timeout", "0", "timeout", "0"));
            Assert.Equal("+OK\r\n", await c.SendAsync("CONFIG", "SET", "timeout", "0"));
            Assert.Equal("+OK\r\n", await c.SendAsync("CONFIG", "SET", "save", ""));
            Assert.Equal("-ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer\r\n",
                await c.SendAsync("CONFIG", "SET", "hz", "x"));
            Assert.Equal("+OK\r\n", await c.SendAsync("CONFIG", "SET", "hz", "20", "slowlog-max-len", "256"));
            Assert.Equal("*2\r\n$2\r\nhz\r\n$2\r\n20\r\n", await c.SendAsync("CONFIG", "GET", "hz"));
            Assert.Equal("-ERR The server is running without a config file\r\n", await c.SendAsync("CONFIG", "REWRITE"));
            Assert.Equal("-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n", await c.SendAsync("CONFIG", "FOO"));
            Assert.Equal("-ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, " +
                         "otherwise you need to set this option in the configuration file, and then restart the server.\r\n", await c.SendAsync("DEBUG", "SLEEP", "0"));
            Assert.Equal("-ERR wrong number of arguments for 'debug' command\r\n", await c.SendAsync("DEBUG"));
        }
    }

    [Fact]
    public async Task RedisCli_InResp3_SetsGetsAndReadsInfo()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            string port = primary.EndPoint.Port.ToString();
            Assert.Equal("OK", await WireCompatibilityTests.RedisCliAsync("-3", "-p", port, "SET", "cli", "three"));
            Assert.Equal("three", await WireCompatibilityTests.RedisCliAsync("-3", "-p", port, "GET", "cli"));
            Assert.Equal("", await WireCompatibilityTests.RedisCliAsync("-3", "-p", port, "GET", "missing"));
            string hello = await WireCompatibilityTests.RedisCliAsync("-3", "-p", port, "HELLO", "3");
            Assert.Contains("proto 3\n", hello);
            Assert.Contains("redis_version:7.2.0", await WireCompatibilityTests.RedisCliAsync("-3", "-p", port, "INFO", "server"));
            Assert.Contains("role:master", await WireCompatibilityTests.RedisCliAsync("-p", port, "INFO", "replication"));
            Assert.Equal("timeout 0", await WireCompatibilityTests.RedisCliAsync("-3", "-p", port, "CONFIG", "GET", "timeout"));
        }
    }

    [Fact]
    public async Task StackExchangeRedis_Resp3_SetsAndGets()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            var config = new ConfigurationOptions
            {
                EndPoints = { primary.Address },
                AbortOnConnectFail = false,
                Protocol = RedisProtocol.Resp3,
                ClientName = "se-resp3",
                CommandMap = CommandMap.Create(new HashSet<string> { "SUBSCRIBE", "CLUSTER", "TRACKING" }, available: false),
            };
            await using ConnectionMultiplexer redis = await ConnectionMultiplexer.ConnectAsync(config);
            IServer server = redis.GetServer(primary.Address);
            Assert.Equal(RedisProtocol.Resp3, server.Protocol);
            Assert.Equal(new Version(7, 2, 0), server.Version);
            IDatabase db = redis.GetDatabase();
            Assert.True(await db.StringSetAsync("se3", "resp3"));
            Assert.Equal("resp3", (string?)await db.StringGetAsync("se3"));
            Assert.True((await db.StringGetAsync("se3-missing")).IsNull);
            Assert.Contains("name=se-resp3", (string?)await db.ExecuteAsync("CLIENT", "LIST"));
        }
    }

    [Fact]
    public async Task RedisPy_Resp2AndResp3_SetGetInfo()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            // Debian's python3-redis before 5.0 has no RESP3: there the script checks RESP2 and says so; 5.0 and later check both.
            const string script = """
                import inspect, sys, redis
                port = int(sys.argv[1])
                protocols = [2, 3] if "protocol" in inspect.signature(redis.Redis.__init__).parameters else [2]
                for proto in protocols:
                    kwargs = {"protocol": proto} if proto == 3 else {}
                    r = redis.Redis(host="127.0.0.1", port=port, **kwargs)
                    assert r.set("py%d" % proto, "v%d" % proto) is True
                    assert r.get("py%d" % proto) == b"v%d" % proto
                    assert r.get("py-missing") is None
                    info = r.info()
                    assert info["redis_version"] == "7.2.0", info
                    assert info["role"] == "master", info
                    assert r.info("keyspace")["db0"]["keys"] >= 1
                    assert r.client_getname() is None
                    print("protocol %d ok" % proto)
                """;
            var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(script);
            start.ArgumentList.Add(primary.EndPoint.Port.ToString());
            using Process p = Process.Start(start) ?? throw new InvalidOperationException("python3 is not installed");
            Task<string> stdout = p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            Task<string> stderr = p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            await p.WaitForExitAsync(Timeout());
            Assert.True(p.ExitCode == 0, $"redis-py failed (apt-get install python3-redis): {await stderr}");
            Assert.Contains("protocol 2 ok", await stdout);
        }
    }

    private static string Body(string bulkOrVerbatim)
    {
        int start = bulkOrVerbatim.IndexOf("\r\n", StringComparison.Ordinal) + 2;
        string body = bulkOrVerbatim[start..^2];
        return bulkOrVerbatim[0] == '=' ? body[4..] : body;
    }

    private static Dictionary<string, string> Fields(string info) =>
        info.Split("\r\n").Where(l => l.Length > 0 && l[0] != '#' && l.Contains(':'))
            .ToDictionary(l => l[..l.IndexOf(':')], l => l[(l.IndexOf(':') + 1)..]);

    /// <summary>A raw TCP connection that sends commands and reads whole replies (RESP2 or RESP3) as text.</summary>
    /// <summary>
    /// A killed connection leaves the client list with the kill, as in Redis, even while a command of its own is
    /// still running (here a <c>WAIT</c> for more replicas than exist, with no timeout, which never returns):
    /// the list does not wait for the connection's read loop to end.
    /// </summary>
    [Fact]
    public async Task ClientKill_OfAConnectionInTheMiddleOfACommand_TakesItOffTheListAtOnce()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            await using var c = await Raw.ConnectAsync(primary.EndPoint);
            await using var waiting = await Raw.ConnectAsync(primary.EndPoint);
            long waitingId = long.Parse((await waiting.SendAsync("CLIENT", "ID"))[1..^2]);
            await waiting.SendManyAsync(0, ["WAIT", "5", "0"]);
            DateTime deadline = DateTime.UtcNow + Patience;
            while (!(await c.SendAsync("CLIENT", "LIST", "ID", waitingId.ToString())).Contains("cmd=wait"))
            {
                Assert.True(DateTime.UtcNow < deadline, "the WAIT never started");
                await Task.Delay(20, TestContext.Current.CancellationToken);
            }

            Assert.Equal(":1\r\n", await c.SendAsync("CLIENT", "KILL", "ID", waitingId.ToString()));
            Assert.DoesNotContain($"id={waitingId} ", await c.SendAsync("CLIENT", "LIST"));
            Assert.Equal("$0\r\n\r\n", await c.SendAsync("CLIENT", "LIST", "ID", waitingId.ToString()));
            Assert.True(await waiting.ClosedAsync(), "the killed connection is closed");
            Assert.Equal(":0\r\n", await c.SendAsync("CLIENT", "KILL", "ID", waitingId.ToString())); // killed once
        }
    }

    private sealed class Raw : IAsyncDisposable
    {
        private readonly Socket _socket;
        private readonly List<byte> _pending = [];

        private Raw(Socket socket) => _socket = socket;

        public static async Task<Raw> ConnectAsync(IPEndPoint endPoint)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(endPoint, Timeout());
            return new Raw(socket);
        }

        public Task<string> SendAsync(params string[] args) => SendManyAsync(1, args);

        public async Task<string> SendManyAsync(int replies, params string[][] commands)
        {
            var frame = new StringBuilder();
            foreach (string[] args in commands)
            {
                frame.Append('*').Append(args.Length).Append("\r\n");
                foreach (string a in args) frame.Append('$').Append(Encoding.UTF8.GetByteCount(a)).Append("\r\n").Append(a).Append("\r\n");
            }
            await _socket.SendAsync(Encoding.UTF8.GetBytes(frame.ToString()));
            var text = new StringBuilder();
            for (int i = 0; i < replies; i++) text.Append(await ReadReplyAsync());
            return text.ToString();
        }

        /// <summary>True once the node has closed the connection (within the patience).</summary>
        public async Task<bool> ClosedAsync()
        {
            var buffer = new byte[256];
            using var cts = new CancellationTokenSource(Patience);
            try
            {
                while (true)
                {
                    int n = await _socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                    if (n == 0) return true;
                }
            }
            catch (SocketException)
            {
                return true;
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        private async Task<string> ReadReplyAsync()
        {
            using var cts = new CancellationTokenSource(Patience);
            var buffer = new byte[65536];
            while (true)
            {
                int length = Complete([.. _pending], 0);
                if (length > 0)
                {
                    string reply = Encoding.UTF8.GetString([.. _pending.Take(length)]);
                    _pending.RemoveRange(0, length);
                    return reply;
                }
                int n = await _socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n == 0) throw new IOException($"connection closed; received so far: {Encoding.UTF8.GetString([.. _pending])}");
                _pending.AddRange(buffer.AsSpan(0, n).ToArray());
            }
        }

        /// <summary>The length of the complete reply at <paramref name="at"/>, or 0 when it has not all arrived.</summary>
        private static int Complete(byte[] b, int at)
        {
            int lf = Array.IndexOf(b, (byte)'\n', at);
            if (lf < 0) return 0;
            string line = Encoding.ASCII.GetString(b, at + 1, lf - at - 2);
            int next = lf + 1;
            switch ((char)b[at])
            {
                case '$' or '=' or '!':
                    int len = int.Parse(line);
                    if (len < 0) return next - at;
                    return b.Length >= next + len + 2 ? next + len + 2 - at : 0;
                case '*' or '~' or '>' or '%':
                    int count = int.Parse(line) * (b[at] == '%' ? 2 : 1);
                    for (int i = 0; i < count; i++)
                    {
                        int item = Complete(b, next);
                        if (item == 0) return 0;
                        next += item;
                    }
                    return next - at;
                default:
                    return next - at;
            }
        }

        public ValueTask DisposeAsync()
        {
            _socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
