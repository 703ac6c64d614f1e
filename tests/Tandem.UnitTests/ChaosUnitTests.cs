using System.Net;
using System.Net.Sockets;
using System.Text;
using Tandem.Chaos;
using Tandem.Client;

namespace Tandem.UnitTests;

public class ChaosUnitTests
{
    [Fact]
    public void BigValue_ReadBackIntact_IsItsDescription()
    {
        string value = BigValue.Make("c3.17;", BigValue.MinLength + 5);
        Assert.Equal(BigValue.MinLength + 5, value.Length);
        Assert.Equal("big:c3.17;1048581", BigValue.Decode(Encoding.ASCII.GetBytes(value)));
        Assert.Equal("big:c3.17;1048581", BigValue.Decode(value));
        Assert.Equal("", BigValue.Decode(ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void BigValue_WrongTruncatedOrMixed_IsNeverAnyPutsDescription()
    {
        byte[] value = Encoding.ASCII.GetBytes(BigValue.Make("c3.17;", 1 << 20));
        byte[] flipped = (byte[])value.Clone();
        flipped[700_000] = flipped[700_000] == (byte)'a' ? (byte)'b' : (byte)'a';
        Assert.StartsWith("corrupt:", BigValue.Decode(flipped));

        // A prefix is not the value of that length: the description holds the length written.
        Assert.Equal("big:c3.17;1000", BigValue.Decode(value.AsSpan(0, 1000)));
        Assert.NotEqual(BigValue.Describe("c3.17;", 1 << 20), BigValue.Decode(value.AsSpan(0, 1000)));

        // Another value's filler behind this token (a mixed-up write).
        byte[] other = Encoding.ASCII.GetBytes(BigValue.Make("c4.17;", 1 << 20));
        Encoding.ASCII.GetBytes("c3.17;").CopyTo(other, 0);
        Assert.StartsWith("corrupt:", BigValue.Decode(other));
        Assert.StartsWith("corrupt:", BigValue.Decode("no token here"u8));
    }

    [Fact]
    public void SessionExpired_IsRecognizedByTypeOrErrorCode_NotForOtherErrors()
    {
        Assert.True(Workload.IsSessionExpired(new TandemSessionExpiredException("session 7 dropped")));
        Assert.True(Workload.IsSessionExpired(new TandemException("NOSESSION", "NOSESSION client 7 has no session")));
        Assert.False(Workload.IsSessionExpired(new TandemException("ERR", "ERR value too large")));
        Assert.False(Workload.IsSessionExpired(new TimeoutException("NOSESSION")));
    }

    [Fact]
    public async Task FaultProxy_Stall_HoldsBytesWithoutClosing_ThenPassesThemAll()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        await using var proxy = new FaultProxy("test", $"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");
        var stall = new LinkEffect(Stall: true);
        proxy.Add(Direction.Forward, stall);

        CancellationToken ct = TestContext.Current.CancellationToken;
        using var client = new TcpClient();
        await client.ConnectAsync(IPEndPoint.Parse(proxy.Address), ct);
        using Socket server = await listener.AcceptSocketAsync(ct);
        await client.GetStream().WriteAsync("hello"u8.ToArray(), ct);

        var buffer = new byte[16];
        using (var quiet = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            quiet.CancelAfter(TimeSpan.FromMilliseconds(400));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await server.ReceiveAsync(buffer, SocketFlags.None, quiet.Token));
        }

        proxy.Remove(Direction.Forward, stall);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        int n = 0;
        while (n < 5) n += await server.ReceiveAsync(buffer.AsMemory(n), SocketFlags.None, timeout.Token);
        Assert.Equal("hello", Encoding.ASCII.GetString(buffer, 0, n));
    }
}
