using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Tandem.Protocol;

namespace Tandem.Net;

/// <summary>
/// A client connection for one writer that pipelines frames: the caller writes frames straight into
/// <see cref="Output"/> and flushes, and a read loop hands each reply, in order, to a callback. No task, timer or
/// copy per frame: the replication stream from a primary to its backup runs on it.
/// </summary>
public sealed class RespStream : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _network;
    private readonly PipeReader _reader;
    private readonly RespLimits _limits;

    private RespStream(Socket socket, RespLimits limits)
    {
        _socket = socket;
        _limits = limits;
        _network = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(_network);
        Output = PipeWriter.Create(_network);
    }

    /// <summary>Where frames are written; one writer at a time, who also calls <see cref="PipeWriter.FlushAsync"/>.</summary>
    public PipeWriter Output { get; }

    /// <summary>Connects to <paramref name="endPoint"/> (TCP, no delay, keepalive).</summary>
    public static async Task<RespStream> ConnectAsync(EndPoint endPoint, RespLimits limits, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            await socket.ConnectAsync(endPoint, cancellationToken);
            return new RespStream(socket, limits);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads replies until the connection fails or <paramref name="cancellationToken"/> is cancelled, calling
    /// <paramref name="onReply"/> for each in order and <paramref name="onReadDone"/> after the replies of one read.
    /// Throws <see cref="IOException"/> when the peer closes, <see cref="RespProtocolException"/> on a malformed reply,
    /// and whatever a callback throws.
    /// </summary>
    public async Task ReadRepliesAsync(Action<RespValue> onReply, Action onReadDone, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onReply);
        ArgumentNullException.ThrowIfNull(onReadDone);
        long maxPending = 2L * _limits.MaxBulkLength + 64 * 1024;
        while (true)
        {
            ReadResult result = await _reader.ReadAsync(cancellationToken);
            ReadOnlySequence<byte> buffer = result.Buffer;
            bool any = false;
            while (RespReader.TryReadValue(ref buffer, _limits, out RespValue? value))
            {
                onReply(value!);
                any = true;
            }
            if (buffer.Length > maxPending) throw new RespProtocolException($"reply longer than {maxPending} bytes");
            _reader.AdvanceTo(buffer.Start, buffer.End);
            if (any) onReadDone();
            if (result.IsCompleted || result.IsCanceled) throw new IOException("connection closed by peer");
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        await _network.DisposeAsync();
    }
}
