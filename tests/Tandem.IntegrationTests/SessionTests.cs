using Tandem.Client;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Storage;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>Exactly-once when the duplicate table has to forget sessions (design-notes section 10).</summary>
public class SessionTests
{
    private static readonly DuplicateTableOptions SmallTable = new() { MaxClients = 8 };

    [Fact]
    public async Task RetryAfterItsSessionWasEvicted_IsRefused_NotAppliedTwice()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Duplicates = SmallTable });
        (TestServer s1, _) = await cluster.StartPrimaryAndBackupAsync(Patience);

        RespValue first = await SendAsync(s1.Address, "XREQ", "777", "1", "0", "APPEND", "once", "x");
        Assert.Equal(1, first.Integer);
        for (int c = 0; c < 20; c++)
            Assert.False((await SendAsync(s1.Address, "XREQ", (1000 + c).ToString(), "1", "0", "SET", $"k{c}", "v")).IsError);

        RespValue retried = await SendAsync(s1.Address, "XREQ", "777", "1", "0", "APPEND", "once", "x");
        Assert.True(retried.IsError, $"the retry of an evicted session was answered {retried}");
        Assert.Equal(ErrorCodes.NoSession, retried.ErrorCode);
        Assert.Equal("x", (await SendAsync(s1.Address, "GET", "once")).Text);

        string info = (await SendAsync(s1.Address, "INFO")).Text;
        long floor = long.Parse(info.Split("\r\n").Single(l => l.StartsWith("tandem_session_floor:"))["tandem_session_floor:".Length..]);
        Assert.InRange(floor, 777, 1019);
    }

    [Fact]
    public async Task DroppedSession_StaysRefusedAfterFailover_BothThroughTheSnapshotAndTheStream()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Duplicates = SmallTable });
        TestServer s1 = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(s1, Patience);

        // Dropped while s1 is alone: the floor reaches the backup in the snapshot.
        Assert.Equal(1, (await SendAsync(s1.Address, "XREQ", "777", "1", "0", "APPEND", "once", "x")).Integer);
        await FillAsync(s1, 1000);
        TestServer s2 = await cluster.StartServerAsync();
        await cluster.WaitForBackupAsync(s2, Patience);

        // Dropped with the backup in place: the floor rises on both copies by applying the same writes.
        Assert.Equal(1, (await SendAsync(s1.Address, "XREQ", "5000", "1", "0", "APPEND", "twice", "y")).Integer);
        await FillAsync(s1, 6000);

        await cluster.KillAsync(s1);
        await cluster.WaitForPrimaryAsync(s2, Patience);
        Assert.Equal(ErrorCodes.NoSession, (await SendAsync(s2.Address, "XREQ", "777", "1", "0", "APPEND", "once", "x")).ErrorCode);
        Assert.Equal(ErrorCodes.NoSession, (await SendAsync(s2.Address, "XREQ", "5000", "1", "0", "APPEND", "twice", "y")).ErrorCode);
        Assert.Equal("x", (await SendAsync(s2.Address, "GET", "once")).Text);
        Assert.Equal("y", (await SendAsync(s2.Address, "GET", "twice")).Text);
        Assert.True((await SendAsync(s2.Address, "XCLIENT")).Integer > 6019, "an issued id is above every id seen");
    }

    [Fact]
    public async Task Client_RetryOfAWriteWhoseSessionWasDropped_ThrowsSessionExpired_ThenReRegisters()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Duplicates = SmallTable });
        (TestServer s1, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        TandemClient client = cluster.CreateClient();
        await client.PutAsync("warm", "up", Timeout());
        long firstId = client.ClientId;

        // The client's APPEND is applied but its reply is lost; its retries are held back until other clients
        // have pushed its session out of the table.
        var retrying = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int attempts = 0;
        s1.Faults.Rule = cmd =>
        {
            if (cmd.Name != Commands.ExactlyOnce || cmd.Count < 6 || cmd.Text(4) != "APPEND" || cmd.Text(5) != "once") return null;
            if (Interlocked.Increment(ref attempts) == 1) return Delivery.LoseReply;
            retrying.TrySetResult();
            return release.Task.IsCompleted ? null : Delivery.Drop;
        };
        Task<long> append = client.AppendAsync("once", "x", Timeout());
        await retrying.Task.WaitAsync(Timeout());
        await FillAsync(s1, 1_000_000);
        release.SetResult();

        var e = await Assert.ThrowsAsync<TandemSessionExpiredException>(() => append);
        Assert.Contains("unknown", e.Message);
        Assert.Equal("x", await client.GetAsync("once", Timeout()));

        // The next write needs no help: the client registers a new id above the floor.
        Assert.Equal(2, await client.AppendAsync("once", "y", Timeout()));
        Assert.True(client.ClientId > 1_000_000, $"new id {client.ClientId} (first was {firstId})");
        Assert.Equal("xy", await client.GetAsync("once", Timeout()));
    }

    [Fact]
    public async Task Client_IdleWhileItsSessionIsDropped_NextWriteReRegistersTransparently()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Duplicates = SmallTable });
        (TestServer s1, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        TandemClient client = cluster.CreateClient();
        Assert.Equal(1, await client.AppendAsync("k", "a", Timeout()));
        long firstId = client.ClientId;

        await FillAsync(s1, 1000);
        Assert.Equal(ErrorCodes.NoSession, (await SendAsync(s1.Address, "XREQ", firstId.ToString(), "2", "1", "SET", "probe", "v")).ErrorCode);

        Assert.Equal(2, await client.AppendAsync("k", "b", Timeout()));
        Assert.NotEqual(firstId, client.ClientId);
        Assert.Equal("ab", await client.GetAsync("k", Timeout()));
    }

    [Fact]
    public async Task BrandNewClients_AreNeverRefused_ByAFullTable()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Duplicates = SmallTable });
        (TestServer s1, _) = await cluster.StartPrimaryAndBackupAsync(Patience);
        await FillAsync(s1, 1000);

        // Each new client registers while the table is full and pushes older sessions out.
        for (int c = 0; c < 20; c++)
        {
            TandemClient client = cluster.CreateClient();
            Assert.Equal("", await client.PutHashAsync($"new{c}", "v", Timeout()));
        }
        TandemClient reader = cluster.CreateClient();
        for (int c = 0; c < 20; c++) await CheckAsync(reader, $"new{c}", KeyValueScenarioTests.Fnv("", "v"));
    }

    [Fact]
    public async Task LargeSavedReplies_CrossTheSnapshotInByteSizedChunks_AndSurviveFailover()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TestServer s1 = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(s1, Patience);

        // One session holding about 2.4 MiB of saved replies: it must be cut across DUPS chunks.
        string big = new('v', 600_000);
        for (int i = 1; i <= 4; i++)
        {
            await SendAsync(s1.Address, "SET", $"big{i}", big + i);
            Assert.Equal(big + i, (await SendAsync(s1.Address, "XREQ", "77", i.ToString(), "0", "PUTHASH", $"big{i}", "x")).Text);
        }
        TestServer s2 = await cluster.StartServerAsync();
        await cluster.WaitForBackupAsync(s2, Patience);
        await cluster.KillAsync(s1);
        await cluster.WaitForPrimaryAsync(s2, Patience);

        for (int i = 1; i <= 4; i++)
        {
            Assert.Equal(big + i, (await SendAsync(s2.Address, "XREQ", "77", i.ToString(), "0", "PUTHASH", $"big{i}", "x")).Text);
            Assert.Equal(KeyValueScenarioTests.Fnv(big + i, "x"), (await SendAsync(s2.Address, "GET", $"big{i}")).Text);
        }
    }

    // Twenty one-write clients with ids from firstId: more than the table keeps.
    private static async Task FillAsync(TestServer primary, long firstId)
    {
        for (long c = firstId; c < firstId + 20; c++)
        {
            RespValue reply = await SendAsync(primary.Address, "XREQ", c.ToString(), "1", "0", "SET", $"fill{c}", "v");
            Assert.False(reply.IsError, reply.ToString());
        }
    }
}
