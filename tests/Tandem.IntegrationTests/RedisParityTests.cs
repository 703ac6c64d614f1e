using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>
/// The same commands sent to a Tandem primary and to a real Redis 7 server (Debian's <c>redis-server</c>, which
/// <c>.ci/run</c> installs): every reply must be the same, byte for byte. Covers the data commands' replies,
/// error texts and edge cases.
/// </summary>
public class RedisParityTests
{
    /// <summary>Scripts of commands; each starts from an empty database.</summary>
    public static TheoryData<string> Scripts => new(ScriptBook.Keys);

    private static readonly Dictionary<string, string[][]> ScriptBook = new()
    {
        ["set-options"] =
        [
            ["SET", "k", "v"], ["SET", "k", "w", "NX"], ["SET", "k", "w", "XX"], ["GET", "k"], ["SET", "n", "1", "XX"],
            ["SET", "k", "x", "GET"], ["SET", "missing", "x", "NX", "GET"], ["SET", "k", "y", "NX", "GET"],
            ["SET", "k", "v", "EX", "100"], ["TTL", "k"], ["SET", "k", "v", "PX", "100000"], ["TTL", "k"],
            ["SET", "k", "v", "KEEPTTL"], ["TTL", "k"], ["SET", "k", "v"], ["TTL", "k"],
            ["SET", "k", "v", "EX", "0"], ["SET", "k", "v", "EX", "-1"], ["SET", "k", "v", "EX", "abc"],
            ["SET", "k", "v", "EX"], ["SET", "k", "v", "NX", "XX"], ["SET", "k", "v", "EX", "10", "PX", "100"],
            ["SET", "k", "v", "KEEPTTL", "EX", "10"], ["SET", "k", "v", "BOGUS"], ["SET", "k"],
            ["SET", "k", "v", "EXAT", "1"], ["GET", "k"], ["SET", "k", "v", "EX", "9223372036854775807"],
            ["SETNX", "k", "a"], ["SETNX", "k", "b"], ["GET", "k"],
            ["SETEX", "s", "100", "v"], ["TTL", "s"], ["SETEX", "s", "0", "v"], ["SETEX", "s", "x", "v"],
            ["PSETEX", "p", "100000", "v"], ["TTL", "p"], ["PSETEX", "p", "-5", "v"],
            ["GETSET", "g", "1"], ["GETSET", "g", "2"], ["GETDEL", "g"], ["GETDEL", "g"],
        ],
        ["getex-mget-mset"] =
        [
            ["SET", "a", "1"], ["GETEX", "a"], ["GETEX", "a", "EX", "100"], ["TTL", "a"], ["GETEX", "a", "PERSIST"], ["TTL", "a"],
            ["GETEX", "a", "EX", "0"], ["GETEX", "a", "EX", "10", "PX", "10"], ["GETEX", "nokey", "EX", "10"], ["GETEX", "a", "FOO"],
            ["MSET", "a", "1", "b", "2"], ["MSET", "a"], ["MSET", "a", "1", "b"], ["MGET", "a", "b", "c"],
            ["MSETNX", "c", "3", "d", "4"], ["MSETNX", "d", "5", "e", "6"], ["MGET", "c", "d", "e"],
            ["STRLEN", "a"], ["STRLEN", "nokey"], ["APPEND", "a", "23"], ["APPEND", "new", "x"], ["GET", "a"],
        ],
        ["ranges"] =
        [
            ["SET", "s", "This is a string"], ["GETRANGE", "s", "0", "3"], ["GETRANGE", "s", "-3", "-1"],
            ["GETRANGE", "s", "0", "-1"], ["GETRANGE", "s", "10", "100"], ["GETRANGE", "s", "5", "2"],
            ["GETRANGE", "s", "-1", "-5"], ["GETRANGE", "s", "-100", "2"], ["GETRANGE", "nokey", "0", "-1"],
            ["GETRANGE", "s", "a", "1"], ["SUBSTR", "s", "0", "3"],
            ["SETRANGE", "s", "5", "XX"], ["GET", "s"], ["SETRANGE", "pad", "5", "ab"], ["GET", "pad"],
            ["SETRANGE", "s", "-1", "x"], ["SETRANGE", "none", "3", ""], ["EXISTS", "none"], ["SETRANGE", "s", "2", ""],
            ["SETRANGE", "s", "536870912", "x"], ["SETRANGE", "s", "9223372036854775807", "x"],
            ["SET", "k1", "ohmytext"], ["SET", "k2", "mynewtext"], ["LCS", "k1", "k2"], ["LCS", "k1", "k2", "LEN"],
            ["LCS", "k1", "k2", "IDX"], ["LCS", "k1", "k2", "IDX", "MINMATCHLEN", "4"], ["LCS", "k1", "k2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"],
            ["LCS", "k1", "k2", "LEN", "IDX"], ["LCS", "k1", "nokey"], ["LCS", "k1", "k2", "FOO"],
        ],
        ["counters"] =
        [
            ["INCR", "c"], ["INCRBY", "c", "10"], ["DECR", "c"], ["DECRBY", "c", "5"], ["GET", "c"],
            ["INCRBY", "c", "x"], ["INCRBY", "c", "1.5"], ["SET", "c", "abc"], ["INCR", "c"], ["SET", "c", " 1"], ["INCR", "c"],
            ["SET", "c", "007"], ["INCR", "c"], ["SET", "c", "-0"], ["INCR", "c"], ["SET", "c", "9223372036854775807"], ["INCR", "c"],
            ["SET", "c", "-9223372036854775808"], ["DECR", "c"], ["DECRBY", "c", "-9223372036854775808"], ["SET", "c", "5"],
            ["DECRBY", "c", "-9223372036854775808"], ["INCRBY", "c", "99999999999999999999"],
            ["SET", "f", "10.50"], ["INCRBYFLOAT", "f", "0.1"], ["INCRBYFLOAT", "f", "-5"], ["SET", "f", "5.0e3"], ["INCRBYFLOAT", "f", "2.0e2"],
            ["INCRBYFLOAT", "g", "0.1"], ["INCRBYFLOAT", "g", "0.2"], ["INCRBYFLOAT", "g", "abc"], ["SET", "g", "x"], ["INCRBYFLOAT", "g", "1"],
            ["INCRBYFLOAT", "h", "3"], ["INCRBYFLOAT", "h", "-3"], ["SET", "i", "1"], ["INCR", "i"], ["OBJECT", "ENCODING", "i"],
        ],
        ["bits"] =
        [
            ["SETBIT", "b", "7", "1"], ["SETBIT", "b", "7", "0"], ["SETBIT", "b", "7", "1"], ["GETBIT", "b", "7"], ["GETBIT", "b", "100"],
            ["GETBIT", "nokey", "0"], ["SETBIT", "b", "-1", "1"], ["SETBIT", "b", "1", "2"], ["SETBIT", "b", "4294967296", "1"],
            ["GET", "b"], ["SET", "m", "foobar"], ["BITCOUNT", "m"], ["BITCOUNT", "m", "0", "0"], ["BITCOUNT", "m", "1", "1"],
            ["BITCOUNT", "m", "1", "1", "BYTE"], ["BITCOUNT", "m", "5", "30", "BIT"], ["BITCOUNT", "m", "0"], ["BITCOUNT", "m", "0", "1", "FOO"],
            ["BITCOUNT", "nokey"], ["BITCOUNT", "m", "-2", "-1"],
            ["SET", "p", "\u00ff\u00f0"], ["SETBIT", "q", "0", "1"], ["BITPOS", "q", "1"], ["BITPOS", "q", "0"],
            ["SET", "z", "\0\0\0"], ["BITPOS", "z", "1"], ["BITPOS", "z", "0"], ["BITPOS", "nokey", "0"], ["BITPOS", "nokey", "1"],
            ["SETBIT", "o", "0", "1"], ["SETBIT", "o", "1", "1"], ["SETBIT", "o", "2", "1"], ["SETBIT", "o", "3", "1"],
            ["SETBIT", "o", "4", "1"], ["SETBIT", "o", "5", "1"], ["SETBIT", "o", "6", "1"], ["SETBIT", "o", "7", "1"],
            ["BITPOS", "o", "0"], ["BITPOS", "o", "0", "0", "0"], ["BITPOS", "o", "1", "0", "-1", "BIT"], ["BITPOS", "o", "2"],
            ["BITPOS", "m", "1", "2", "-1", "BYTE"], ["BITPOS", "m", "0", "7", "15", "BIT"], ["BITPOS", "m", "1", "x"],
        ],
        ["keys"] =
        [
            ["MSET", "a", "1", "b", "2", "c", "3"], ["DEL", "a", "b", "x", "a"], ["EXISTS", "a", "c", "c", "x"], ["UNLINK", "c"],
            ["MSET", "hello", "1", "hallo", "2", "hxllo", "3", "hllo", "4", "heeeello", "5"],
            ["KEYS", "h?llo"], ["KEYS", "h*llo"], ["KEYS", "h[ae]llo"], ["KEYS", "h[^e]llo"], ["KEYS", "h[a-b]llo"], ["KEYS", "nomatch*"],
            ["TYPE", "hello"], ["TYPE", "nokey"], ["DBSIZE"], ["TOUCH", "hello", "hallo", "nokey"],
            ["RENAME", "hello", "hi"], ["GET", "hi"], ["RENAME", "nokey", "x"], ["RENAME", "hi", "hi"], ["RENAMENX", "hi", "hallo"],
            ["RENAMENX", "hi", "fresh"], ["RENAMENX", "fresh", "fresh"], ["RENAMENX", "nokey", "x"],
            ["COPY", "fresh", "dup"], ["GET", "dup"], ["COPY", "fresh", "dup"], ["COPY", "fresh", "dup", "REPLACE"], ["COPY", "nokey", "d2"],
            ["COPY", "fresh", "fresh"], ["COPY", "fresh", "d3", "DB", "0"], ["COPY", "fresh", "d3", "FOO"],
            ["OBJECT", "ENCODING", "fresh"], ["SET", "long", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
            ["OBJECT", "ENCODING", "long"], ["SET", "text", "abc"], ["OBJECT", "ENCODING", "text"], ["OBJECT", "ENCODING", "nokey"],
            ["OBJECT", "REFCOUNT", "text"], ["OBJECT", "FOO", "text"],
            ["FLUSHDB", "FOO"], ["FLUSHALL", "SYNC"], ["DBSIZE"], ["RANDOMKEY"], ["SCAN", "0"], ["SCAN", "abc"], ["SCAN", "0", "COUNT", "0"],
            ["SCAN", "0", "TYPE", "list"], ["SCAN", "0", "MATCH"],
        ],
        ["expiry"] =
        [
            ["SET", "k", "v"], ["TTL", "k"], ["PTTL", "nokey"], ["TTL", "nokey"], ["EXPIRETIME", "k"], ["PEXPIRETIME", "nokey"],
            ["EXPIRE", "k", "100"], ["TTL", "k"], ["EXPIRE", "k", "50", "NX"], ["EXPIRE", "k", "50", "XX"], ["TTL", "k"],
            ["EXPIRE", "k", "10", "GT"], ["EXPIRE", "k", "200", "GT"], ["TTL", "k"], ["EXPIRE", "k", "300", "LT"], ["EXPIRE", "k", "20", "LT"], ["TTL", "k"],
            ["EXPIRE", "k", "10", "NX", "XX"], ["EXPIRE", "k", "10", "GT", "LT"], ["EXPIRE", "k", "10", "FOO"], ["EXPIRE", "k", "abc"],
            ["EXPIRE", "nokey", "10"], ["PERSIST", "k"], ["PERSIST", "k"], ["TTL", "k"], ["EXPIRE", "k", "10", "GT"], ["EXPIRE", "k", "10", "LT"],
            ["TTL", "k"], ["EXPIRE", "k", "10", "XX"], ["PERSIST", "nokey"],
            ["EXPIREAT", "k", "4102444800"], ["EXPIRETIME", "k"], ["PEXPIREAT", "k", "4102444800123"], ["PEXPIRETIME", "k"], ["EXPIRETIME", "k"],
            ["EXPIRE", "k", "-1"], ["EXISTS", "k"], ["SET", "k", "v"], ["EXPIREAT", "k", "1"], ["GET", "k"],
            ["SET", "k", "v"], ["EXPIRE", "k", "9223372036854775807"], ["PEXPIRE", "k", "9223372036854775807"],
            ["SET", "k", "v", "EX", "100"], ["APPEND", "k", "x"], ["TTL", "k"], ["INCR", "num"], ["EXPIRE", "num", "100"], ["INCR", "num"], ["TTL", "num"],
            ["RENAME", "k", "k2"], ["TTL", "k2"], ["COPY", "k2", "k3"], ["TTL", "k3"], ["GETSET", "k3", "x"], ["TTL", "k3"],
        ],
        ["transactions"] =
        [
            ["MULTI"], ["SET", "t", "1"], ["INCR", "t"], ["GET", "t"], ["EXEC"], ["EXEC"], ["DISCARD"],
            ["MULTI"], ["MULTI"], ["SET", "t", "2"], ["DISCARD"], ["GET", "t"],
            ["MULTI"], ["SET", "t"], ["SET", "t", "3"], ["EXEC"], ["GET", "t"],
            ["MULTI"], ["NOSUCHCOMMAND"], ["EXEC"],
            ["MULTI"], ["INCR", "t"], ["SET", "s", "abc"], ["INCR", "s"], ["EXEC"],
            ["MULTI"], ["EXEC"], ["WATCH", "t"], ["MULTI"], ["WATCH", "t"], ["INCR", "t"], ["EXEC"],
            ["WATCH", "t"], ["SET", "t", "10"], ["MULTI"], ["INCR", "t"], ["EXEC"], ["GET", "t"],
            ["WATCH", "t"], ["UNWATCH"], ["SET", "t", "20"], ["MULTI"], ["INCR", "t"], ["EXEC"],
            ["MULTI"], ["PING"], ["ECHO", "hi"], ["SET", "x", "1"], ["EXEC"],
        ],
        ["arity-and-unknown"] =
        [
            ["GET"], ["GET", "a", "b"], ["INCR"], ["MGET"], ["DEL"], ["EXPIRE", "k"], ["GETRANGE", "k", "0"], ["FOO", "bar"], ["TTL"],
        ],
    };

    [Theory]
    [MemberData(nameof(Scripts))]
    public async Task SameRepliesAsRedis(string script)
    {
        await using RedisServer redis = await RedisServer.StartAsync();
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer primary, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using RespClientConnection tandem = await RespClientConnection.ConnectAsync(primary.Address, Timeout());
        await using RespClientConnection reference = await RespClientConnection.ConnectAsync(redis.Address, Timeout());
        var mismatches = new List<string>();
        foreach (string[] command in ScriptBook[script])
        {
            bool unordered = command[0] is "KEYS" or "SCAN";
            string expected = Show(await reference.SendAsync(Timeout(), command), unordered);
            string actual = Show(await tandem.SendAsync(Timeout(), command), unordered);
            if (expected != actual) mismatches.Add($"{string.Join(' ', command)}\n    redis:  {expected}\n    tandem: {actual}");
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} replies differ from Redis's:\n" + string.Join('\n', mismatches));
    }

    /// <summary>The reply's exact bytes, printable; the keys of KEYS and SCAN sorted (they come in hash order, which differs).</summary>
    private static string Show(RespValue reply, bool unordered)
    {
        var w = new ArrayBufferWriter<byte>();
        RespWriter.WriteValue(w, unordered ? Sorted(reply) : reply);
        return Encoding.UTF8.GetString(w.WrittenSpan).Replace("\r\n", "\\r\\n");
    }

    private static RespValue Sorted(RespValue reply)
    {
        if (reply.Kind != RespKind.Array || reply.Items is not { } items) return reply;
        if (items.All(i => i.Kind == RespKind.BulkString && !i.IsNull))
            return RespValue.Array([.. items.OrderBy(i => i.Text, StringComparer.Ordinal)]);
        return RespValue.Array([.. items.Select(Sorted)]);
    }

    /// <summary>A real redis-server on a free port, without persistence, killed at the end.</summary>
    private sealed class RedisServer : IAsyncDisposable
    {
        private readonly Process _process;

        private RedisServer(Process process, int port)
        {
            _process = process;
            Address = $"127.0.0.1:{port}";
        }

        public string Address { get; }

        public static async Task<RedisServer> StartAsync()
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var start = new ProcessStartInfo("redis-server")
            {
                ArgumentList = { "--port", port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no" },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            Process process;
            try
            {
                process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start");
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new InvalidOperationException("redis-server is needed (Debian package redis-server; .ci/run installs it)", e);
            }
            var server = new RedisServer(process, port);
            await Wait.UntilAsync(() =>
            {
                try
                {
                    using var client = new TcpClient();
                    client.Connect(IPAddress.Loopback, port);
                    return true;
                }
                catch (SocketException)
                {
                    return false;
                }
            }, Patience, "redis-server to listen");
            return server;
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            catch (InvalidOperationException)
            {
            }
            _process.Dispose();
        }
    }
}
