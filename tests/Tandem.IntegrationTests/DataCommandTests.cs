using System.Text;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Server;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>
/// What Tandem promises of the data commands beyond Redis's replies: expiry decided by the primary and kept
/// across failovers whatever the servers' clocks, transactions applied as one replicated write, SCAN's
/// guarantee, exactly-once counters.
/// </summary>
public class DataCommandTests
{
    /// <summary>A clock <see cref="Offset"/> away from the system's: a server whose clock is wrong.</summary>
    private sealed class SkewedTime(TimeSpan offset) : TimeProvider
    {
        public TimeSpan Offset { get; } = offset;

        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + Offset;
    }

    /// <summary>A cluster whose first server keeps the true time and whose later servers are <paramref name="skew"/> off.</summary>
    private static Task<TestCluster> StartSkewedAsync(TimeSpan skew)
    {
        int started = 0;
        return TestCluster.StartAsync(new TestClusterOptions
        {
            ConfigureServer = o => Interlocked.Increment(ref started) == 1 ? o : o with { TimeProvider = new SkewedTime(skew) },
        });
    }

    private static async Task<RespValue> Send(RespClientConnection conn, params string[] args) => await conn.SendAsync(Timeout(), args);

    [Fact]
    public async Task AKeySeenExpired_NeverComesBack_AfterAFailoverToABackupWhoseClockIsAnHourBehind()
    {
        await using TestCluster cluster = await StartSkewedAsync(TimeSpan.FromHours(-1));
        (TestServer primary, TestServer backup) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using (RespClientConnection conn = await RespClientConnection.ConnectAsync(primary.Address, Timeout()))
        {
            Assert.Equal("OK", (await Send(conn, "SET", "k", "v", "PX", "300")).Text);
            Assert.Equal("OK", (await Send(conn, "SET", "kept", "v", "EX", "1000")).Text);
            // Poll until the primary answers that the key is gone: from then on a client has seen it expire.
            var deadline = DateTime.UtcNow + Patience;
            while (!(await Send(conn, "GET", "k")).IsNull)
            {
                Assert.True(DateTime.UtcNow < deadline, "the key did not expire on the primary");
                await Task.Delay(20, TestContext.Current.CancellationToken);
            }
        }
        await cluster.KillAsync(primary);
        await cluster.WaitForPrimaryAsync(backup, Patience);
        await using RespClientConnection after = await RespClientConnection.ConnectAsync(backup.Address, Timeout());
        // The new primary's clock says the deadline is an hour away; the history says it has passed.
        Assert.True((await Send(after, "GET", "k")).IsNull);
        Assert.Equal(-2, (await Send(after, "TTL", "k")).Integer);
        Assert.Equal(0, (await Send(after, "EXISTS", "k")).Integer);
        // A key that has not expired keeps an absolute deadline: its TTL is counted on the history's clock,
        // which stands still until the new primary's clock catches up, so it never grows.
        long ttl = (await Send(after, "TTL", "kept")).Integer;
        Assert.InRange(ttl, 990, 1000);
    }

    [Fact]
    public async Task ABackup_NeverExpiresAKeyOnItsOwn_EvenWithItsClockAnHourAhead()
    {
        await using TestCluster cluster = await StartSkewedAsync(TimeSpan.FromHours(1));
        (TestServer primary, TestServer backup) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using RespClientConnection conn = await RespClientConnection.ConnectAsync(primary.Address, Timeout());
        Assert.Equal("OK", (await Send(conn, "SET", "k", "v", "EX", "100")).Text);
        Assert.Equal("OK", (await Send(conn, "SET", "short", "v", "PX", "200")).Text);
        // The primary's active expiry removes "short" with a replicated write; the backup follows it, and only it.
        await Wait.UntilAsync(() => backup.Node!.Replica.KeyCount == 1 && primary.Node!.Replica.KeyCount == 1, Patience,
            "the short key to be reclaimed on both copies with nobody reading it");
        for (int i = 0; i < 5; i++)
        {
            await Task.Delay(150, TestContext.Current.CancellationToken); // several of the backup's own expiry ticks
            Assert.Equal(1, backup.Node!.Replica.KeyCount);
        }
        Assert.Equal("v", (await Send(conn, "GET", "k")).Text);
    }

    [Fact]
    public async Task ATransaction_IsOneReplicatedWrite_AndSurvivesAFailoverWhole()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer primary, TestServer backup) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using (RespClientConnection conn = await RespClientConnection.ConnectAsync(primary.Address, Timeout()))
        {
            long before = primary.Node!.Replica.LastApplied;
            Assert.Equal("OK", (await Send(conn, "MULTI")).Text);
            Assert.Equal("QUEUED", (await Send(conn, "SET", "a", "1")).Text);
            Assert.Equal("QUEUED", (await Send(conn, "INCRBY", "a", "41")).Text);
            Assert.Equal("QUEUED", (await Send(conn, "MSET", "b", "2", "c", "3")).Text);
            RespValue exec = await Send(conn, "EXEC");
            Assert.Equal("[+OK, :42, +OK]", exec.ToString());
            Assert.Equal(before + 1, primary.Node!.Replica.LastApplied);
            Assert.Equal(before + 1, backup.Node!.Replica.LastApplied);
        }
        await cluster.KillAsync(primary);
        await cluster.WaitForPrimaryAsync(backup, Patience);
        await using RespClientConnection after = await RespClientConnection.ConnectAsync(backup.Address, Timeout());
        Assert.Equal("[\"42\", \"2\", \"3\"]", (await Send(after, "MGET", "a", "b", "c")).ToString());
    }

    [Fact]
    public async Task Watch_AbortsExec_WhenAnotherClientWroteTheKey_AndTheWriteOfTheLoserIsNotApplied()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer primary, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using RespClientConnection mine = await RespClientConnection.ConnectAsync(primary.Address, Timeout());
        await using RespClientConnection other = await RespClientConnection.ConnectAsync(primary.Address, Timeout());
        await Send(mine, "SET", "balance", "10");
        Assert.Equal("OK", (await Send(mine, "WATCH", "balance", "absent")).Text);
        Assert.Equal(11, (await Send(other, "INCR", "balance")).Integer);
        await Send(mine, "MULTI");
        await Send(mine, "DECRBY", "balance", "5");
        Assert.True((await Send(mine, "EXEC")).IsNull);
        Assert.Equal("11", (await Send(mine, "GET", "balance")).Text);

        // Unchanged keys (a key that stays absent included): the transaction goes through.
        Assert.Equal("OK", (await Send(mine, "WATCH", "balance", "absent")).Text);
        await Send(mine, "MULTI");
        await Send(mine, "DECRBY", "balance", "5");
        Assert.Equal("[:6]", (await Send(mine, "EXEC")).ToString());
    }

    [Fact]
    public async Task Scan_ReturnsEveryKeyPresentThroughout_WhileTheTableGrowsAndShrinks()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer primary, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using RespClientConnection conn = await RespClientConnection.ConnectAsync(primary.Address, Timeout());
        var keep = new HashSet<string>();
        for (int i = 0; i < 600; i += 100)
        {
            var mset = new List<string> { "MSET" };
            for (int j = i; j < i + 100; j++)
            {
                mset.Add($"keep:{j}");
                mset.Add("v");
                keep.Add($"keep:{j}");
            }
            await Send(conn, [.. mset]);
        }
        var seen = new HashSet<string>();
        string cursor = "0";
        int step = 0;
        do
        {
            RespValue reply = await Send(conn, "SCAN", cursor, "COUNT", "7");
            cursor = reply.Items![0].Text;
            foreach (RespValue key in reply.Items[1].Items!) seen.Add(key.Text);
            // Between steps the table doubles twice (new keys), then halves (they go again).
            if (step == 5) for (int j = 0; j < 2000; j += 500) await Send(conn, [.. Enumerable.Range(j, 500).SelectMany(n => new[] { $"extra:{n}", "x" }).Prepend("MSET")]);
            if (step == 40) await Send(conn, [.. Enumerable.Range(0, 2000).Select(n => $"extra:{n}").Prepend("DEL")]);
            step++;
        }
        while (cursor != "0" && step < 100_000);
        Assert.Equal("0", cursor);
        Assert.Empty(keep.Except(seen));
        RespValue matched = await Send(conn, "SCAN", "0", "MATCH", "keep:1?", "COUNT", "100000");
        Assert.Equal(10, matched.Items![1].Items!.Length);
    }

    [Fact]
    public async Task AnExactlyOnceIncrement_RetriedWithTheSameRequestNumber_CountsOnce()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer primary, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using RespClientConnection conn = await RespClientConnection.ConnectAsync(primary.Address, Timeout());
        long client = (await Send(conn, "XCLIENT")).Integer;
        string id = client.ToString();
        Assert.Equal(1, (await Send(conn, "XREQ", id, "1", "0", "INCR", "n")).Integer);
        Assert.Equal(1, (await Send(conn, "XREQ", id, "1", "0", "INCR", "n")).Integer); // the reply saved, not a second increment
        Assert.Equal("[+OK, :11]", (await Send(conn, "XREQ", id, "2", "1", "EXEC", "3", "SET", "m", "10", "2", "INCR", "m")).ToString());
        Assert.Equal("[+OK, :11]", (await Send(conn, "XREQ", id, "2", "1", "EXEC", "3", "SET", "m", "10", "2", "INCR", "m")).ToString());
        Assert.Equal("1", (await Send(conn, "GET", "n")).Text);
        Assert.Equal("11", (await Send(conn, "GET", "m")).Text);
        Assert.StartsWith("ERR", (await Send(conn, "XREQ", id, "3", "2", "GET", "n")).Text);
    }

    [Fact]
    public async Task AWriteOverTheLimits_OrAMalformedTransaction_IsRefusedAndChangesNothing()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions
        {
            ConfigureServer = o => o with { MaxValueBytes = 64, MaxKeyBytes = 16 },
        });
        (TestServer primary, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using RespClientConnection conn = await RespClientConnection.ConnectAsync(primary.Address, Timeout());
        long before = primary.Node!.Replica.LastApplied;
        Assert.StartsWith("ERR key is", (await Send(conn, "MSET", "ok", "1", new string('k', 17), "2")).Text);
        Assert.StartsWith("ERR value is", (await Send(conn, "SET", "ok", new string('v', 65))).Text);
        Assert.Equal(64, (await Send(conn, "SETRANGE", "r", "60", "abcd")).Integer);
        Assert.Equal("ERR string exceeds maximum allowed size (proto-max-bulk-len)", (await Send(conn, "APPEND", "r", "x")).Text);
        Assert.Equal("ERR string exceeds maximum allowed size (proto-max-bulk-len)", (await Send(conn, "SETBIT", "r", "1000", "1")).Text);
        long client = (await Send(conn, "XCLIENT")).Integer;
        Assert.StartsWith("ERR", (await Send(conn, "XREQ", client.ToString(), "1", "0", "EXEC", "9", "SET", "a")).Text);
        Assert.Equal(0, (await Send(conn, "EXISTS", "ok", "a")).Integer);
        Assert.Equal(64, Encoding.UTF8.GetByteCount((await Send(conn, "GET", "r")).Text));
        Assert.True(primary.Node!.Replica.LastApplied <= before + 4);
    }

    [Fact]
    public async Task AnExecWithAPingInside_PipelinedWithHeldReplies_AnswersTheWholeBatchInOrder()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer primary, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        // One batch: writes whose replies wait for the backup on both sides of an EXEC that holds a PING.
        string[][] batch =
        [
            ["SET", "before", "1"], ["MULTI"], ["PING"], ["INCR", "n"], ["ECHO", "e"], ["EXEC"], ["SET", "after", "2"], ["GET", "before"], ["INCR", "n"],
        ];
        var frame = new System.Buffers.ArrayBufferWriter<byte>();
        foreach (string[] command in batch) RespWriter.WriteCommand(frame, command);
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(primary.EndPoint, TestContext.Current.CancellationToken);
        System.Net.Sockets.NetworkStream stream = tcp.GetStream();
        await stream.WriteAsync(frame.WrittenMemory, TestContext.Current.CancellationToken);
        var replies = new List<RespValue>();
        var buffer = new byte[64 * 1024];
        int held = 0;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(Patience);
        while (replies.Count < batch.Length)
        {
            int n = await stream.ReadAsync(buffer.AsMemory(held), timeout.Token);
            Assert.True(n > 0, $"the connection closed after {replies.Count} of {batch.Length} replies");
            held += n;
            var seq = new System.Buffers.ReadOnlySequence<byte>(buffer, 0, held);
            replies.Clear();
            while (RespReader.TryReadValue(ref seq, RespLimits.Default, out RespValue? v)) replies.Add(v!);
        }
        Assert.Equal("+OK|+OK|+QUEUED|+QUEUED|+QUEUED|[+PONG, :1, \"e\"]|+OK|\"1\"|:2", string.Join('|', replies.Select(r => r.ToString())));
    }

    [Fact]
    public async Task AnErrorQuotesAtMost128BytesOfAnArgument()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer primary, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await using RespClientConnection conn = await RespClientConnection.ConnectAsync(primary.Address, Timeout());
        await Send(conn, "SET", "k", "v");
        string option = new('o', 100_000);
        Assert.Equal("ERR Unsupported option " + new string('o', 128), (await Send(conn, "EXPIRE", "k", "10", option)).Text);
        Assert.Equal($"ERR unknown type name '{new string('o', 128)}'", (await Send(conn, "SCAN", "0", "TYPE", option)).Text);
        Assert.Equal("v", (await Send(conn, "GET", "k")).Text);
    }
}
