using System.Diagnostics;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Server;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>
/// Interleavings that used to lose safety or liveness, each forced with a named fault point rather than
/// hoped for: reads confirmed by a batch that lacks their write, a new backup that dies during its transfer,
/// a backup that stops answering while it still pings the coordinator, and a backlog that grew without bound.
/// </summary>
public class FaultToleranceTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;

    [Fact]
    public async Task Read_ConfirmedByABatchWithoutItsWrite_IsNotAnsweredUntilThatWriteIsOnTheBackup()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions
        {
            // The test holds the stream while it sets the interleaving up, which on a loaded machine took longer
            // than the default 2 s a write waits for its backup: W1 then timed out before its batch was let go.
            ConfigureServer = o => o with { CommitTimeout = Patience },
        });
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        Assert.Equal("OK", (await SendAsync(p.Address, "SET", "k", "old")).Text);
        long before = p.Node!.Replica.LastApplied;

        await using RespClientConnection writer = await RespClientConnection.ConnectAsync(p.Address, Timeout());
        await using RespClientConnection reader = await RespClientConnection.ConnectAsync(p.Address, Timeout());
        Task<RespValue> read;
        using (FaultGate stream = p.Faults.Hold(FaultPoint.BeforeBatch))
        {
            // W1 is larger than one batch may carry, so W2 goes in the next batch.
            Task<RespValue> w1 = writer.SendAsync(Timeout(), "SET", "big", new string('x', 5 * MiB));
            Task<RespValue> w2 = writer.SendAsync(Timeout(), "SET", "k", "new");
            await Wait.UntilAsync(() => p.Node!.Replica.LastApplied == before + 2 && stream.Waiting == 1, Patience,
                "both writes applied on the primary and the stream held");

            int registered = p.Faults.Hits(FaultPoint.ReadRegistered);
            read = reader.SendAsync(Timeout(), "GET", "k"); // reads "new", which is not on the backup yet
            await p.Faults.WaitForHitsAsync(FaultPoint.ReadRegistered, registered + 1, Patience);

            stream.Release(1); // one batch goes: W1 and the read's confirmation; W2 stays on the primary
            Assert.Equal("OK", (await w1).Text);
            await Wait.UntilAsync(() => stream.Waiting == 1, Patience, "the stream held again before W2");
            await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken));
            RespValue? early = read.IsCompletedSuccessfully ? await read : null;
            Assert.False(early?.Text == "new", "the primary answered a value whose write its backup does not have");
            Assert.Equal(before + 1, b.Node!.Replica.LastApplied);

            // The primary dies before W2 reaches the backup: W2 is lost, and no one was told it happened.
            await cluster.KillAsync(p);
            RespValue? w2Reply = await w2.ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null);
            Assert.NotEqual("OK", w2Reply?.Text);
        }
        RespValue? answered = await read.ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null);
        Assert.NotEqual("new", answered?.Text);
        await cluster.WaitForPrimaryAsync(b, Patience);
        Assert.Equal("old", (await SendAsync(b.Address, "GET", "k")).Text);
    }

    [Fact]
    public async Task PipelinedWrite_IsAnsweredOnceCommitted_NotAfterTheWritesBehindIt()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions
        {
            ConfigureServer = o => o with { CommitTimeout = Patience }, // W2 waits as long as the test holds it
        });
        (TestServer p, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        long before = p.Node!.Replica.LastApplied;
        await using RespClientConnection writer = await RespClientConnection.ConnectAsync(p.Address, Timeout());
        Task<RespValue> w2;
        using (FaultGate stream = p.Faults.Hold(FaultPoint.BeforeBatch))
        {
            // One batch of the connection's input: W1 is larger than one forwarded batch may carry, so W2 goes in
            // the next one, which the test holds.
            Task<RespValue> w1 = writer.SendAsync(Timeout(), "SET", "big", new string('x', 5 * MiB));
            w2 = writer.SendAsync(Timeout(), "SET", "k", "v");
            await Wait.UntilAsync(() => p.Node.Replica.LastApplied == before + 2 && stream.Waiting == 1, Patience,
                "both writes applied on the primary and the stream held");
            stream.Release(1);

            // W1 is on the backup: its reply goes out now, while W2 still waits.
            RespValue first = await w1.WaitAsync(Patience / 2, TestContext.Current.CancellationToken);
            Assert.Equal("OK", first.Text);
            Assert.False(w2.IsCompleted);
        }
        Assert.Equal("OK", (await w2).Text);
    }

    [Fact]
    public async Task NewBackup_KilledDuringItsTransfer_DoesNotWedge_TheIdleServerBecomesTheSyncedBackup()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await FillAsync(p.Address, keys: 5000); // several snapshot chunks
        TestServer spare = await cluster.StartServerAsync();

        FaultGate stall = p.Faults.Hold(FaultPoint.SnapshotChunk);
        await cluster.KillAsync(b);
        await cluster.WaitForViewAsync(v => v.Backup == spare.Address, Patience, "the spare named backup");
        await Wait.UntilAsync(() => stall.Waiting == 1, Patience, "the transfer to the spare stalled after BEGIN");
        Assert.False(cluster.Coordinator.ViewService.PrimaryAcked);

        TestServer fresh = await cluster.StartServerAsync();
        await cluster.KillAsync(spare); // for good, mid-transfer
        var since = Stopwatch.StartNew();
        stall.Dispose();

        await PutUntilOkAsync(p.Address, "after", "1");
        output.WriteLine($"first write accepted {since.ElapsedMilliseconds} ms after the new backup died");
        await cluster.WaitForBackupAsync(fresh, Patience);
        output.WriteLine($"the idle server synced {since.ElapsedMilliseconds} ms after the new backup died");
        Assert.Equal(p.Address, cluster.View.Primary);

        // The fresh backup holds everything: it serves it all once the primary is gone.
        await cluster.KillAsync(p);
        await cluster.WaitForPrimaryAsync(fresh, Patience);
        Assert.Equal(5001, fresh.Node!.Replica.KeyCount);
        Assert.Equal("1", (await SendAsync(fresh.Address, "GET", "after")).Text);
        Assert.Equal("v4999", (await SendAsync(fresh.Address, "GET", "k4999")).Text);
    }

    [Fact]
    public async Task Backup_ThatStopsAnswering_IsReplaced_AndWritesResumeDuringTheCut()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        long viewBefore = cluster.View.Number;

        // The backup still pings the coordinator but never answers its primary (both directions cut).
        using FaultGate cut = b.Faults.Hold(FaultPoint.BackupReceive);
        var since = Stopwatch.StartNew();
        await PutUntilOkAsync(p.Address, "k", "during the cut");
        output.WriteLine($"first write accepted {since.ElapsedMilliseconds} ms after the cut");
        Assert.True(cut.Waiting > 0, "the cut was still in place");

        View view = cluster.View;
        Assert.Equal(p.Address, view.Primary);
        Assert.NotEqual(b.Address, view.Backup);
        Assert.True(view.Number > viewBefore);
        Assert.Equal("during the cut", (await SendAsync(p.Address, "GET", "k")).Text);
    }

    [Fact]
    public async Task Backlog_ForABackupThatIsBehind_IsBounded_AndWritesPastItAreRefusedUnapplied()
    {
        const long budget = 8 * MiB;
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions
        {
            // A long backup timeout keeps the stalled backup in the view for the whole test.
            ConfigureServer = o => o with { MaxBacklogBytes = budget, BackupTimeout = TimeSpan.FromMinutes(2) },
        });
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        long before = p.Node!.Replica.LastApplied;

        await using RespClientConnection conn = await RespClientConnection.ConnectAsync(p.Address, Timeout());
        RespValue[] replies;
        using (b.Faults.Hold(FaultPoint.BackupReceive))
        {
            string value = new('v', MiB);
            replies = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => conn.SendAsync(Timeout(), "SET", $"k{i}", value)));
            Assert.InRange(p.Node.Replica.BacklogBytes, 1, budget);
        }
        string[] refused = replies.Where(r => r.IsError && r.Text.Contains("not applied", StringComparison.Ordinal)).Select(r => r.Text).ToArray();
        Assert.InRange(refused.Length, 10, 20);
        Assert.All(refused, text => Assert.StartsWith(ErrorCodes.TryAgain, text, StringComparison.Ordinal));
        Assert.InRange(p.Node.Replica.LastApplied - before, 1, 20 - refused.Length);

        // Once the backup answers again the backlog drains.
        await Wait.UntilAsync(() => p.Node.Replica.BacklogBytes == 0 && b.Node!.Replica.LastApplied == p.Node.Replica.LastApplied,
            Patience, "the backlog to drain");
    }

    [Fact]
    public async Task OnlyCopy_GoesOnAnswering_WhileItsNewBackupSyncs_AndTheBackupGetsEveryAnsweredWrite()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TestServer p = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(p, Patience); // p alone, its view acknowledged
        await FillAsync(p.Address, keys: 5000); // several snapshot chunks
        await PutUntilOkAsync(p.Address, "k", "before");

        TestServer n;
        using (FaultGate stall = p.Faults.Hold(FaultPoint.SnapshotChunk))
        {
            n = await cluster.StartServerAsync();
            await cluster.WaitForViewAsync(v => v.Primary == p.Address && v.Backup == n.Address, Patience, "n named backup");
            await Wait.UntilAsync(() => stall.Waiting == 1, Patience, "the transfer to n stalled");

            // The last acknowledged view has p alone: no other server can ever be turned to, so p answers at once.
            Assert.Equal("OK", (await SendAsync(p.Address, "SET", "k", "during")).Text);
            Assert.Equal("during", (await SendAsync(p.Address, "GET", "k")).Text);
            Assert.False(cluster.Coordinator.ViewService.PrimaryAcked);
            Assert.Equal(0, n.Node!.Replica.LastApplied); // n has installed nothing yet
        }

        // The view is acknowledged only once n holds every write p answered on its own.
        await cluster.WaitForSyncedPairAsync(Patience);
        await cluster.KillAsync(p);
        await cluster.WaitForPrimaryAsync(n, Patience);
        Assert.Equal("during", (await SendAsync(n.Address, "GET", "k")).Text);
    }

    [Fact]
    public async Task PrimaryOfAnUnackedView_Dies_TheClusterFallsBackToAServerOfTheLastAckedView()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await PutUntilOkAsync(p.Address, "k", "acked in the first view");
        TestServer spare = await cluster.StartServerAsync();

        // p falls silent to the coordinator: b is promoted, and its transfer to the spare stalls.
        using (FaultGate stall = b.Faults.Hold(FaultPoint.SnapshotChunk))
        {
            cluster.IsolateFromCoordinator(p);
            await cluster.WaitForViewAsync(v => v.Primary == b.Address && v.Backup == spare.Address, Patience, "b promoted with the spare");
            await Wait.UntilAsync(() => stall.Waiting == 1, Patience, "b's transfer to the spare stalled");
            Assert.False(cluster.Coordinator.ViewService.PrimaryAcked);

            // b dies before it acknowledges its view; p, which still holds the last acknowledged view, returns.
            await cluster.KillAsync(b);
            cluster.IsolateFromCoordinator(p, isolated: false);
        }

        await cluster.WaitForPrimaryAsync(p, Patience); // the fallback
        await PutUntilOkAsync(p.Address, "k2", "after the fallback");
        Assert.Equal("acked in the first view", (await SendAsync(p.Address, "GET", "k")).Text);
        await cluster.WaitForBackupAsync(spare, Patience);
    }

    [Fact]
    public async Task RestartedPrimary_ChosenAsTheNextBackup_CostsOneViewChange()
    {
        // A long dead time, so the restart is seen as a restart (ping 0), never as a death first.
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { DeadPings = 30 });
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        long number = cluster.View.Number;

        await cluster.RestartAsync(p);
        await cluster.WaitForBackupAsync(p, Patience);
        Assert.Equal(new View(number + 1, b.Address, p.Address), cluster.View);
        // A second change, if any, would follow within a tick or two of the ack; watch for ten.
        await Task.Delay(cluster.Options.PingInterval * 10, TestContext.Current.CancellationToken);
        Assert.Equal(new View(number + 1, b.Address, p.Address), cluster.View);
    }

    [Fact]
    public async Task ForwardedBatch_WhoseAcknowledgementIsLost_IsResumed_WithoutANewStateTransfer()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer p, TestServer b, View view) = await SyncedPairWithOneWriteAsync(cluster);

        // The backup applies the next forwarded batch, but its reply is lost and the stream's connection closes.
        int lost = 0, snapshots = 0;
        b.Faults.Rule = cmd =>
        {
            if (cmd.Name == Commands.ReplSnapshot && cmd.Text(4) == "BEGIN") Interlocked.Increment(ref snapshots);
            return cmd.Name == Commands.ReplApply && Interlocked.Exchange(ref lost, 1) == 0 ? Delivery.LoseReply : null;
        };
        Assert.Equal("OK", (await SendAsync(p.Address, "SET", "b", "2")).Text);
        Assert.Equal("OK", (await SendAsync(p.Address, "SET", "c", "3")).Text);

        Assert.Equal(1, Volatile.Read(ref lost));
        Assert.Equal(0, Volatile.Read(ref snapshots)); // the backup got only what it lacked
        Assert.Equal(view, cluster.View);
        Assert.Equal(p.Node!.Replica.LastApplied, b.Node!.Replica.LastApplied);
        Assert.Equal("2", (await SendAsync(p.Address, "GET", "b")).Text);
    }

    [Fact]
    public async Task SnapshotEnd_WhoseReplyIsLost_IsNotSentAgain_TheStreamResumesAfterIt()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TestServer p = await PrimaryWithKeysAsync(cluster, 100);
        // The backup installs the snapshot; the primary never hears it.
        (TestServer b, SnapshotParts parts) = await NewServerLosingSnapshotPartsAsync(cluster,
            (part, arrival) => part == "END" && arrival == 1 ? Delivery.LoseReply : null);
        await SyncedFromOneSnapshotAsync(cluster, p, b, parts, keys: 101);
        Assert.Equal(1, parts.Arrived("END"));
    }

    [Fact]
    public async Task SnapshotChunks_LostOnTheWay_AreSentAgain_WithoutANewSnapshot()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TestServer p = await PrimaryWithKeysAsync(cluster, 3000); // three chunks of entries
        // The second chunk that arrives is lost unprocessed; the fourth is applied, but its reply is lost. Each
        // breaks the connection.
        (TestServer b, SnapshotParts parts) = await NewServerLosingSnapshotPartsAsync(cluster,
            (part, arrival) => part != "ENTRIES" ? null : arrival switch { 2 => Delivery.Drop, 4 => Delivery.LoseReply, _ => null });
        await SyncedFromOneSnapshotAsync(cluster, p, b, parts, keys: 3001);
        Assert.True(parts.Arrived("ENTRIES") >= 4, $"only {parts.Arrived("ENTRIES")} chunks arrived");
    }

    [Fact]
    public async Task Writes_AppliedDuringATransferThatBreaks_ReachTheBackup_AfterTheTransferResumes()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TestServer p = await PrimaryWithKeysAsync(cluster, 3000);
        long snapshotAt = p.Node!.Replica.LastApplied;
        Task<RespValue> during;
        TestServer b;
        SnapshotParts parts;
        using (FaultGate transfer = p.Faults.Hold(FaultPoint.SnapshotChunk))
        {
            (b, parts) = await NewServerLosingSnapshotPartsAsync(cluster,
                (part, arrival) => part == "ENTRIES" && arrival == 2 ? Delivery.Drop : null);
            // The snapshot is taken and BEGIN sent; the first chunk waits. A write now is applied on the primary
            // after the snapshot, so only the stream can bring it to the backup.
            await p.Faults.WaitForHitsAsync(FaultPoint.SnapshotChunk, 1, Patience);
            during = SendAsync(p.Address, "SET", "during", "x");
            await Wait.UntilAsync(() => p.Node.Replica.LastApplied == snapshotAt + 1, Patience, "the write applied on the primary");
        }
        await SyncedFromOneSnapshotAsync(cluster, p, b, parts, keys: 3002); // with "during" and "after"
        Assert.Equal("OK", (await during).Text);
        Assert.True(parts.Arrived("ENTRIES") >= 4, $"only {parts.Arrived("ENTRIES")} chunks arrived"); // three, and the lost one again
    }

    /// <summary>
    /// Waits for <paramref name="b"/> to be <paramref name="p"/>'s synced backup, writes once more through the stream,
    /// and checks that one snapshot (one <c>BEGIN</c>) brought it all: both hold every write and <paramref name="keys"/> keys.
    /// </summary>
    private static async Task SyncedFromOneSnapshotAsync(TestCluster cluster, TestServer p, TestServer b, SnapshotParts parts, int keys)
    {
        await cluster.WaitForBackupAsync(b, Patience);
        Assert.Equal("OK", (await SendAsync(p.Address, "SET", "after", "x")).Text);
        Assert.Equal(1, parts.Arrived("BEGIN"));
        Assert.Equal(p.Node!.Replica.LastApplied, b.Node!.Replica.LastApplied);
        Assert.Equal(keys, b.Node.Replica.KeyCount);
    }

    /// <summary>The serving primary of <paramref name="cluster"/>, alone, holding <paramref name="keys"/> keys.</summary>
    private static async Task<TestServer> PrimaryWithKeysAsync(TestCluster cluster, int keys)
    {
        TestServer p = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(p, Patience);
        await FillAsync(p.Address, keys);
        return p;
    }

    /// <summary>
    /// Starts a server (the primary's next backup) whose snapshot messages meet <paramref name="fate"/>: given the
    /// part (<c>BEGIN</c>, <c>ENTRIES</c>, ...) and how many of that part have arrived, this one included, its fate
    /// or null to deliver it. Counts what arrives.
    /// </summary>
    private static async Task<(TestServer Server, SnapshotParts Parts)> NewServerLosingSnapshotPartsAsync(
        TestCluster cluster, Func<string, int, Delivery?> fate)
    {
        var parts = new SnapshotParts();
        TestServer b = await cluster.StartServerAsync(faults =>
            faults.Rule = cmd => cmd.Name == Commands.ReplSnapshot ? fate(cmd.Text(4), parts.Arrive(cmd.Text(4))) : null);
        return (b, parts);
    }

    /// <summary>How many of each snapshot part reached a server.</summary>
    private sealed class SnapshotParts
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _arrived = new();
        public int Arrive(string part) => _arrived.AddOrUpdate(part, 1, (_, n) => n + 1);
        public int Arrived(string part) => _arrived.GetValueOrDefault(part);
    }

    [Fact]
    public async Task Backup_ThatLosesEverySecondReplicationReply_IsNotReportedUnreachable_AndWritesGoOn()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        (TestServer p, TestServer b, View view) = await SyncedPairWithOneWriteAsync(cluster);

        // Every second replication message reaches the backup and is applied, but its reply is lost (the
        // connection closes): the backup is alive and reachable, only lossy. For twice the backup timeout.
        int messages = 0;
        b.Faults.Rule = cmd =>
            cmd.Name is Commands.ReplSnapshot or Commands.ReplApply && Interlocked.Increment(ref messages) % 2 == 0 ? Delivery.LoseReply : null;
        var lossy = Stopwatch.StartNew();
        int writes = 0;
        await using (RespClientConnection conn = await RespClientConnection.ConnectAsync(p.Address, Timeout()))
        {
            while (lossy.Elapsed < TimeSpan.FromSeconds(2 * 1.5)) // the servers keep the default backup timeout, 1.5 s
            {
                RespValue reply = await conn.SendAsync(Timeout(), "SET", "a", (++writes).ToString());
                Assert.True(reply.Text == "OK", $"write {writes} after {lossy.Elapsed.TotalMilliseconds:0} ms: {reply}");
            }
        }
        b.Faults.Rule = null;

        Assert.True(Volatile.Read(ref messages) > 10, $"only {messages} replication messages in {lossy.Elapsed}");
        Assert.Null(p.Node!.Replica.UnreachableBackup);
        Assert.Equal(view, cluster.View);
        Assert.Equal(p.Node.Replica.LastApplied, b.Node!.Replica.LastApplied);
        output.WriteLine($"{writes} writes, {messages} replication messages, half of their replies lost");
    }

    /// <summary>A synced primary and backup that have committed one write (a=0), and their view.</summary>
    private static async Task<(TestServer Primary, TestServer Backup, View View)> SyncedPairWithOneWriteAsync(TestCluster cluster)
    {
        (TestServer p, TestServer b) = await cluster.StartPrimaryAndBackupAsync(Patience);
        Assert.Equal("OK", (await SendAsync(p.Address, "SET", "a", "0")).Text);
        return (p, b, cluster.View);
    }

    private static async Task FillAsync(string address, int keys)
    {
        await using RespClientConnection conn = await RespClientConnection.ConnectAsync(address, Timeout());
        RespValue[] replies = await Task.WhenAll(Enumerable.Range(0, keys).Select(i => conn.SendAsync(Timeout(), "SET", $"k{i}", $"v{i}")));
        Assert.All(replies, r => Assert.Equal("OK", r.Text));
    }

    /// <summary>Writes until the primary answers OK (TRYAGAIN means "not yet"); fails after the patience.</summary>
    private static async Task PutUntilOkAsync(string address, string key, string value)
    {
        DateTime deadline = DateTime.UtcNow + Patience;
        RespValue last;
        do
        {
            last = await SendAsync(address, "SET", key, value);
            if (last.Text == "OK") return;
            Assert.Equal(ErrorCodes.TryAgain, last.ErrorCode);
        }
        while (DateTime.UtcNow < deadline);
        Assert.Fail($"no write accepted within {Patience.TotalSeconds} s; last reply {last}");
    }
}
