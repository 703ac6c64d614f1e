using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Tandem.Protocol;

namespace Tandem.Net;

/// <summary>Runs one command whose name and arity the node's <see cref="RespConnectionHandler.Table"/> table checked.</summary>
/// <remarks>Returning null closes the connection without a reply (a node that was killed). Must not throw for bad input.</remarks>
public delegate ValueTask<RespValue?> CommandHandler(RespCommand command, ConnectionContext connection);

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
/// The read loop every Tandem node uses: read from the pipe, parse the complete commands in the buffer (at most
/// <see cref="MaxBatchCommands"/>), look each up in <see cref="Table"/> and start it in order, then write
/// their replies in order and flush. Commands of one read therefore share one flush (and, on a primary, one
/// forwarded batch and one wait for the backup).
/// </summary>
/// <remarks>
/// Memory is bounded per connection (<see cref="MaxFrameBytes"/> of input plus the transport's read buffer,
/// about <see cref="OutputChunkBytes"/> of output plus the transport's send buffer) and for all connections
/// together (<see cref="MaxBufferedBytes"/>); docs/security.md gives the figures.
/// Two clocks bound how long a client may hold a connection without making progress (see
/// <see cref="FrameTimeout"/> and <see cref="IdleTimeout"/>). Both count only time spent waiting for the
/// client's bytes, never time the node spends running commands or waiting for the client to take its replies.
/// </remarks>
public abstract partial class RespConnectionHandler : ConnectionHandler
{
    /// <summary>The default <see cref="FrameTimeout"/>: 30 seconds.</summary>
    public static readonly TimeSpan DefaultFrameTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The default <see cref="MaxFrameBytes"/>: 1 MiB.</summary>
    public const long DefaultMaxFrameBytes = 1024 * 1024;

    /// <summary>The default <see cref="MaxBufferedBytes"/>: 2 GiB.</summary>
    public const long DefaultMaxBufferedBytes = 2L * 1024 * 1024 * 1024;

    /// <summary>
    /// Input each connection may hold outside <see cref="MaxBufferedBytes"/>: 64 KiB, so that small commands are
    /// served however full the budget is.
    /// </summary>
    public const long UnbudgetedInputBytes = 64 * 1024;

    /// <summary>
    /// Replies written before the handler flushes and waits for the transport to take them: 64 KiB. A large
    /// value is written in pieces of this size, so a client that does not read holds at most this much
    /// unflushed output plus the transport's send buffer.
    /// </summary>
    public const int OutputChunkBytes = 64 * 1024;

    /// <summary>
    /// Most commands of one read started before their replies are written (a primary forwards the writes among
    /// them in one batch). The next ones are started only once these replies are flushed, so a client that does
    /// not read its replies gets no more commands run.
    /// </summary>
    public const int MaxBatchCommands = 1024;

    /// <summary>
    /// Input a connection's loop takes, 64 KiB, before it steps off to the thread pool once. With socket
    /// completions inline (<see cref="SocketEventLoop"/>) the loop runs on an epoll thread, which serves every
    /// other socket of the process too; a connection whose input never runs dry (a snapshot being sent to this
    /// backup, a client that pipelines without pause) would keep that thread for ever, because a read with data
    /// waiting completes at once. The coordinator's replies to this server's pings would then go unread, and the
    /// coordinator would take it for dead.
    /// </summary>
    public const long YieldAfterInputBytes = 64 * 1024;

    private TimeSpan _frameTimeout = DefaultFrameTimeout;
    private TimeSpan _idleTimeout = Timeout.InfiniteTimeSpan;
    private long _maxFrameBytes = DefaultMaxFrameBytes;
    private long _maxBufferedBytes = DefaultMaxBufferedBytes;
    private long _bufferedBytes;

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
    /// Most bytes of one command, framing included. An incomplete command that grows past it is cut: the
    /// connection gets <c>-ERR Protocol error: ...</c> and is closed. Default <see cref="DefaultMaxFrameBytes"/>.
    /// Applies to reads after the change.
    /// </summary>
    public long MaxFrameBytes
    {
        get => Volatile.Read(ref _maxFrameBytes);
        set => Volatile.Write(ref _maxFrameBytes, value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "must be at least 1"));
    }

    /// <summary>
    /// The memory budget of all connections of this handler together: most bytes of input they may hold at once
    /// beyond <see cref="UnbudgetedInputBytes"/> each (incomplete commands, and commands read but not yet run).
    /// A connection whose input would pass it gets <c>-ERR Protocol error: ...</c> and is closed. Default
    /// <see cref="DefaultMaxBufferedBytes"/>.
    /// </summary>
    public long MaxBufferedBytes
    {
        get => Volatile.Read(ref _maxBufferedBytes);
        set => Volatile.Write(ref _maxBufferedBytes, value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "must not be negative"));
    }

    /// <summary>Bytes of input held against <see cref="MaxBufferedBytes"/> right now.</summary>
    public long BufferedBytes => Interlocked.Read(ref _bufferedBytes);

    private static readonly RespValue Pong = RespValue.Simple("PONG");

    /// <summary>
    /// Creates a handler whose table holds the commands every node answers: PING, ECHO, QUIT and the connection
    /// commands (HELLO, CLIENT, COMMAND...: RespConnectionHandler.Connection.cs).
    /// </summary>
    protected RespConnectionHandler()
    {
        Table.Add("PING", -1, CommandFlags.Fast, static (command, _) => new(command.Count switch
        {
            1 => Pong,
            2 => RespValue.Bulk(command[1]),
            _ => CommandErrors.WrongArity("ping"),
        }));
        Table.Add("ECHO", 2, CommandFlags.Fast, static (command, _) => new(RespValue.Bulk(command[1])));
        Table.Add("QUIT", -1, CommandFlags.Fast | CommandFlags.CloseAfterReply, static (_, _) => new(RespValue.Ok));
        AddConnectionCommands();
    }

    /// <summary>
    /// The commands this node answers, by name: the one place for names, arities and flags. An unknown command or
    /// a wrong number of arguments gets Redis's error text, without reaching a handler.
    /// </summary>
    public CommandTable<CommandHandler> Table { get; } = new();

    /// <summary>
    /// Runs one command; <paramref name="spec"/> is its entry in <see cref="Table"/>, null when the name is unknown.
    /// The default answers an unknown name or a wrong number of arguments with Redis's error and otherwise calls
    /// the entry's handler. Returning null closes the connection without a reply.
    /// </summary>
    protected virtual ValueTask<RespValue?> ExecuteAsync(RespCommand command, CommandSpec<CommandHandler>? spec, ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (spec is null) return new(CommandErrors.Unknown(command));
        if (!spec.AcceptsCount(command.Count)) return new(CommandErrors.WrongArity(spec.LowerName));
        return spec.Handler(command, connection);
    }

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
        var output = new ReplyWriter(connection.Transport.Output);
        var started = new List<ValueTask<RespValue?>>();
        var startedMeta = new List<ReplyMeta>();
        ClientInfo client = Connect(connection);
        var deadline = new ReadDeadline(input, FrameTimeout, IdleTimeout);
        var scan = new RespScanState();
        long reserved = 0;
        long sinceYield = 0;
        PushChannel? pushes = OpenPushChannel(connection, input); // null unless the node has pub/sub (RespConnectionHandler.PubSub.cs)
        try
        {
            while (true)
            {
                ReadResult result = await input.ReadAsync(connection.ConnectionClosed);
                ReadOnlySequence<byte> buffer = result.Buffer;
                string? protocolError = null;
                bool closeAfterReplies = false;
                bool quit = false;
                bool batchFull = false;
                int replies = 0;

                try
                {
                    while (!closeAfterReplies && !quit)
                    {
                        if (started.Count >= MaxBatchCommands) { batchFull = true; break; }
                        if (!RespReader.TryReadCommand(ref buffer, Limits, ref scan, out RespCommand? command)) break;
                        if (command!.Count == 0) continue; // empty inline line
                        Delivery delivery = Admit(command);
                        closeAfterReplies = delivery != Delivery.Deliver;
                        if (delivery == Delivery.Drop) break;
                        Table.TryFind(command.Args[0], out CommandSpec<CommandHandler>? spec);
                        long begun = Starting(client, spec);
                        started.Add(ExecuteAsync(command, spec, connection));
                        startedMeta.Add(Ran(client, spec, command, begun));
                        quit = spec is not null && (spec.Flags & CommandFlags.CloseAfterReply) != 0 || client.CloseAfterReply;
                        if (delivery == Delivery.Deliver) replies++;
                    }
                }
                catch (RespProtocolException e)
                {
                    protocolError = e.Message;
                }
                if (protocolError is null && !batchFull && buffer.Length > MaxFrameBytes)
                    protocolError = string.Create(CultureInfo.InvariantCulture, $"command longer than {MaxFrameBytes} bytes");
                bool consumed = buffer.Length != result.Buffer.Length;
                long unparsed = buffer.Length;
                sinceYield += result.Buffer.Length - unparsed;
                // Examining to the end lets the transport read on, up to its own read buffer size past this point:
                // a connection holds at most MaxFrameBytes plus that. A full batch examines nothing new, so the next
                // read returns at once with the commands still to run.
                input.AdvanceTo(buffer.Start, batchFull ? buffer.Start : buffer.End);

                // What stays held until the next read counts against the node's budget.
                long held = Math.Max(0, unparsed - UnbudgetedInputBytes);
                long total = Interlocked.Add(ref _bufferedBytes, held - reserved);
                reserved = held;
                if (protocolError is null && held > 0 && total > MaxBufferedBytes)
                    protocolError = string.Create(CultureInfo.InvariantCulture,
                        $"input buffers of all connections full ({MaxBufferedBytes} bytes)");

                for (int i = 0; i < started.Count; i++)
                {
                    // A reply still waiting (a write for its backup) does not hold back those written before it.
                    if (!started[i].IsCompleted && output.HasUnflushed && !await output.FlushAsync()) return;
                    RespValue? reply = await started[i];
                    if (reply is null || i >= replies)
                    {
                        await output.FlushAsync();
                        return;
                    }
                    if (reply.IsError) startedMeta[i].Counted?.Stats.Fail();
                    if (!await WriteReplyAsync(output, reply, startedMeta[i].Protocol)) return;
                }
                started.Clear();
                startedMeta.Clear();
                if (closeAfterReplies || quit)
                {
                    await output.FlushAsync();
                    return;
                }

                if (protocolError is not null)
                {
                    output.WriteError($"{ErrorCodes.Err} Protocol error: {protocolError}");
                    await output.FlushAsync();
                    return;
                }
                if (!await WritePushesAsync(pushes, output)) return; // messages published to this subscriber, between batches
                if (!await output.FlushAsync()) return;
                if (sinceYield >= YieldAfterInputBytes)
                {
                    // Fairness (see YieldAfterInputBytes): let the epoll thread serve the other sockets.
                    sinceYield = 0;
                    await Task.Yield();
                }
                if (batchFull) continue;
                if (result.IsCompleted) return;
                if (result.IsCanceled && !deadline.MayHaveWoken && pushes?.MayHaveWoken != true) return; // canceled by someone else: stop, as always

                // The clocks start now, after the replies went out: only the client's own slowness counts.
                switch (deadline.Next(unparsed > 0, consumed))
                {
                    case Expiry.Frame:
                        output.WriteError(string.Create(CultureInfo.InvariantCulture,
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
            Disconnect(client);
            Interlocked.Add(ref _bufferedBytes, -reserved);
            ClosePushChannel(pushes);
            deadline.Dispose();
            await input.CompleteAsync();
            await output.Output.CompleteAsync();
        }
    }

    /// <summary>
    /// Writes replies to the transport in pieces of at most <see cref="OutputChunkBytes"/>, flushing (and so
    /// waiting for a client that does not read, once the transport's send buffer is full) whenever that much is
    /// unflushed: the output a connection holds stays bounded however large or many its replies.
    /// </summary>
    private sealed class ReplyWriter(PipeWriter output) : IBufferWriter<byte>
    {
        private long _unflushed;

        public PipeWriter Output => output;

        public void Advance(int count)
        {
            output.Advance(count);
            _unflushed += count;
        }

        public Memory<byte> GetMemory(int sizeHint = 0) => output.GetMemory(sizeHint);

        public Span<byte> GetSpan(int sizeHint = 0) => output.GetSpan(sizeHint);

        public void WriteError(string text) => RespWriter.WriteError(this, text);

        /// <summary>Whether replies were written since the last flush.</summary>
        public bool HasUnflushed => _unflushed > 0;

        /// <summary>Flushes; false when the client is gone.</summary>
        public async ValueTask<bool> FlushAsync()
        {
            _unflushed = 0;
            FlushResult flush = await output.FlushAsync();
            return !flush.IsCompleted && !flush.IsCanceled;
        }

        /// <summary>Writes one reply in RESP <paramref name="protocol"/>, flushing as it goes; false when the client is gone.</summary>
        public async ValueTask<bool> WriteAsync(RespValue reply, int protocol)
        {
            switch (reply.Kind)
            {
                case RespKind.BulkString when reply.Payload is { Length: > OutputChunkBytes } bytes:
                    RespWriter.WriteBulkHeader(this, bytes.Length);
                    for (int at = 0; at < bytes.Length; at += OutputChunkBytes)
                    {
                        this.Write(bytes.Span.Slice(at, Math.Min(OutputChunkBytes, bytes.Length - at)));
                        if (_unflushed >= OutputChunkBytes && !await FlushAsync()) return false;
                    }
                    this.Write("\r\n"u8);
                    return true;
                case RespKind.Array when reply.Items is not null:
                    RespWriter.WriteArrayHeader(this, reply.Items.Length);
                    foreach (RespValue item in reply.Items)
                        if (!await WriteAsync(item, protocol)) return false;
                    return true;
                default:
                    RespWriter.WriteValue(this, reply, protocol);
                    return _unflushed < OutputChunkBytes || await FlushAsync();
            }
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
