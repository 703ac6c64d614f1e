using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using StackExchange.Redis;
using Tandem.Client;
using Tandem.Protocol;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>Real Redis clients and hostile input against a running cluster.</summary>
public class WireCompatibilityTests
{
    private static async Task<(TestCluster Cluster, TestServer Primary, TestServer Backup)> StartPairAsync()
    {
        TestCluster cluster = await TestCluster.StartAsync();
        (TestServer primary, TestServer backup) = await cluster.StartPrimaryAndBackupAsync(Patience);
        return (cluster, primary, backup);
    }

    [Fact]
    public async Task RedisCli_SetGetPutHash_WorkAgainstThePrimary()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            string port = primary.EndPoint.Port.ToString();
            Assert.Equal("OK", await RedisCliAsync("-p", port, "SET", "greeting", "hello"));
            Assert.Equal("hello", await RedisCliAsync("-p", port, "GET", "greeting"));
            Assert.Equal("hello", await RedisCliAsync("-p", port, "PUTHASH", "greeting", "x"));
            Assert.Equal("", await RedisCliAsync("-p", port, "GET", "missing"));
            Assert.Equal("PONG", await RedisCliAsync("-p", port, "PING"));

            TandemClient ck = cluster.CreateClient();
            Assert.Equal(KeyValueScenarioTests.Fnv("hello", "x"), await ck.GetAsync("greeting", Timeout()));
        }
    }

    [Fact]
    public async Task StackExchangeRedis_StringSetAndGet_RoundTrip()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            var config = new ConfigurationOptions
            {
                EndPoints = { primary.Address },
                AbortOnConnectFail = false,
                CommandMap = CommandMap.Create(new HashSet<string> { "SUBSCRIBE", "CLUSTER", "INFO", "CONFIG", "TRACKING" }, available: false),
            };
            await using ConnectionMultiplexer redis = await ConnectionMultiplexer.ConnectAsync(config);
            IDatabase db = redis.GetDatabase();
            Assert.True(await db.StringSetAsync("se", "redis"));
            Assert.Equal("redis", (string?)await db.StringGetAsync("se"));
            Assert.Equal(6, await db.StringAppendAsync("se", "!"));
            Assert.True(await db.KeyDeleteAsync("se"));
            Assert.True((await db.StringGetAsync("se")).IsNull);
            RedisResult old = await db.ExecuteAsync("PUTHASH", "ph", "v");
            Assert.Equal("", (string?)old);
        }
    }

    [Fact]
    public async Task BadInput_GetsClearErrors_AndTheServerKeepsServing()
    {
        (TestCluster cluster, TestServer primary, TestServer backup) = await StartPairAsync();
        await using (cluster)
        {
            TandemClient ck = cluster.CreateClient();
            await ck.PutAsync("safe", "kept", Timeout());

            Assert.StartsWith("ERR unknown command", (await SendAsync(primary.Address, "FLY", "away")).Text);
            Assert.StartsWith("ERR wrong number of arguments", (await SendAsync(primary.Address, "GET")).Text);
            Assert.StartsWith("ERR wrong number of arguments", (await SendAsync(primary.Address, "SET", "a")).Text);
            Assert.StartsWith("ERR value is", (await SendAsync(primary.Address, "SET", "big", new string('x', 9 * 1024 * 1024))).Text);
            string large = new('y', 5 * 1024 * 1024);
            await ck.PutAsync("large", large, Timeout());
            Assert.Equal(large, await ck.GetAsync("large", Timeout()));
            RespValue wrongNode = await SendAsync(backup.Address, "SET", "a", "b");
            // Redis's replica error, which client libraries take as "the primary moved", naming the primary.
            Assert.Equal(ErrorCodes.ReadOnly, wrongNode.ErrorCode);
            Assert.StartsWith("READONLY You can't write against a read only replica.", wrongNode.Text);
            Assert.Contains(primary.Address, wrongNode.Text);

            foreach (string garbage in new[] { "*2\r\n$3\r\nGET\r\n$abc\r\n", "*-5\r\n", "*1\r\n:1\r\n", "*1\r\n$1073741824\r\n", "*99999999999\r\n" })
            {
                string reply = await RawAsync(primary, garbage);
                Assert.StartsWith("-ERR Protocol error", reply);
            }

            await CheckAsync(ck, "safe", "kept");
            Assert.Equal(ErrorCodes.NotPrimary, (await SendAsync(backup.Address, "GET", "safe")).ErrorCode);
        }
    }

    private static async Task<string> RawAsync(TestServer server, string bytes)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server.EndPoint);
        await socket.SendAsync(Encoding.ASCII.GetBytes(bytes));
        var buffer = new byte[4096];
        int total = 0;
        using var cts = new CancellationTokenSource(Patience);
        while (true)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory(total), SocketFlags.None, cts.Token);
            if (n == 0) break; // the server closed the connection after its error reply
            total += n;
        }
        return Encoding.ASCII.GetString(buffer, 0, total);
    }

    [Fact]
    public async Task RedisBenchmark_SetGetIncrMset_RunsWithoutAnErrorOrAWarning()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            var info = new ProcessStartInfo("redis-benchmark") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in new[] { "-p", primary.EndPoint.Port.ToString(), "-t", "set,get,incr,mset", "-n", "2000", "-c", "4", "-P", "4", "-q" })
                info.ArgumentList.Add(a);
            using Process p = Process.Start(info) ?? throw new InvalidOperationException("redis-benchmark is not installed (apt-get install redis-tools)");
            CancellationToken ct = TestContext.Current.CancellationToken;
            Task<string> stderr = p.StandardError.ReadToEndAsync(ct);
            string output = await p.StandardOutput.ReadToEndAsync(ct);
            await p.WaitForExitAsync(ct);
            string errors = await stderr;
            Assert.Equal(0, p.ExitCode);
            // One result line per test, each with its rate; no error reply, no start-up warning (CONFIG GET answers).
            foreach (string test in new[] { "SET", "GET", "INCR", "MSET (10 keys)" })
                Assert.Matches($@"(?m)^{Regex.Escape(test)}: [0-9.]+ requests per second", output.Replace("\r", "\n"));
            Assert.DoesNotContain("ERR", output + errors);
            Assert.DoesNotContain("WARN", output + errors);
            // The counter it hammered holds the number of INCRs sent.
            Assert.Equal("2000", await RedisCliAsync("-p", primary.EndPoint.Port.ToString(), "GET", "counter:__rand_int__"));
        }
    }

    [Fact]
    public async Task RedisCli_ShowsItsHints_FromCommandDocs()
    {
        (TestCluster cluster, TestServer primary, _) = await StartPairAsync();
        await using (cluster)
        {
            DirectoryInfo? root = new(AppContext.BaseDirectory);
            while (root is not null && !File.Exists(Path.Combine(root.FullName, "Tandem.slnx"))) root = root.Parent;
            Assert.True(root is not null, "the repository root (Tandem.slnx) is not above the test assembly");
            // An interactive redis-cli on a pseudo-terminal: what it shows after each command, as a user types.
            var info = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in new[] { Path.Combine(root.FullName, "tests", "clients", "redis-cli", "hints.py"), primary.EndPoint.Port.ToString(),
                         "SET k", "EXPIRE k 10", "MSET", "PUTHASH k" })
                info.ArgumentList.Add(a);
            using Process p = Process.Start(info) ?? throw new InvalidOperationException("python3 is not installed");
            CancellationToken ct = TestContext.Current.CancellationToken;
            Task<string> stderr = p.StandardError.ReadToEndAsync(ct);
            string output = await p.StandardOutput.ReadToEndAsync(ct);
            await p.WaitForExitAsync(ct);
            Assert.True(p.ExitCode == 0, await stderr);
            Assert.Contains("SET k -> value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]", output);
            Assert.Contains("EXPIRE k 10 -> [NX|XX|GT|LT]", output);
            Assert.Contains("MSET -> key value [key value ...]", output);
            // Tandem's own command: the hint can only come from the server's COMMAND DOCS.
            Assert.Contains("PUTHASH k -> value", output);
        }
    }

    internal static async Task<string> RedisCliAsync(params string[] args)
    {
        var info = new ProcessStartInfo("redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args) info.ArgumentList.Add(a);
        using Process p = Process.Start(info) ?? throw new InvalidOperationException("redis-cli is not installed (apt-get install redis-tools)");
        string output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.Equal(0, p.ExitCode);
        return output.TrimEnd('\n');
    }
}
