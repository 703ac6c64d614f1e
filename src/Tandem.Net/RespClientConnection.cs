using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Tandem.Protocol;

namespace Tandem.Net;

/// <summary>
/// One pipelined RESP connection to a node. Many callers may send at once: requests are written in the
/// order they are queued, batched into as few flushes as possible, and replies are matched first-in
/// first-out. After any I/O error the connection is <see cref="IsBroken"/> and every waiting call fails.
/// </summary>
public sealed class RespClientConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    private readonly RespLimits _limits;
    private readonly long _maxPendingBytes;
    private readonly Channel<Outgoing> _outgoing = Channel.CreateUnbounded<Outgoing>(new() { SingleReader = true });
    private readonly Queue<TaskCompletionSource<RespValue>> _waiting = new();
    private readonly CancellationTokenSource _closed = new();
    private Exception? _failure;

    private readonly record struct Outgoing(byte[] Frame, TaskCompletionSource<RespValue> Reply, CancellationToken Token);

    /// <summary>
    /// TCP keepalive on every connection: a flow that goes silent (peer host gone, state dropped by a middlebox)
    /// is detected within about 5 + 3 x 1 s, not the kernel's default of hours.
    /// </summary>
    private const int KeepAliveIdleSeconds = 5, KeepAliveIntervalSeconds = 1, KeepAliveProbes = 3;

    private RespClientConnection(Socket socket, string address, RespLimits limits)
    {
        _socket = socket;
        Address = address;
        _limits = limits;
        _maxPendingBytes = 2L * limits.MaxBulkLength + 1024 * 1024;
        var stream = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(stream);
        _writer = PipeWriter.Create(stream);
        _ = WriteLoopAsync();
        _ = ReadLoopAsync();
    }

    /// <summary>The <c>HOST:PORT</c> this connection goes to.</summary>
    public string Address { get; }

    /// <summary>When bytes last arrived on this connection (<see cref="System.Diagnostics.Stopwatch"/> ticks; 0 before any).</summary>
    public long LastReceivedTimestamp => Volatile.Read(ref _lastReceived);

    private long _lastReceived;

    /// <summary>True once the connection has failed or been disposed; make a new one.</summary>
    public bool IsBroken => _closed.IsCancellationRequested;

    /// <summary>
    /// Connects to <paramref name="address"/> (<c>HOST:PORT</c>). Replies are read within <paramref name="limits"/>
    /// (default <see cref="RespLimits.Default"/>); an incomplete reply longer than twice their largest bulk string
    /// plus 1 MiB breaks the connection.
    /// </summary>
    public static async Task<RespClientConnection> ConnectAsync(string address, CancellationToken cancellationToken,
        RespLimits? limits = null)
    {
        EndPoint endPoint = ParseEndPoint(address);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            EnableKeepAlive(socket);
            await socket.ConnectAsync(endPoint, cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new RespClientConnection(socket, address, limits ?? RespLimits.Default);
    }

    private static void EnableKeepAlive(Socket socket)
    {
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, KeepAliveIdleSeconds);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, KeepAliveIntervalSeconds);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, KeepAliveProbes);
        }
        catch (SocketException)
        {
            // A platform without per-socket keepalive timing keeps the system's.
        }
    }

    /// <summary>
    /// Marks the connection broken (a reply did not come in time: the flow may be dead): every waiting call
    /// fails, nothing queued is sent, and the next caller makes a new connection.
    /// </summary>
    public void Abort(string reason) => Fail(new IOException($"connection to {Address} abandoned: {reason}"));

    /// <summary>Parses <c>HOST:PORT</c> (an IP literal or a host name).</summary>
    public static EndPoint ParseEndPoint(string address)
    {
        if (IPEndPoint.TryParse(address, out IPEndPoint? ip) && ip.Port != 0) return ip;
        int colon = address.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(address.AsSpan(colon + 1), out int port) || port is <= 0 or > 65535)
            throw new FormatException($"'{address}' is not HOST:PORT");
        return new DnsEndPoint(address[..colon], port);
    }

    /// <summary>Whether <paramref name="address"/> is <c>HOST:PORT</c> as <see cref="ParseEndPoint"/> takes it.</summary>
    public static bool IsEndPoint(string? address)
    {
        if (string.IsNullOrWhiteSpace(address)) return false;
        try
        {
            ParseEndPoint(address);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>Sends a command made of text arguments and waits for its reply.</summary>
    public Task<RespValue> SendAsync(CancellationToken cancellationToken, params string[] args)
    {
        var frame = new ArrayBufferWriter<byte>();
        RespWriter.WriteCommand(frame, args);
        return SendFrameAsync(frame.WrittenSpan.ToArray(), cancellationToken);
    }

    /// <summary>Sends a command and waits for its reply.</summary>
    public Task<RespValue> SendAsync(IReadOnlyList<byte[]> args, CancellationToken cancellationToken)
    {
        var frame = new ArrayBufferWriter<byte>();
        RespWriter.WriteCommand(frame, args);
        return SendFrameAsync(frame.WrittenSpan.ToArray(), cancellationToken);
    }

    /// <summary>Sends an already encoded command frame and waits for its reply.</summary>
    public Task<RespValue> SendFrameAsync(byte[] frame, CancellationToken cancellationToken)
    {
        var reply = new TaskCompletionSource<RespValue>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_failure is not null || !_outgoing.Writer.TryWrite(new Outgoing(frame, reply, cancellationToken)))
            reply.TrySetException(new IOException($"connection to {Address} is closed", _failure));
        return cancellationToken.CanBeCanceled ? reply.Task.WaitAsync(cancellationToken) : reply.Task;
    }

    private async Task WriteLoopAsync()
    {
        try
        {
            while (await _outgoing.Reader.WaitToReadAsync(_closed.Token))
            {
                lock (_waiting)
                {
                    while (_outgoing.Reader.TryRead(out Outgoing item))
                    {
                        if (_failure is not null) { item.Reply.TrySetException(new IOException("connection closed", _failure)); continue; }
                        // A call cancelled before its frame went out is not sent at all.
                        if (item.Token.IsCancellationRequested) { item.Reply.TrySetCanceled(item.Token); continue; }
                        _waiting.Enqueue(item.Reply);
                        _writer.Write(item.Frame);
                    }
                }
                FlushResult result = await _writer.FlushAsync(_closed.Token);
                if (result.IsCompleted) throw new IOException($"connection to {Address} closed by peer");
            }
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (true)
            {
                ReadResult result = await _reader.ReadAsync(_closed.Token);
                Volatile.Write(ref _lastReceived, System.Diagnostics.Stopwatch.GetTimestamp());
                ReadOnlySequence<byte> buffer = result.Buffer;
                while (RespReader.TryReadValue(ref buffer, _limits, out RespValue? value))
                {
                    TaskCompletionSource<RespValue>? waiter;
                    lock (_waiting) _waiting.TryDequeue(out waiter);
                    if (waiter is null) throw new RespProtocolException("reply without a request");
                    waiter.TrySetResult(value!);
                }
                // A peer is not trusted either: an incomplete reply may not grow past what the limits allow.
                if (buffer.Length > _maxPendingBytes)
                    throw new RespProtocolException($"reply longer than {_maxPendingBytes} bytes");
                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted || result.IsCanceled) throw new IOException($"connection to {Address} closed by peer");
            }
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    private void Fail(Exception e)
    {
        lock (_waiting)
        {
            _failure ??= e is IOException ? e : new IOException($"connection to {Address} failed: {e.Message}", e);
            while (_waiting.TryDequeue(out TaskCompletionSource<RespValue>? w)) w.TrySetException(_failure);
        }
        _outgoing.Writer.TryComplete();
        while (_outgoing.Reader.TryRead(out Outgoing item)) item.Reply.TrySetException(_failure);
        try
        {
            _closed.Cancel();
        }
        catch (Exception)
        {
            // A cancellation callback of the socket pipes, racing their own completion, may throw; the
            // connection is failed either way, and a caller of Abort must not see it.
        }
        try { _socket.Dispose(); } catch (ObjectDisposedException) { }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        Fail(new ObjectDisposedException(nameof(RespClientConnection)));
        return ValueTask.CompletedTask;
    }
}
