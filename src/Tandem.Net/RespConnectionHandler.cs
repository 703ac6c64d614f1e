using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Tandem.Protocol;

namespace Tandem.Net;

/// <summary>What the network does with one request (see <see cref="RespConnectionHandler.Admit"/>).</summary>
public enum Delivery
{
    /// <summary>Run it and reply.</summary>
    Deliver,
    /// <summary>Never run it (nor anything after it); close the connection.</summary>
    Drop,
    /// <summary>Run it, then close the connection instead of replying.</summary>
    LoseReply,
}

/// <summary>
/// The read loop every Tandem node uses: read from the pipe, parse every complete command in the buffer,
/// start each one in order, then write all their replies in order and flush once. Commands of one read
/// therefore share one flush (and, on a primary, one forwarded batch).
/// </summary>
/// <remarks>
/// Two clocks bound how long a client may hold a connection without making progress (see
/// <see cref="FrameTimeout"/> and <see cref="IdleTimeout"/>). Both count only time spent waiting for the
/// client's bytes, never time the node spends running commands or waiting for the client to take its replies.
/// </remarks>
public abstract class RespConnectionHandler : ConnectionHandler
{
    /// <summary>The default <see cref="FrameTimeout"/>: 30 seconds.</summary>
    public static readonly TimeSpan DefaultFrameTimeout = TimeSpan.FromSeconds(30);

    private TimeSpan _frameTimeout = DefaultFrameTimeout;
    private TimeSpan _idleTimeout = Timeout.InfiniteTimeSpan;

    /// <summary>Input bounds applied to every connection.</summary>
    protected virtual RespLimits Limits => RespLimits.Default;

    /// <summary>
    /// Longest time one command may stay incomplete: from the moment the node starts waiting for the rest of
    /// a command whose first bytes have arrived, until the command is whole. Bytes that trickle in do not
    /// extend it (a client sending a byte a minute is closed), a client that completes every command in time
    /// keeps its connection for as long as it likes. When it expires the connection gets
    /// <c>-ERR Protocol error: ...</c> and is closed. Default 30 s; <see cref="Timeout.InfiniteTimeSpan"/>
    /// turns it off. Applies to connections accepted after the change.
    /// </summary>
    public TimeSpan FrameTimeout
    {
        get => _frameTimeout;
        set => _frameTimeout = CheckTimeout(value);
    }

    /// <summary>
    /// Longest time a connection may sit between commands (no partial command buffered) before it is closed
    /// without a reply, as Redis's <c>timeout</c>. Default <see cref="Timeout.InfiniteTimeSpan"/> (off):
    /// idle connections are bounded by the host's connection limit instead. Applies to connections accepted
    /// after the change.
    /// </summary>
    public TimeSpan IdleTimeout
    {
        get => _idleTimeout;
        set => _idleTimeout = CheckTimeout(value);
    }

    /// <summary>
    /// Runs one command. Returning null closes the connection without a reply (a node that was killed).
    /// Must not throw for bad input: answer an error reply instead.
    /// </summary>
    protected abstract ValueTask<RespValue?> ExecuteAsync(RespCommand command, ConnectionContext connection);

    /// <summary>
    /// Decides, before a command runs, whether the network delivers it (fault injection). A dropped command
    /// and every command after it on the connection never run, as when a TCP stream breaks; a command whose
    /// reply is lost runs, and the connection closes before its reply.
    /// </summary>
    protected virtual Delivery Admit(RespCommand command) => Delivery.Deliver;

    /// <inheritdoc />
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        PipeReader input = connection.Transport.Input;
        PipeWriter output = connection.Transport.Output;
        var started = new List<ValueTask<RespValue?>>();
        var deadline = new ReadDeadline(input, FrameTimeout, IdleTimeout);
        try
        {
            while (true)
            {
                ReadResult result = await input.ReadAsync(connection.ConnectionClosed);
                ReadOnlySequence<byte> buffer = result.Buffer;
                string? protocolError = null;
                bool closeAfterReplies = false;
                int replies = 0;
                try
                {
                    while (!closeAfterReplies && RespReader.TryReadCommand(ref buffer, Limits, out RespCommand? command))
                    {
                        if (command!.Count == 0) continue; // empty inline line
                        Delivery delivery = Admit(command);
                        closeAfterReplies = delivery != Delivery.Deliver;
                        if (delivery == Delivery.Drop) break;
                        started.Add(ExecuteAsync(command, connection));
                        if (delivery == Delivery.Deliver) replies++;
                    }
                }
                catch (RespProtocolException e)
                {
                    protocolError = e.Message;
                }
                bool consumed = buffer.Length != result.Buffer.Length;
                long unparsed = buffer.Length;
                input.AdvanceTo(buffer.Start, buffer.End);

                for (int i = 0; i < started.Count; i++)
                {
                    RespValue? reply = await started[i];
                    if (reply is null || i >= replies)
                    {
                        await output.FlushAsync();
                        return;
                    }
                    RespWriter.WriteValue(output, reply);
                }
                started.Clear();
                if (closeAfterReplies)
                {
                    await output.FlushAsync();
                    return;
                }

                if (protocolError is not null)
                {
                    RespWriter.WriteError(output, $"{ErrorCodes.Err} Protocol error: {protocolError}");
                    await output.FlushAsync();
                    return;
                }
                FlushResult flush = await output.FlushAsync();
                if (result.IsCompleted || flush.IsCompleted) return;
                if (result.IsCanceled && !deadline.MayHaveWoken) return; // canceled by someone else: stop, as always

                // The clocks start now, after the replies went out: only the client's own slowness counts.
                switch (deadline.Next(unparsed > 0, consumed))
                {
                    case Expiry.Frame:
                        RespWriter.WriteError(output, string.Create(CultureInfo.InvariantCulture,
                            $"{ErrorCodes.Err} Protocol error: command incomplete after {FrameTimeout.TotalMilliseconds:0} ms"));
                        await output.FlushAsync();
                        return;
                    case Expiry.Idle:
                        return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionResetException
                                     or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException)
        {
            // The peer went away or the node is stopping: nothing to answer.
        }
        finally
        {
            deadline.Dispose();
            await input.CompleteAsync();
            await output.CompleteAsync();
        }
    }

    private static TimeSpan CheckTimeout(TimeSpan value) =>
        value == Timeout.InfiniteTimeSpan || (value > TimeSpan.Zero && value.TotalMilliseconds <= int.MaxValue)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "a timeout must be positive (or Timeout.InfiniteTimeSpan)");

    private enum Expiry
    {
        None,
        Frame,
        Idle,
    }

    /// <summary>
    /// The frame and idle clocks of one connection. A timer wakes the read loop (<see cref="PipeReader.CancelPendingRead"/>)
    /// when the current deadline passes; the loop then checks the clock itself, so a late or early tick is harmless.
    /// </summary>
    private sealed class ReadDeadline(PipeReader input, TimeSpan frameTimeout, TimeSpan idleTimeout) : IDisposable
    {
        private const long None = long.MaxValue;
        private readonly long _frameMs = frameTimeout == Timeout.InfiniteTimeSpan ? None : (long)frameTimeout.TotalMilliseconds;
        private readonly long _idleMs = idleTimeout == Timeout.InfiniteTimeSpan ? None : (long)idleTimeout.TotalMilliseconds;
        private Timer? _timer;
        private long _frameDeadline = None;
        private long _idleDeadline = None;
        private long _timerDeadline = None;
        private bool _disposed;
        private bool _fired;

        /// <summary>True when this clock's timer may have cancelled the pending read.</summary>
        public bool MayHaveWoken => _timerDeadline != None || Volatile.Read(ref _fired);

        /// <summary>
        /// Called before each read: <paramref name="partial"/> when unparsed bytes (the start of a command) remain,
        /// <paramref name="consumed"/> when the last read completed at least one command (so the partial one is new).
        /// </summary>
        public Expiry Next(bool partial, bool consumed)
        {
            long now = Environment.TickCount64;
            if (Volatile.Read(ref _fired))
            {
                // The timer is spent (perhaps a tick early): it must be set again even for the same deadline.
                Volatile.Write(ref _fired, false);
                _timerDeadline = None;
            }
            if (partial)
            {
                _idleDeadline = None;
                if (_frameMs == None) _frameDeadline = None;
                else if (_frameDeadline == None || consumed) _frameDeadline = now + _frameMs;
                else if (now >= _frameDeadline) return Expiry.Frame;
            }
            else
            {
                _frameDeadline = None;
                if (_idleMs == None) _idleDeadline = None;
                else if (_idleDeadline == None || consumed) _idleDeadline = now + _idleMs;
                else if (now >= _idleDeadline) return Expiry.Idle;
            }
            Arm(Math.Min(_frameDeadline, _idleDeadline), now);
            return Expiry.None;
        }

        private void Arm(long deadline, long now)
        {
            if (deadline == _timerDeadline) return;
            _timerDeadline = deadline;
            if (deadline == None)
            {
                _timer?.Change(Timeout.Infinite, Timeout.Infinite);
                return;
            }
            long due = Math.Max(1, deadline - now);
            _timer ??= new Timer(static state => ((ReadDeadline)state!).Wake(), this, Timeout.Infinite, Timeout.Infinite);
            _timer.Change(due, Timeout.Infinite);
        }

        private void Wake()
        {
            if (Volatile.Read(ref _disposed)) return;
            Volatile.Write(ref _fired, true);
            try
            {
                input.CancelPendingRead();
            }
            catch (InvalidOperationException)
            {
                // The connection is already finishing.
            }
        }

        public void Dispose()
        {
            Volatile.Write(ref _disposed, true);
            _timer?.Dispose();
        }
    }
}
