using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Tandem.Client;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.UnitTests;

public class ClientRequestWindowTests
{
    [Fact]
    public void AckedThrough_BeforeAnyRequest_IsZero()
    {
        Assert.Equal(0, new RequestWindow().AckedThrough);
    }

    [Fact]
    public void AckedThrough_IsBelowTheOldestRequestStillInFlight()
    {
        var window = new RequestWindow();
        Assert.Equal(1, window.Begin());
        Assert.Equal(2, window.Begin());
        Assert.Equal(3, window.Begin());
        Assert.Equal(0, window.AckedThrough);

        window.Complete(2);
        Assert.Equal(0, window.AckedThrough);
        window.Complete(1);
        Assert.Equal(2, window.AckedThrough);
        window.Complete(3);
        Assert.Equal(3, window.AckedThrough);

        Assert.Equal(4, window.Begin());
        Assert.Equal(3, window.AckedThrough);
        Assert.Equal(1, window.InFlight);
    }

    [Fact]
    public void AckedThrough_IsAlwaysBelowTheRequestItIsSentWith()
    {
        var window = new RequestWindow();
        long first = window.Begin();
        window.Begin();
        window.Complete(first);
        long third = window.Begin();
        Assert.True(window.AckedThrough < third);
        Assert.Equal(1, window.AckedThrough);
    }

    [Fact]
    public async Task ConcurrentRequests_GetDistinctNumbers_AndEndFullyAcked()
    {
        var window = new RequestWindow();
        var seen = new ConcurrentDictionary<long, bool>();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            for (int i = 0; i < 1000; i++)
            {
                long seq = window.Begin();
                Assert.True(seen.TryAdd(seq, true));
                Assert.True(window.AckedThrough < seq);
                window.Complete(seq);
            }
        }, TestContext.Current.CancellationToken)));
        Assert.Equal(8000, seen.Count);
        Assert.Equal(8000, window.AckedThrough);
        Assert.Equal(0, window.InFlight);
    }
}

public class ClientOptionsTests
{
    [Fact]
    public void Defaults_MatchTheDocumentation()
    {
        var options = new TandemClientOptions();
        Assert.Equal("127.0.0.1:7000", options.Coordinator);
        Assert.Equal(TimeSpan.FromSeconds(1), options.AttemptTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(200), options.MaxBackoff);
        Assert.Null(options.OperationTimeout);
    }

    [Theory]
    [InlineData("nonsense")]
    [InlineData("host:")]
    [InlineData(":7000")]
    [InlineData("host:70000")]
    [InlineData("")]
    public void Coordinator_NotHostPort_Throws(string address)
    {
        Assert.Throws<ArgumentException>(() => new TandemClientOptions { Coordinator = address });
    }

    [Fact]
    public void Coordinator_HostNameOrIp_IsAccepted()
    {
        Assert.Equal("db.example:7000", new TandemClientOptions { Coordinator = "db.example:7000" }.Coordinator);
        Assert.Equal("[::1]:7000", new TandemClientOptions { Coordinator = "[::1]:7000" }.Coordinator);
    }

    [Fact]
    public void Timeouts_NotPositive_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TandemClientOptions { AttemptTimeout = TimeSpan.Zero });
        Assert.Throws<ArgumentOutOfRangeException>(() => new TandemClientOptions { MaxBackoff = TimeSpan.FromMilliseconds(-1) });
        Assert.Throws<ArgumentOutOfRangeException>(() => new TandemClientOptions { OperationTimeout = TimeSpan.Zero });
        Assert.Null(new TandemClientOptions { OperationTimeout = null }.OperationTimeout);
    }
}

/// <summary>TandemClient against a fake coordinator and a fake server on real loopback sockets.</summary>
public class ClientRetryTests
{
    [Fact]
    public async Task LostAndRefusedWrite_IsRetriedWithTheSameNumber()
    {
        await using var cluster = await FakeCluster.StartAsync();
        // First XREQ: connection dropped without a reply; second: NOTPRIMARY; then success.
        cluster.Server.Script.Enqueue(null);
        cluster.Server.Script.Enqueue(RespValue.Error("NOTPRIMARY try elsewhere"));
        await using var client = cluster.CreateClient();

        string old = await client.PutHashAsync("k", "v", TestContext.Current.CancellationToken);

        Assert.Equal("old:k", old);
        string[][] writes = cluster.Server.Received.Where(c => c[0] == "XREQ").ToArray();
        Assert.Equal(3, writes.Length);
        foreach (string[] w in writes)
        {
            Assert.Equal(["XREQ", client.ClientId.ToString(), "1", "0", "PUTHASH", "k", "v"], w);
        }
        Assert.True(cluster.Coordinator.ViewRequests >= 3, "the client asks the coordinator on start and after each failure");

        await client.PutAsync("k2", "v2", TestContext.Current.CancellationToken);
        Assert.Equal(["XREQ", client.ClientId.ToString(), "2", "1", "SET", "k2", "v2"], cluster.Server.Received.Last());
    }

    [Fact]
    public async Task Get_OfMissingKey_ReturnsEmptyString_AndIsSentPlain()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();

        Assert.Equal("", await client.GetAsync("missing", TestContext.Current.CancellationToken));
        Assert.Equal(["GET", "missing"], cluster.Server.Received.Single());
    }

    [Fact]
    public async Task Get_AfterTryAgain_Retries_AndKeepsTheCachedPrimaryOtherwise()
    {
        await using var cluster = await FakeCluster.StartAsync();
        cluster.Server.Script.Enqueue(RespValue.Error("TRYAGAIN backup unreachable"));
        await using var client = cluster.CreateClient();

        Assert.Equal("", await client.GetAsync("a", TestContext.Current.CancellationToken));
        // The retry stays with the primary; the coordinator is asked once on the side, in case it was deposed.
        Assert.InRange(cluster.Coordinator.ViewRequests, 1, 2);
        Assert.Equal("", await client.GetAsync("b", TestContext.Current.CancellationToken));
        Assert.InRange(cluster.Coordinator.ViewRequests, 1, 2);
    }

    [Fact]
    public async Task WriteReplies_AreDecoded()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();
        CancellationToken ct = TestContext.Current.CancellationToken;

        Assert.Equal(7, await client.AppendAsync("k", "abc", ct));
        Assert.True(await client.DeleteAsync("k", ct));
        View view = await client.GetViewAsync(ct);
        Assert.Equal(new View(1, cluster.Server.Address, ""), view);
    }

    [Fact]
    public async Task ErrReply_ThrowsTandemException_WithoutRetrying()
    {
        await using var cluster = await FakeCluster.StartAsync();
        cluster.Server.Script.Enqueue(RespValue.Error("ERR value too large"));
        await using var client = cluster.CreateClient();

        var e = await Assert.ThrowsAsync<TandemException>(() => client.PutAsync("k", "v", TestContext.Current.CancellationToken));
        Assert.Equal("ERR", e.Code);
        Assert.Contains("value too large", e.Message);
        Assert.Single(cluster.Server.Received);
    }

    [Fact]
    public async Task FirstWrite_RegistersAnId_OnceForConcurrentCalls()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();
        Assert.Equal(0, client.ClientId);

        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => client.PutAsync($"k{i}", "v", TestContext.Current.CancellationToken)));

        Assert.Equal(1, cluster.Server.Registrations);
        Assert.Equal(FakeServer.FirstId, client.ClientId);
        Assert.All(cluster.Server.Received, w => Assert.Equal(FakeServer.FirstId.ToString(), w[1]));
    }

    [Fact]
    public async Task NoSession_WhenNoAttemptCanHaveBeenApplied_RegistersAgainAndRenumbers()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();
        CancellationToken ct = TestContext.Current.CancellationToken;
        await client.PutAsync("a", "1", ct);
        await client.PutAsync("b", "2", ct);

        // Refused as not primary (not applied), then the session is gone: the call must still succeed, as request 1 of a new id.
        cluster.Server.Script.Enqueue(RespValue.Error("NOTPRIMARY try elsewhere"));
        cluster.Server.Script.Enqueue(RespValue.Error("NOSESSION client 41's session was dropped"));
        Assert.Equal("old:k", await client.PutHashAsync("k", "v", ct));

        string[][] writes = cluster.Server.Received.Where(c => c[0] == "XREQ").ToArray();
        Assert.Equal(["XREQ", "41", "3", "2", "PUTHASH", "k", "v"], writes[^3]);
        Assert.Equal(["XREQ", "41", "3", "2", "PUTHASH", "k", "v"], writes[^2]);
        Assert.Equal(["XREQ", "42", "1", "0", "PUTHASH", "k", "v"], writes[^1]);
        Assert.Equal(42, client.ClientId);
        await client.PutAsync("c", "3", ct);
        Assert.Equal(["XREQ", "42", "2", "1", "SET", "c", "3"], cluster.Server.Received.Last());
    }

    [Fact]
    public async Task NoSession_AfterAnAttemptThatMayHaveBeenApplied_ThrowsSessionExpired()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();
        CancellationToken ct = TestContext.Current.CancellationToken;

        cluster.Server.Script.Enqueue(null); // the connection drops: the request may have been applied
        cluster.Server.Script.Enqueue(RespValue.Error("NOSESSION client 41's session was dropped"));
        var e = await Assert.ThrowsAsync<TandemSessionExpiredException>(() => client.AppendAsync("k", "v", ct));
        Assert.Equal(ErrorCodes.NoSession, e.Code);
        Assert.Contains("unknown", e.Message);
        Assert.Equal(2, cluster.Server.Received.Count);

        // The next call works, under a new id.
        Assert.Equal(7, await client.AppendAsync("k", "w", ct));
        Assert.Equal(["XREQ", "42", "1", "0", "APPEND", "k", "w"], cluster.Server.Received.Last());
    }

    [Fact]
    public async Task NoSession_AfterTryAgain_ThrowsSessionExpired()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();

        cluster.Server.Script.Enqueue(RespValue.Error("TRYAGAIN the backup did not confirm"));
        cluster.Server.Script.Enqueue(RespValue.Error("NOSESSION client 41's session was dropped"));
        await Assert.ThrowsAsync<TandemSessionExpiredException>(() => client.DeleteAsync("k", TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task NoPrimary_TimesOut_SayingWhatItWaitedFor()
    {
        await using var cluster = await FakeCluster.StartAsync();
        cluster.Coordinator.NoPrimary = true;
        await using var client = cluster.CreateClient(TimeSpan.FromMilliseconds(300));

        var e = await Assert.ThrowsAsync<TimeoutException>(() => client.GetAsync("k", TestContext.Current.CancellationToken));
        Assert.Equal($"timed out after 300ms waiting for a primary (coordinator {cluster.Coordinator.Address})", e.Message);
        Assert.True(cluster.Coordinator.ViewRequests > 1, "a view without a primary is asked again");
    }

    [Fact]
    public async Task CallerCancellation_ThrowsOperationCanceled()
    {
        await using var cluster = await FakeCluster.StartAsync();
        cluster.Coordinator.NoPrimary = true;
        await using var client = cluster.CreateClient();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetAsync("k", cts.Token));
    }

    [Fact]
    public async Task HungServer_AttemptTimesOut_AndTheCallRetries()
    {
        await using var cluster = await FakeCluster.StartAsync();
        cluster.Server.HangFirst = true;
        await using var client = cluster.CreateClient(attemptTimeout: TimeSpan.FromMilliseconds(200));

        Assert.Equal("old:k", await client.PutHashAsync("k", "v", TestContext.Current.CancellationToken));
        Assert.All(cluster.Server.Received, w => Assert.Equal("1", w[2]));
        Assert.True(cluster.Server.Received.Count >= 2);
    }

    [Fact]
    public async Task HungServer_AttemptTimeout_AbandonsTheConnection_SoNoCopyQueuesBehindIt()
    {
        await using var cluster = await FakeCluster.StartAsync();
        cluster.Server.HangFirst = true;
        await using var client = cluster.CreateClient(attemptTimeout: TimeSpan.FromMilliseconds(200));

        Assert.Equal("old:k", await client.PutHashAsync("k", "v", TestContext.Current.CancellationToken));
        Assert.Equal(2, cluster.Server.Received.Count); // the hung copy and one retry, on a new connection
        Assert.Equal(2, cluster.Server.Connections);
    }

    [Fact]
    public async Task TryAgain_FromThePrimary_KeepsIt_WhileTheCoordinatorIsDown()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient(operationTimeout: TimeSpan.FromSeconds(5));
        Assert.Equal("", await client.GetAsync("a", TestContext.Current.CancellationToken));

        cluster.Coordinator.Down = true;
        cluster.Server.Script.Enqueue(RespValue.Error("TRYAGAIN the backup did not confirm within 2000 ms"));
        Assert.Equal("", await client.GetAsync("b", TestContext.Current.CancellationToken));
        Assert.Equal(1, cluster.Coordinator.ViewRequests);
    }

    [Fact]
    public async Task LostConnection_ToThePrimary_WhileTheCoordinatorIsDown_RetriesTheLastKnownPrimary()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient(operationTimeout: TimeSpan.FromSeconds(5));
        Assert.Equal("", await client.GetAsync("a", TestContext.Current.CancellationToken));

        cluster.Coordinator.Down = true;
        cluster.Server.Script.Enqueue(null); // the connection breaks without a reply
        Assert.Equal("old:k", await client.PutHashAsync("k", "v", TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task NotPrimary_NamingThePrimary_IsFollowed_WithoutTheCoordinator()
    {
        await using var cluster = await FakeCluster.StartAsync();
        var other = new FakeServer();
        await using RespHost otherHost = await RespHost.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), other, cancellationToken: TestContext.Current.CancellationToken);
        other.Address = $"127.0.0.1:{otherHost.EndPoint.Port}";
        await using var client = cluster.CreateClient(operationTimeout: TimeSpan.FromSeconds(5));
        Assert.Equal("", await client.GetAsync("a", TestContext.Current.CancellationToken));

        cluster.Coordinator.Down = true;
        cluster.Server.Script.Enqueue(RespValue.Error($"NOTPRIMARY {cluster.Server.Address} is the backup in view 3; primary: {other.Address}"));
        Assert.Equal("", await client.GetAsync("b", TestContext.Current.CancellationToken));
        Assert.Equal(["GET", "b"], other.Received.Single());
    }

    [Fact]
    public async Task CallerOwnedRequest_RetriedAfterATimeout_KeepsItsIdAndNumber()
    {
        await using var cluster = await FakeCluster.StartAsync();
        cluster.Server.HangFirst = true; // the first attempt is answered after 1 s, too late for this call
        await using var client = cluster.CreateClient(attemptTimeout: TimeSpan.FromMilliseconds(250));
        using TandemRequest request = client.CreateRequest();

        using (var impatient = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken))
        {
            Task first = client.AppendAsync("k", "x", request, impatient.Token);
            while (!cluster.Server.Received.Any(c => c[0] == "XREQ")) await Task.Delay(5, TestContext.Current.CancellationToken);
            impatient.Cancel(); // the caller gives up on its own while its first attempt hangs
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        }
        Assert.False(request.IsCompleted);
        await Assert.ThrowsAsync<ArgumentException>(() => client.AppendAsync("k", "other", request, TestContext.Current.CancellationToken));
        Assert.Equal(7, await client.AppendAsync("k", "x", request, TestContext.Current.CancellationToken));
        Assert.True(request.IsCompleted);

        string[][] writes = cluster.Server.Received.Where(c => c[0] == "XREQ").ToArray();
        Assert.True(writes.Length >= 2);
        Assert.All(writes, w => Assert.Equal(["XREQ", client.ClientId.ToString(), "1", "0", "APPEND", "k", "x"], w));
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.AppendAsync("k", "x", request, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task ConcurrentCalls_ShareOneConnection_AndAllSucceed()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();

        string[] olds = await Task.WhenAll(Enumerable.Range(0, 200)
            .Select(i => client.PutHashAsync($"k{i}", "v", TestContext.Current.CancellationToken)));

        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"old:k{i}"), olds);
        Assert.Equal(1, cluster.Server.Connections);
        Assert.Equal(200, cluster.Server.Received.Select(w => w[2]).Distinct().Count());
    }

    [Fact]
    public async Task Dispose_ThenCall_ThrowsObjectDisposed()
    {
        var client = new TandemClient();
        await client.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.GetAsync("k", TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task NewWrites_GoAsXreq_WithRedisArguments_AndTheirRepliesAreDecoded()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();
        CancellationToken ct = TestContext.Current.CancellationToken;
        var script = cluster.Server.Script;

        script.Enqueue(RespValue.Int(1));
        Assert.Equal(1, await client.IncrAsync("n", ct));
        script.Enqueue(RespValue.Int(11));
        Assert.Equal(11, await client.IncrByAsync("n", 10, ct));
        script.Enqueue(RespValue.Int(8));
        Assert.Equal(8, await client.DecrByAsync("n", 3, ct));
        script.Enqueue(RespValue.Int(7));
        Assert.Equal(7, await client.DecrAsync("n", ct));
        script.Enqueue(RespValue.Bulk("7.5"));
        Assert.Equal(7.5, await client.IncrByFloatAsync("n", 0.5, ct));
        script.Enqueue(RespValue.Bulk("old"));
        Assert.Equal("old", await client.GetSetAsync("g", "new", ct));
        script.Enqueue(RespValue.NullBulk);
        Assert.Null(await client.GetDelAsync("g", ct));
        script.Enqueue(RespValue.Ok);
        await client.MSetAsync([new("a", "1"), new("b", "2")], ct);
        script.Enqueue(RespValue.Int(0));
        Assert.False(await client.MSetNxAsync([new("a", "1")], ct));
        script.Enqueue(RespValue.Int(2));
        Assert.Equal(2, await client.DeleteAsync(["a", "b", "c"], ct));
        script.Enqueue(RespValue.Int(1));
        Assert.True(await client.ExpireAsync("a", 10, ExpireCondition.IfGreater, ct));
        script.Enqueue(RespValue.Int(0));
        Assert.False(await client.PExpireAsync("a", 1500, cancellationToken: ct));
        script.Enqueue(RespValue.Int(1));
        Assert.True(await client.PersistAsync("a", ct));

        string id = client.ClientId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string[][] expected =
        [
            ["INCR", "n"], ["INCRBY", "n", "10"], ["DECRBY", "n", "3"], ["DECR", "n"], ["INCRBYFLOAT", "n", "0.5"],
            ["GETSET", "g", "new"], ["GETDEL", "g"], ["MSET", "a", "1", "b", "2"], ["MSETNX", "a", "1"], ["DEL", "a", "b", "c"],
            ["EXPIRE", "a", "10", "GT"], ["PEXPIRE", "a", "1500"], ["PERSIST", "a"],
        ];
        string[][] sent = [.. cluster.Server.Received];
        Assert.Equal(expected.Length, sent.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            string n = (i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
            string acked = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(["XREQ", id, n, acked, .. expected[i]], sent[i]);
        }
    }

    [Theory]
    [InlineData(SetCondition.Always, false, SetExpiry.None, 0L, "SET k v")]
    [InlineData(SetCondition.IfMissing, true, SetExpiry.Milliseconds, 250L, "SET k v NX GET PX 250")]
    [InlineData(SetCondition.IfExists, false, SetExpiry.Seconds, 10L, "SET k v XX EX 10")]
    [InlineData(SetCondition.Always, true, SetExpiry.UnixSeconds, 1900000000L, "SET k v GET EXAT 1900000000")]
    [InlineData(SetCondition.Always, false, SetExpiry.UnixMilliseconds, 1900000000000L, "SET k v PXAT 1900000000000")]
    [InlineData(SetCondition.Always, false, SetExpiry.KeepTtl, 0L, "SET k v KEEPTTL")]
    public async Task SetWithOptions_SendsRedisOptions_ExactlyOnce(SetCondition condition, bool get, SetExpiry expiry, long value, string command)
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();
        var options = value > 0
            ? new SetOptions { Condition = condition, ReturnOldValue = get, Expiry = expiry, ExpiryValue = value }
            : new SetOptions { Condition = condition, ReturnOldValue = get, Expiry = expiry };
        if (get) cluster.Server.Script.Enqueue(RespValue.NullBulk); // GET's reply: the old value, here none
        await client.SetAsync("k", "v", options, TestContext.Current.CancellationToken);

        Assert.Equal(["XREQ", client.ClientId.ToString(System.Globalization.CultureInfo.InvariantCulture), "1", "0", .. command.Split(' ')],
            cluster.Server.Received.Single());
    }

    [Fact]
    public async Task SetWithOptions_ReportsWhetherItSet_AndTheOldValue()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();
        CancellationToken ct = TestContext.Current.CancellationToken;
        var script = cluster.Server.Script;

        script.Enqueue(RespValue.NullBulk); // NX refused
        Assert.Equal(new SetResult(false, null), await client.SetAsync("k", "v", new SetOptions { Condition = SetCondition.IfMissing }, ct));
        script.Enqueue(RespValue.Ok);
        Assert.Equal(new SetResult(true, null), await client.SetAsync("k", "v", new SetOptions { Condition = SetCondition.IfExists }, ct));
        script.Enqueue(RespValue.Bulk("was")); // NX GET on an existing key: not set, old value
        Assert.Equal(new SetResult(false, "was"), await client.SetAsync("k", "v", new SetOptions { Condition = SetCondition.IfMissing, ReturnOldValue = true }, ct));
        script.Enqueue(RespValue.NullBulk); // NX GET on a missing key: set
        Assert.Equal(new SetResult(true, null), await client.SetAsync("k", "v", new SetOptions { Condition = SetCondition.IfMissing, ReturnOldValue = true }, ct));
        script.Enqueue(RespValue.NullBulk); // XX GET on a missing key: not set
        Assert.Equal(new SetResult(false, null), await client.SetAsync("k", "v", new SetOptions { Condition = SetCondition.IfExists, ReturnOldValue = true }, ct));
        script.Enqueue(RespValue.Bulk("was"));
        Assert.Equal(new SetResult(true, "was"), await client.SetAsync("k", "v", new SetOptions { ReturnOldValue = true }, ct));
    }

    [Fact]
    public void SetOptions_ExpiryWithoutAPositiveValue_IsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SetOptions { Expiry = SetExpiry.Seconds, ExpiryValue = 0 });
        Assert.Throws<ArgumentException>(() => new SetOptions { Expiry = SetExpiry.Milliseconds }.Arguments().ToList());
        Assert.Equal(["PX", "250"], SetOptions.ExpireInMilliseconds(250).Arguments());
        Assert.Equal(["EX", "3"], SetOptions.ExpireInSeconds(3).Arguments());
        Assert.Equal(["PXAT", "1900000000000"], SetOptions.ExpireAt(DateTimeOffset.FromUnixTimeMilliseconds(1900000000000)).Arguments());
    }

    [Fact]
    public async Task NewReads_ArePlain_AndDecoded()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();
        CancellationToken ct = TestContext.Current.CancellationToken;
        var script = cluster.Server.Script;

        script.Enqueue(RespValue.Array([RespValue.Bulk("1"), RespValue.NullBulk, RespValue.Bulk("")]));
        Assert.Equal(["1", null, ""], await client.MGetAsync(["a", "b", "c"], ct));
        script.Enqueue(RespValue.Int(-2));
        Assert.Equal(-2, await client.TtlAsync("a", ct));
        script.Enqueue(RespValue.Int(1234));
        Assert.Equal(1234, await client.PTtlAsync("a", ct));
        script.Enqueue(RespValue.Int(2));
        Assert.Equal(2, await client.ExistsAsync(["a", "a", "b"], ct));

        Assert.Equal<string[]>([["MGET", "a", "b", "c"], ["TTL", "a"], ["PTTL", "a"], ["EXISTS", "a", "a", "b"]], cluster.Server.Received);
        Assert.Equal(0, client.ClientId); // no write, no session
    }

    [Fact]
    public async Task Transaction_GoesAsOneXreqExec_AndReturnsEachReply()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = cluster.CreateClient();
        cluster.Server.Script.Enqueue(RespValue.Array([RespValue.Int(1), RespValue.Error("ERR value is not an integer or out of range"), RespValue.Ok]));

        IReadOnlyList<RespValue> replies = await client.TransactionAsync([["INCR", "a"], ["INCR", "s"], ["SET", "b", "x y"]], TestContext.Current.CancellationToken);

        Assert.Equal(1, replies[0].Integer);
        Assert.True(replies[1].IsError);
        Assert.Equal("OK", replies[2].Text);
        Assert.Equal(["XREQ", client.ClientId.ToString(System.Globalization.CultureInfo.InvariantCulture), "1", "0", "EXEC", "2", "INCR", "a", "2", "INCR", "s", "3", "SET", "b", "x y"],
            cluster.Server.Received.Single());
        await Assert.ThrowsAsync<ArgumentException>(() => client.TransactionAsync([], TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(() => client.TransactionAsync([[]], TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Incr_OfANonInteger_ThrowsRedisError_WithoutRetrying()
    {
        await using var cluster = await FakeCluster.StartAsync();
        cluster.Server.Script.Enqueue(RespValue.Error("ERR value is not an integer or out of range"));
        await using var client = cluster.CreateClient();

        var e = await Assert.ThrowsAsync<TandemException>(() => client.IncrAsync("s", TestContext.Current.CancellationToken));

        Assert.Equal("ERR", e.Code);
        Assert.Contains("not an integer", e.Message);
        Assert.Single(cluster.Server.Received);
    }

    [Fact]
    public async Task Incr_WhoseReplyIsLost_IsRetriedWithTheSameNumber()
    {
        await using var cluster = await FakeCluster.StartAsync();
        cluster.Server.Script.Enqueue(null); // the connection drops: the increment may have been applied
        cluster.Server.Script.Enqueue(RespValue.Error("TRYAGAIN backup unreachable"));
        cluster.Server.Script.Enqueue(RespValue.Int(1)); // the saved reply of the first copy
        await using var client = cluster.CreateClient();

        Assert.Equal(1, await client.IncrAsync("n", TestContext.Current.CancellationToken));

        string id = client.ClientId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.All(cluster.Server.Received, w => Assert.Equal(["XREQ", id, "1", "0", "INCR", "n"], w));
        Assert.Equal(3, cluster.Server.Received.Count);
    }

    private sealed class FakeCluster : IAsyncDisposable
    {
        private readonly RespHost _coordinatorHost, _serverHost;

        private FakeCluster(FakeCoordinator coordinator, RespHost coordinatorHost, FakeServer server, RespHost serverHost)
        {
            (Coordinator, _coordinatorHost, Server, _serverHost) = (coordinator, coordinatorHost, server, serverHost);
        }

        public FakeCoordinator Coordinator { get; }
        public FakeServer Server { get; }

        public static async Task<FakeCluster> StartAsync()
        {
            var server = new FakeServer();
            RespHost serverHost = await RespHost.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), server);
            server.Address = $"127.0.0.1:{serverHost.EndPoint.Port}";
            var coordinator = new FakeCoordinator(server.Address);
            RespHost coordinatorHost = await RespHost.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), coordinator);
            coordinator.Address = $"127.0.0.1:{coordinatorHost.EndPoint.Port}";
            return new FakeCluster(coordinator, coordinatorHost, server, serverHost);
        }

        public TandemClient CreateClient(TimeSpan? operationTimeout = null, TimeSpan? attemptTimeout = null) => new(new TandemClientOptions
        {
            Coordinator = Coordinator.Address,
            OperationTimeout = operationTimeout ?? TimeSpan.FromSeconds(10),
            AttemptTimeout = attemptTimeout ?? TimeSpan.FromSeconds(1),
        });

        public async ValueTask DisposeAsync()
        {
            await _serverHost.DisposeAsync();
            await _coordinatorHost.DisposeAsync();
        }
    }

    private sealed class FakeCoordinator(string primary) : RespConnectionHandler
    {
        private int _viewRequests;

        public string Address { get; set; } = "";
        public volatile bool NoPrimary;
        /// <summary>When set, every request is dropped unanswered (the connection closes): a coordinator that is down.</summary>
        public volatile bool Down;
        public int ViewRequests => Volatile.Read(ref _viewRequests);

        protected override ValueTask<RespValue?> ExecuteAsync(RespCommand command, CommandSpec<CommandHandler>? spec, ConnectionContext connection)
        {
            if (Down) return new((RespValue?)null);
            if (command.Name != Commands.VsView) return new(RespValue.Error("ERR unknown command"));
            Interlocked.Increment(ref _viewRequests);
            return new((NoPrimary ? new View(0, "", "") : new View(1, primary, "")).ToResp(acked: true, lastAcked: 0));
        }
    }

    /// <summary>Answers each command with the next scripted reply if any (null: close the connection unanswered), else a canned success.</summary>
    private sealed class FakeServer : RespConnectionHandler
    {
        public const long FirstId = 41;
        private int _connections;
        private long _lastId = FirstId - 1;

        public string Address { get; set; } = "";
        public int Registrations => (int)(Volatile.Read(ref _lastId) - (FirstId - 1));
        public ConcurrentQueue<RespValue?> Script { get; } = new();
        public ConcurrentQueue<string[]> Received { get; } = new();
        public volatile bool HangFirst;
        public int Connections => Volatile.Read(ref _connections);

        public override Task OnConnectedAsync(ConnectionContext connection)
        {
            Interlocked.Increment(ref _connections);
            return base.OnConnectedAsync(connection);
        }

        protected override async ValueTask<RespValue?> ExecuteAsync(RespCommand command, CommandSpec<CommandHandler>? spec, ConnectionContext connection)
        {
            string[] args = Enumerable.Range(0, command.Count).Select(command.Text).ToArray();
            if (args is ["XCLIENT"]) return RespValue.Int(Interlocked.Increment(ref _lastId));
            Received.Enqueue(args);
            if (HangFirst)
            {
                HangFirst = false;
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
            if (Script.TryDequeue(out RespValue? scripted)) return scripted;
            string[] op = args[0] == "XREQ" ? args[4..] : args;
            return op[0] switch
            {
                "GET" => RespValue.NullBulk,
                "SET" => RespValue.Ok,
                "PUTHASH" => RespValue.Bulk("old:" + op[1]),
                "APPEND" => RespValue.Int(7),
                "DEL" => RespValue.Int(1),
                _ => RespValue.Error("ERR unknown command"),
            };
        }
    }
}
