using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace Tandem.Testing;

/// <summary>
/// A TCP proxy in front of one server that holds every byte going to the server for <see cref="Delay"/>
/// before passing it on (replies pass at once). Used to make a request reach an old primary only after
/// the view has changed.
/// </summary>
public sealed class DelayProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = new();

    /// <summary>Starts a proxy on a free loopback port that forwards to <paramref name="target"/>.</summary>
    public DelayProxy(IPEndPoint target)
    {
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _ = AcceptLoopAsync();
    }

    /// <summary>How long bytes towards the server are held. Applies to bytes read after it is set.</summary>
    public TimeSpan Delay { get; set; }

    /// <summary>The proxy's address, <c>HOST:PORT</c>.</summary>
    public string Address => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                Socket client = await _listener.AcceptSocketAsync(_stop.Token);
                var server = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                client.NoDelay = true;
                lock (_sockets) { _sockets.Add(client); _sockets.Add(server); }
                try
                {
                    await server.ConnectAsync(_target, _stop.Token);
                }
                catch (SocketException)
                {
                    client.Dispose();
                    server.Dispose();
                    continue;
                }
                _ = PumpAsync(client, server, delayed: true);
                _ = PumpAsync(server, client, delayed: false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool delayed)
    {
        var queue = Channel.CreateUnbounded<(DateTime Due, byte[] Bytes)>();
        Task writer = WriteLoopAsync(queue.Reader, to);
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0) break;
                DateTime due = delayed ? DateTime.UtcNow + Delay : DateTime.UtcNow;
                queue.Writer.TryWrite((due, buffer[..n]));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        queue.Writer.TryComplete();
        await writer;
    }

    private async Task WriteLoopAsync(ChannelReader<(DateTime Due, byte[] Bytes)> queue, Socket to)
    {
        try
        {
            await foreach ((DateTime due, byte[] bytes) in queue.ReadAllAsync(_stop.Token))
            {
                TimeSpan wait = due - DateTime.UtcNow;
                if (wait > TimeSpan.Zero) await Task.Delay(wait, _stop.Token);
                await to.SendAsync(bytes, SocketFlags.None, _stop.Token);
            }
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_sockets) foreach (Socket s in _sockets) s.Dispose();
        return ValueTask.CompletedTask;
    }
}
