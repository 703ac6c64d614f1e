using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Tandem.Coordinator;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.UnitTests;

public class CoordinatorNodeTests
{
    [Fact]
    public async Task CoordinatorHandler_OverTcp_AnswersPingViewStatusAndErrors()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using CoordinatorNode node = await CoordinatorNode.StartAsync(new CoordinatorNodeOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            ViewService = new ViewServiceOptions { PingInterval = TimeSpan.FromMilliseconds(20), DeadPings = 5 },
        }, ct);
        Assert.StartsWith("127.0.0.1:", node.Address);
        Assert.NotEqual("127.0.0.1:0", node.Address);

        await using RespClientConnection conn = await RespClientConnection.ConnectAsync(node.Address, ct);
        Assert.Equal("+PONG", (await conn.SendAsync(ct, "PING")).ToString());
        Assert.Equal(View.Empty, View.FromResp(await conn.SendAsync(ct, Commands.VsPing, "s1:1", "0")));

        // View 1 comes from the coordinator's timer; keep pinging (as a server would) until it names s1.
        var deadline = Stopwatch.StartNew();
        View view;
        while ((view = View.FromResp(await conn.SendAsync(ct, Commands.VsPing, "s1:1", "0"))).Number == 0)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "no view 1 within 30 s");
            await Task.Delay(10, ct);
        }
        Assert.Equal(new View(1, "s1:1", ""), view);
        Assert.Equal(view, View.FromResp(await conn.SendAsync(ct, Commands.VsPing, "s1:1", "1")));
        Assert.Equal(view, View.FromResp(await conn.SendAsync(ct, Commands.VsView)));

        RespValue status = await conn.SendAsync(ct, Commands.VsStatus);
        Assert.Equal(RespKind.BulkString, status.Kind);
        Assert.Contains("\"acked\":true", status.Text);
        using (JsonDocument json = JsonDocument.Parse(status.Text))
        {
            JsonElement root = json.RootElement;
            Assert.Equal(1, root.GetProperty("view").GetInt64());
            Assert.Equal("s1:1", root.GetProperty("primary").GetString());
            Assert.Equal("", root.GetProperty("backup").GetString());
            Assert.True(root.GetProperty("acked").GetBoolean());
            Assert.Equal(20, root.GetProperty("pingIntervalMs").GetDouble());
            Assert.Equal(5, root.GetProperty("deadPings").GetInt32());
            JsonElement server = Assert.Single(root.GetProperty("servers").EnumerateArray());
            Assert.Equal("s1:1", server.GetProperty("address").GetString());
            Assert.Equal("primary", server.GetProperty("role").GetString());
            Assert.True(server.GetProperty("alive").GetBoolean());
            Assert.True(server.GetProperty("lastPingMsAgo").GetInt64() >= 0);
            Assert.Equal(1, server.GetProperty("viewNumber").GetInt64());
        }

        Assert.Equal("-ERR unknown command 'NOPE', with args beginning with: 'x' ", (await conn.SendAsync(ct, "NOPE", "x")).ToString());
        Assert.Equal("-ERR wrong number of arguments for 'vs.ping' command", (await conn.SendAsync(ct, Commands.VsPing, "s1:1")).ToString());
        Assert.Equal("-ERR wrong number of arguments for 'vs.view' command", (await conn.SendAsync(ct, Commands.VsView, "x")).ToString());
        Assert.Equal("-ERR wrong number of arguments for 'vs.status' command", (await conn.SendAsync(ct, Commands.VsStatus, "x")).ToString());
        foreach (string bad in new[] { "-1", "abc", "1.5", "" })
        {
            RespValue reply = await conn.SendAsync(ct, Commands.VsPing, "s1:1", bad);
            Assert.True(reply.IsError, $"view number '{bad}' accepted");
            Assert.Equal(ErrorCodes.Err, reply.ErrorCode);
        }
        Assert.Equal(ErrorCodes.Err, (await conn.SendAsync(ct, Commands.VsPing, "", "0")).ErrorCode);

        // The connection survives errors, and the node still answers.
        Assert.Equal(view, View.FromResp(await conn.SendAsync(ct, Commands.VsView)));
        await node.StopAsync();
    }

    [Fact]
    public async Task Coordinator_ClosesAClientWhoseCommandStaysIncomplete_AfterItsFrameTimeout()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using CoordinatorNode node = await CoordinatorNode.StartAsync(new CoordinatorNodeOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            FrameTimeout = TimeSpan.FromMilliseconds(300),
        }, ct);
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(IPEndPoint.Parse(node.Address), ct);
        await socket.SendAsync("*2\r\n$4\r\nPING\r\n$5\r\nhe"u8.ToArray(), ct); // never finished

        var received = new List<byte>();
        var buffer = new byte[256];
        using var patience = CancellationTokenSource.CreateLinkedTokenSource(ct);
        patience.CancelAfter(TimeSpan.FromSeconds(20));
        int n;
        while ((n = await socket.ReceiveAsync(buffer, patience.Token)) > 0) received.AddRange(buffer[..n]);
        Assert.StartsWith("-ERR Protocol error: command incomplete after 300 ms", System.Text.Encoding.ASCII.GetString([.. received]));
    }
}
