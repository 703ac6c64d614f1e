using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.Server;

/// <summary>
/// The primary's link to the backup of one view. It connects, sends a snapshot in chunks, then streams
/// every later write in batches over the same connection, many batches in flight. Each acknowledged batch
/// advances the commit index and confirms the reads that were waiting when it was sent. On any failure it
/// reconnects and resumes: once the snapshot is taken, the primary keeps it until the backup installs it, and the
/// outbox keeps every write the backup has not acknowledged, so a new connection asks the backup how far it got
/// (<c>RESUME</c>: how many parts of the transfer, or which write of the stream) and sends the rest; a lost message
/// costs its own retransmission, not a new state transfer. Only when the backup does not hold the session (it
/// restarted, or refused the transfer's end) is a fresh snapshot sent, and the writes in between are in that snapshot.
/// </summary>
internal sealed class Replicator
{
    private const int MaxOpsPerBatch = 4096;
    private const int MaxBatchBytes = 4 * 1024 * 1024;
    /// <summary>
    /// Batches sent and not yet acknowledged, at most. Group commit: while these are on the way, new writes
    /// gather in the outbox and go out together when an acknowledgement comes back, so under load a batch carries
    /// everything the clients sent in one round trip; when idle a write goes out at once.
    /// </summary>
    private const int MaxBatchesInFlight = 2;
    private const int SnapshotChunkEntries = 1024;

    /// <summary>
    /// Bytes of entries per snapshot chunk, below the large object heap's threshold: a chunk's buffers are
    /// short-lived small objects, and a transfer causes no full collection of the primary's heap (which the
    /// large buffers of a 1 MiB chunk did, once per few chunks, at a cost that grew with the store).
    /// </summary>
    private const int SnapshotChunkBytes = 60 * 1024;

    /// <summary>Snapshot chunks sent and not yet acknowledged, at most.</summary>
    private const int SnapshotChunksInFlight = 32;

    private readonly Replica _replica;
    private readonly View _view;
    private readonly ServerNodeOptions _options;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly object _outboxLock = new();
    private readonly FaultInjection? _faults;
    private List<(Operation Op, long Seq)> _ops = new();
    private List<PendingRead> _reads = new();
    private bool _capturing;
    private Link? _link;
    private long _syncedView;
    private long _backlogBytes;
    private long _failingSince;
    private bool _progressed;

    /// <summary>
    /// The session the backup may hold, in whole or in part: its snapshot was taken, and since then the outbox has
    /// kept every write the backup has not acknowledged. Null: the next attempt sends a fresh snapshot. Set and
    /// cleared by the attempt loop; a pump that loses writes from the outbox clears it too.
    /// </summary>
    private string? _resumable;

    /// <summary>
    /// The state transfer under way, from the snapshot's capture until the backup confirms its <c>END</c>: kept
    /// across connections, so that a broken one costs only the parts the backup did not get.
    /// </summary>
    private Transfer? _transfer;

    /// <summary>One state transfer: its session, its snapshot, and the part the last attempt started from.</summary>
    private sealed class Transfer(string session, Snapshot snapshot)
    {
        public string Session { get; } = session;
        public Snapshot Snapshot { get; } = snapshot;
        public long StartedFrom { get; set; }
    }

    /// <summary>A read waiting for its confirmation: the last write its value may include, and its reply.</summary>
    private readonly record struct PendingRead(long ReadIndex, TaskCompletionSource<RespValue?> Done);

    /// <summary>
    /// A batch sent and not yet acknowledged: its writes (kept, to be sent again if the link breaks), its last write,
    /// its size, the reads it confirms and when it went out.
    /// </summary>
    private readonly record struct Batch(List<(Operation Op, long Seq)> Ops, long LastSeq, long Bytes, List<PendingRead> Reads, long SentAt);

    /// <summary>Bytes an operation holds in the outbox (its key and value, plus bookkeeping).</summary>
    internal static long SizeOf(in Operation op) => ApplyBatch.SizeOf(op);

    public Replicator(Replica replica, View view, ServerNodeOptions options, ILogger log)
    {
        _replica = replica;
        _view = view;
        _options = options;
        _log = log;
        _faults = options.Faults;
    }

    /// <summary>Bytes of writes held for the backup: queued, or sent and not yet acknowledged.</summary>
    public long BacklogBytes => Interlocked.Read(ref _backlogBytes);

    /// <summary>The view whose backup holds the whole state (0 until the snapshot is installed).</summary>
    public long SyncedView => Volatile.Read(ref _syncedView);

    public void Start() => _ = RunAsync();

    public void Stop()
    {
        _stop.Cancel();
        FailReads(TryAgain("the view changed"));
    }

    /// <summary>Queues a sequenced write. Called under the replica's lock, right after applying it.</summary>
    public void Enqueue(in Operation op, long seq)
    {
        lock (_outboxLock)
        {
            if (!_capturing) return; // not connected: the next snapshot will carry it
            _ops.Add((op, seq));
            Interlocked.Add(ref _backlogBytes, SizeOf(op));
        }
    }

    /// <summary>
    /// Completes <paramref name="done"/> (null) once a batch sent after this call is acknowledged (the backup still
    /// takes this server as its primary) and the backup holds every write through <paramref name="readIndex"/> (the
    /// value read is committed): Raft's ReadIndex. Completes it with an error when either cannot be shown.
    /// Called under the replica's lock, so read indexes arrive in order; <paramref name="done"/> is completed
    /// outside that lock (its continuations run inline), but for a replicator already stopped, before anyone awaits it.
    /// </summary>
    public void RequestConfirmation(long readIndex, TaskCompletionSource<RespValue?> done)
    {
        lock (_outboxLock)
        {
            _reads.Add(new PendingRead(readIndex, done));
        }
        _faults?.Pass(FaultPoint.ReadRegistered);
        if (_stop.IsCancellationRequested) done.TrySetResult(TryAgain("the view changed")); // no one awaits it yet
    }

    /// <summary>Called under the replica's lock when the snapshot is taken: later writes are streamed.</summary>
    public void ClearOutboxLocked()
    {
        lock (_outboxLock)
        {
            _ops.Clear();
            Interlocked.Exchange(ref _backlogBytes, 0);
            _capturing = true;
        }
    }

    private async Task RunAsync()
    {
        CancellationToken stop = _stop.Token;
        TimeSpan backoff = TimeSpan.FromMilliseconds(10);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await SyncAndStreamAsync(stop);
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                lock (_outboxLock)
                {
                    if (Volatile.Read(ref _resumable) is null)
                    {
                        // The next attempt sends a fresh snapshot, which carries every write applied until then.
                        _capturing = false;
                        _ops.Clear();
                        Interlocked.Exchange(ref _backlogBytes, 0);
                    }
                }
                if (_progressed)
                {
                    _progressed = false;
                    backoff = TimeSpan.FromMilliseconds(10);
                }
                FailReads(TryAgain($"the backup {_view.Backup} did not confirm"));
                _log.LogDebug("{Me}: replication to {Backup} failed: {Error}", _replica.Me, _view.Backup, e.Message);
                if (e is ReplicationRefusedException { Fenced: true }) _replica.OnFenced();
                else NoteFailure(e);
                try
                {
                    await Task.Delay(backoff, _options.TimeProvider, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.PingInterval.Ticks));
            }
            catch (Exception)
            {
                return;
            }
        }
    }

    private async Task SyncAndStreamAsync(CancellationToken stop)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(stop);
        CancellationToken ct = attempt.Token;
        RespClientConnection conn = await ConnectWithinTimeoutAsync(
            t => RespClientConnection.ConnectAsync(_options.DialAddress(_view.Backup), t, _options.RespLimits), ct);
        await using var _ = conn;
        string? session = Volatile.Read(ref _resumable);
        // A new connection first asks the backup how far it got in the session it may hold (RESUME).
        RespValue? resumed = session is null ? null : await SendPartAsync(conn, session, "RESUME", ct);
        if (resumed is { IsError: true, ErrorCode: ErrorCodes.StaleView }) throw new ReplicationRefusedException(resumed); // fenced
        long from;
        if (session is not null && resumed is { Kind: RespKind.Integer } && ResumeStream(resumed.Integer) is { } position)
        {
            from = position;
        }
        else
        {
            if (session is not null && _transfer is { } transfer && transfer.Session == session && PartsHeld(resumed!) is { } parts)
            {
                if (parts > transfer.StartedFrom) NoteProgress(); // the last attempt got parts through
                _log.LogDebug("{Me}: resuming the state transfer to {Backup} at part {Part}", _replica.Me, _view.Backup, parts);
            }
            else
            {
                if (resumed is not null)
                    _log.LogDebug("{Me}: backup {Backup} does not hold session {Session} ({Reply}); sending a snapshot", _replica.Me, _view.Backup, session, resumed);
                Volatile.Write(ref _resumable, null);
                _transfer = null;
                session = Guid.NewGuid().ToString("N")[..16];
                // The backup accepts this session before the primary pays for a snapshot (and starts capturing
                // writes); an answer to RESUME has shown that already.
                if (resumed is null) Check(await SendPartAsync(conn, session, "OPEN", ct));
                Snapshot? snapshot = _replica.SnapshotFor(this);
                if (snapshot is null) return;
                transfer = new Transfer(session, snapshot);
                parts = 0;
                _transfer = transfer;
                // From here the outbox keeps the writes captured since the snapshot across broken connections.
                Volatile.Write(ref _resumable, session);
            }
            transfer.StartedFrom = parts;
            await SendSnapshotAsync(conn, transfer, parts, ct);
            from = transfer.Snapshot.LastApplied;
            Synced(from);
        }

        // The writes go on a connection of their own, pipelined: frames are written straight into its buffer by
        // whoever has work (a client's connection that just applied writes, or this loop), acks are read in order.
        RespStream stream = await ConnectWithinTimeoutAsync(
            t => RespStream.ConnectAsync(RespClientConnection.ParseEndPoint(_options.DialAddress(_view.Backup)), _options.RespLimits, t), ct);
        await using var streamOwner = stream;
        await conn.DisposeAsync(); // the snapshot's connection is done
        var link = new Link(stream, session, from, attempt);
        Volatile.Write(ref _link, link);
        Task acks = AcknowledgeAsync(link);
        try
        {
            while (true)
            {
                // Client connections pump the writes they applied (Pump); this loop sends what was queued before
                // the link was up, is the safety net after that, and checks that the backup answers in time.
                await PumpAsync(link);
                await Task.WhenAny(acks, Task.Delay(_options.PingInterval, _options.TimeProvider, ct));
                if (acks.IsCompleted) await acks; // surfaces the failure
                ct.ThrowIfCancellationRequested();
                link.CheckDeadline(_options.TimeProvider, _options.BackupTimeout, _view.Backup);
            }
        }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested)
        {
            // The link failed (a pump or the acknowledgement loop cancelled this attempt): that failure, a timeout
            // for instance, is the real cause, and decides whether the backup is reported.
            if (link.Failure is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            throw;
        }
        finally
        {
            Interlocked.CompareExchange(ref _link, null, link);
            attempt.Cancel();
            try
            {
                await acks; // after it, nothing else touches the backlog of this attempt
            }
            catch (Exception)
            {
            }
            // No pump of this link sends again (a cancelled one ends at once): what was in flight is all there is.
            while (Interlocked.CompareExchange(ref link.Pumping, 1, 0) != 0) await Task.Yield();
            List<Batch> unacknowledged = link.DrainInFlight();
            lock (_outboxLock)
            {
                // The backup may not have them: they go again, first, on the next connection.
                _ops.InsertRange(0, unacknowledged.SelectMany(b => b.Ops));
            }
            foreach (Batch batch in unacknowledged) Complete(batch.Reads, TryAgain("the backup link failed"));
        }
    }

    /// <summary>The backup holds the whole state through <paramref name="seq"/>: the view may be acknowledged.</summary>
    private void Synced(long seq)
    {
        _transfer = null;
        NoteProgress();
        Volatile.Write(ref _syncedView, _view.Number);
        _log.LogInformation("{Me}: backup {Backup} synced for view {View} at write {Seq}", _replica.Me, _view.Backup, _view.Number, seq);
        _replica.OnBackupSynced(this, seq);
    }

    /// <summary>The backup makes progress: it is not reported, and the next attempt comes soon after a failure.</summary>
    private void NoteProgress()
    {
        Interlocked.Exchange(ref _failingSince, 0);
        _progressed = true;
    }

    /// <summary>
    /// The backup installed the session's snapshot and holds every write through <paramref name="held"/> (its answer
    /// to <c>RESUME</c>): drops from the outbox what it already holds. Returns <paramref name="held"/>, from which the
    /// stream goes on; null when the outbox does not start right after it (a fresh snapshot is sent then).
    /// </summary>
    private long? ResumeStream(long held)
    {
        lock (_outboxLock)
        {
            int n = 0;
            long bytes = 0;
            while (n < _ops.Count && _ops[n].Seq <= held) bytes += SizeOf(_ops[n++].Op);
            if (n < _ops.Count && _ops[n].Seq != held + 1)
            {
                _log.LogWarning("{Me}: backup {Backup} holds write {Held}, but the outbox goes on from {Next}; sending a snapshot",
                    _replica.Me, _view.Backup, held, _ops[n].Seq);
                return null;
            }
            _ops.RemoveRange(0, n);
            Interlocked.Add(ref _backlogBytes, -bytes);
            if (_ops.Count == 0) Interlocked.Exchange(ref _failingSince, 0); // caught up: nothing is owed
        }
        _progressed = true;
        _log.LogDebug("{Me}: resumed the stream to {Backup} after write {Held}", _replica.Me, _view.Backup, held);
        if (SyncedView != _view.Number) Synced(held); // the reply to END was lost, not the snapshot
        else _replica.OnBackupAcknowledged(this, held);
        return held;
    }

    /// <summary>The parts of a transfer in progress the backup holds, from its answer to <c>RESUME</c> (<c>*2 parts n</c>); else null.</summary>
    private static long? PartsHeld(RespValue answer) =>
        answer is { Kind: RespKind.Array, Items: [{ IsNull: false } name, { Kind: RespKind.Integer, Integer: >= 1 } parts] }
        && name.Payload.Span.SequenceEqual(Replica.ResumeParts) ? parts.Integer : null;

    /// <summary><c>REPL.SNAPSHOT view me session part</c>, a handshake of one argument, and its reply within the backup timeout.</summary>
    private Task<RespValue> SendPartAsync(RespClientConnection conn, string session, string part, CancellationToken ct) =>
        Deadline(conn.SendAsync(ct, Commands.ReplSnapshot, Num(_view.Number), _replica.Me, session, part), ct);

    /// <summary>Connects to the backup, giving up after the backup timeout.</summary>
    private async Task<T> ConnectWithinTimeoutAsync<T>(Func<CancellationToken, Task<T>> connect, CancellationToken ct)
    {
        using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        connectTimeout.CancelAfter(_options.BackupTimeout);
        try
        {
            return await connect(connectTimeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"could not connect to {_view.Backup} within {_options.BackupTimeout.TotalMilliseconds:0} ms");
        }
    }

    /// <summary>
    /// Sends what the outbox holds now, on the caller's thread, if no one else is sending: called by the replica
    /// after a client's batch was applied, so the writes go out without a thread switch. Never throws; a failure
    /// fails the link.
    /// </summary>
    public void Pump()
    {
        if (Volatile.Read(ref _link) is { } link) _ = PumpAsync(link);
    }

    private async Task PumpAsync(Link link)
    {
        while (!link.Attempt.IsCancellationRequested && Interlocked.CompareExchange(ref link.Pumping, 1, 0) == 0)
        {
            try
            {
                while (link.InFlightCount < MaxBatchesInFlight)
                {
                    if (_faults is not null && await _faults.PassAsync(FaultPoint.BeforeBatch, link.Attempt.Token))
                        throw new IOException("fault point: batch dropped");
                    List<(Operation Op, long Seq)> ops;
                    List<PendingRead> reads;
                    lock (_outboxLock)
                    {
                        if (_ops.Count == 0 && _reads.Count == 0) break;
                        ops = TakeBatch();
                        reads = _reads;
                        _reads = new();
                    }
                    try
                    {
                        var batchOps = new Operation[ops.Count];
                        long bytes = 0;
                        for (int i = 0; i < ops.Count; i++)
                        {
                            if (ops[i].Seq != link.LastSent + 1 + i) throw new InvalidOperationException($"outbox gap: {ops[i].Seq} after {link.LastSent + i}");
                            batchOps[i] = ops[i].Op;
                            bytes += SizeOf(ops[i].Op);
                        }
                        new ApplyBatch(_view.Number, _replica.Me, link.Session, link.LastSent + 1, _options.MaxValueBytes, batchOps).WriteTo(link.Stream.Output);
                        link.LastSent += ops.Count;
                        link.Sent(new Batch(ops, link.LastSent, bytes, reads, _options.TimeProvider.GetTimestamp()));
                    }
                    catch
                    {
                        // These writes left the outbox without getting in flight (or the outbox has a gap): the backup
                        // cannot be brought up to date from it, so the next attempt sends a snapshot.
                        Volatile.Write(ref _resumable, null);
                        Complete(reads, TryAgain("the backup link failed")); // the batch never got in flight
                        throw;
                    }
                    FlushResult flushed = await link.Stream.Output.FlushAsync(link.Attempt.Token);
                    if (flushed.IsCompleted) throw new IOException($"the backup {_view.Backup} closed the connection");
                }
            }
            catch (Exception e)
            {
                link.Fail(e);
                return;
            }
            finally
            {
                Volatile.Write(ref link.Pumping, 0);
            }
            // Work queued while this pump finished saw it busy and left it here: take it, or leave it to the pump
            // that now holds the flag.
            lock (_outboxLock)
            {
                if (_ops.Count == 0 && _reads.Count == 0) return;
            }
            if (link.InFlightCount >= MaxBatchesInFlight) return; // the acknowledgement loop pumps again
        }
    }

    /// <summary>Takes the oldest writes of the outbox, up to the batch limits (at least one). Called under the outbox lock.</summary>
    private List<(Operation Op, long Seq)> TakeBatch()
    {
        int n = 0;
        long bytes = 0;
        while (n < _ops.Count && n < MaxOpsPerBatch)
        {
            long size = _ops[n].Op.Size;
            if (n > 0 && bytes + size > MaxBatchBytes) break;
            bytes += size;
            n++;
        }
        if (n == _ops.Count)
        {
            List<(Operation, long)> all = _ops;
            _ops = new();
            return all;
        }
        List<(Operation, long)> batch = _ops.GetRange(0, n);
        _ops.RemoveRange(0, n);
        return batch;
    }

    private async Task AcknowledgeAsync(Link link)
    {
        // Reads whose confirmation came back but whose read index is beyond the acknowledged writes: they wait
        // for the batch that carries their last write (read indexes only grow, so a queue keeps them in order).
        var awaitingCommit = new Queue<PendingRead>();
        void OnReply(RespValue reply)
        {
            Batch batch = link.Acknowledged();
            if (reply.IsError || reply.Kind != RespKind.Integer || reply.Integer != batch.LastSeq)
            {
                Complete(batch.Reads, TryAgain($"the backup refused: {reply.Text}"));
                throw new ReplicationRefusedException(reply);
            }
            Interlocked.Add(ref _backlogBytes, -batch.Bytes);
            Interlocked.Exchange(ref _failingSince, 0); // the backup makes progress
            _replica.OnBackupAcknowledged(this, batch.LastSeq);
            foreach (PendingRead read in batch.Reads) awaitingCommit.Enqueue(read);
            while (awaitingCommit.TryPeek(out PendingRead read) && read.ReadIndex <= batch.LastSeq)
                awaitingCommit.Dequeue().Done.TrySetResult(null);
        }
        try
        {
            await link.Stream.ReadRepliesAsync(OnReply, () => _ = PumpAsync(link), link.Attempt.Token);
        }
        catch (Exception e)
        {
            link.Fail(e);
            throw;
        }
        finally
        {
            RespValue failed = TryAgain("the backup link failed before the read's writes were confirmed");
            while (awaitingCommit.TryDequeue(out PendingRead read)) read.Done.TrySetResult(failed);
        }
    }

    /// <summary>One attempt's stream of batches: what was sent and is not yet acknowledged, and who is sending.</summary>
    private sealed class Link(RespStream stream, string session, long lastSent, CancellationTokenSource attempt)
    {
        private readonly Queue<Batch> _inFlight = new();
        private Exception? _failure;

        public RespStream Stream { get; } = stream;
        public string Session { get; } = session;
        public CancellationTokenSource Attempt { get; } = attempt;

        /// <summary>The last write sent (only the pump holding <see cref="Pumping"/> changes it).</summary>
        public long LastSent = lastSent;

        /// <summary>1 while a pump sends.</summary>
        public int Pumping;

        /// <summary>What failed the link, if it failed.</summary>
        public Exception? Failure => Volatile.Read(ref _failure);

        public int InFlightCount { get { lock (_inFlight) return _inFlight.Count; } }

        public void Sent(Batch batch)
        {
            lock (_inFlight) _inFlight.Enqueue(batch);
        }

        /// <summary>The oldest batch in flight, which the reply just read acknowledges.</summary>
        public Batch Acknowledged()
        {
            lock (_inFlight)
            {
                return _inFlight.TryDequeue(out Batch batch) ? batch : throw new RespProtocolException("a reply without a batch");
            }
        }

        public List<Batch> DrainInFlight()
        {
            lock (_inFlight)
            {
                var all = _inFlight.ToList();
                _inFlight.Clear();
                return all;
            }
        }

        /// <summary>Fails the link when the oldest batch in flight has waited longer than <paramref name="timeout"/>.</summary>
        public void CheckDeadline(TimeProvider time, TimeSpan timeout, string backup)
        {
            long sentAt;
            lock (_inFlight)
            {
                if (!_inFlight.TryPeek(out Batch oldest)) return;
                sentAt = oldest.SentAt;
            }
            if (time.GetElapsedTime(sentAt) >= timeout)
                throw new TimeoutException($"the backup {backup} did not answer within {timeout.TotalMilliseconds:0} ms");
        }

        public void Fail(Exception e)
        {
            Interlocked.CompareExchange(ref _failure, e, null);
            try { Attempt.Cancel(); } catch (ObjectDisposedException) { }
        }
    }

    /// <summary>
    /// Sends <paramref name="transfer"/>'s snapshot from part <paramref name="skip"/> on (<c>BEGIN</c> is part 0, then
    /// each chunk, then <c>END</c>), and waits for the backup to install it. The parts come out of the snapshot the same
    /// way every time, so a resumed transfer sends exactly the ones the backup has not applied.
    /// </summary>
    private async Task SendSnapshotAsync(RespClientConnection conn, Transfer transfer, long skip, CancellationToken ct)
    {
        string session = transfer.Session;
        Snapshot snapshot = transfer.Snapshot;
        var pending = new Queue<Task<RespValue>>();
        long part = 0;
        bool Skip() => part++ < skip; // counts the part about to be made; true when the backup holds it
        async Task SendFrame(byte[] frame)
        {
            if (_faults is not null && part > 1 && await _faults.PassAsync(FaultPoint.SnapshotChunk, ct))
                throw new IOException("fault point: snapshot chunk dropped");
            pending.Enqueue(conn.SendFrameAsync(frame, ct));
            while (pending.Count > SnapshotChunksInFlight) Check(await Deadline(pending.Dequeue(), ct));
        }
        Task Send(List<byte[]> args)
        {
            if (Skip()) return Task.CompletedTask;
            var frame = new System.Buffers.ArrayBufferWriter<byte>();
            RespWriter.WriteCommand(frame, args);
            return SendFrame(frame.WrittenSpan.ToArray());
        }
        List<byte[]> Header(string part) =>
        [
            "REPL.SNAPSHOT"u8.ToArray(), Replica.Ascii(_view.Number), System.Text.Encoding.UTF8.GetBytes(_replica.Me),
            System.Text.Encoding.ASCII.GetBytes(session), System.Text.Encoding.ASCII.GetBytes(part),
        ];

        List<byte[]> begin = Header("BEGIN");
        begin.Add(Replica.Ascii(snapshot.LastApplied));
        begin.Add(Replica.Ascii(snapshot.Entries.Count));
        begin.Add(Replica.Ascii(snapshot.Clock));
        await Send(begin);

        // The store's entries go as they are laid out in memory, one argument each: the backup keeps each one it
        // reads as its own entry, with no copy in between.
        IReadOnlyList<byte[]> entries = snapshot.Entries;
        for (int start = 0; start < entries.Count;)
        {
            int stop = start;
            long size = 0;
            while (stop < entries.Count && stop - start < SnapshotChunkEntries && size < SnapshotChunkBytes) size += entries[stop++].Length;
            if (Skip())
            {
                start = stop;
                continue;
            }
            var frame = new System.Buffers.ArrayBufferWriter<byte>((int)size + (stop - start) * 16 + 256);
            RespWriter.WriteArrayHeader(frame, 5 + (stop - start));
            RespWriter.WriteBulk(frame, "REPL.SNAPSHOT"u8);
            RespWriter.WriteBulk(frame, _view.Number);
            RespWriter.WriteBulk(frame, _replica.Me);
            RespWriter.WriteBulk(frame, session);
            RespWriter.WriteBulk(frame, "ENTRIES"u8);
            for (int i = start; i < stop; i++) RespWriter.WriteBulk(frame, entries[i]);
            await SendFrame(frame.WrittenSpan.ToArray());
            start = stop;
        }

        List<byte[]> chunk;
        long bytes;
        // Deadlines: key then Unix milliseconds, for the keys that have one.
        chunk = Header("EXPIRES");
        bytes = 0;
        foreach ((byte[] key, long deadline) in snapshot.Deadlines)
        {
            chunk.Add(key);
            chunk.Add(Replica.Ascii(deadline));
            bytes += key.Length + 40;
            if (chunk.Count >= SnapshotChunkEntries * 2 || bytes >= SnapshotChunkBytes)
            {
                await Send(chunk);
                chunk = Header("EXPIRES");
                bytes = 0;
            }
        }
        if (chunk.Count > 5) await Send(chunk);

        // Cut by bytes too: one session may hold many saved replies of a whole value each, so a session may
        // span chunks (the backup merges its parts).
        chunk = Header("DUPS");
        bytes = 0;
        foreach ((long client, DuplicateTable.ClientSession s) in snapshot.Duplicates.Clients)
        {
            int countAt = StartSession(chunk, client, s.AckedThrough);
            int n = 0;
            bytes += 64;
            foreach ((long seq, SavedReply saved) in s.Replies)
            {
                byte[] reply = Replica.EncodeReply(saved.Reply);
                chunk.Add(Replica.Ascii(seq));
                chunk.Add(Replica.Ascii(saved.LogSeq));
                chunk.Add(reply);
                n++;
                bytes += 40 + reply.Length;
                if (bytes >= SnapshotChunkBytes)
                {
                    chunk[countAt] = Replica.Ascii(n);
                    await Send(chunk);
                    chunk = Header("DUPS");
                    countAt = StartSession(chunk, client, s.AckedThrough);
                    n = 0;
                    bytes = 64;
                }
            }
            chunk[countAt] = Replica.Ascii(n);
            if (chunk.Count >= SnapshotChunkEntries * 2 || bytes >= SnapshotChunkBytes)
            {
                await Send(chunk);
                chunk = Header("DUPS");
                bytes = 0;
            }
        }
        if (chunk.Count > 5) await Send(chunk);

        List<byte[]> end = Header("END");
        end.Add(Replica.Ascii(snapshot.Entries.Count));
        end.Add(Replica.Ascii(snapshot.Duplicates.ClientCount));
        end.Add(Replica.Ascii(snapshot.Duplicates.Floor));
        end.Add(Replica.Ascii(snapshot.Duplicates.HighestId));
        end.Add(Replica.Ascii(snapshot.Deadlines.Count));
        await Send(end);
        while (pending.Count > 1) Check(await Deadline(pending.Dequeue(), ct));
        RespValue last = await Deadline(pending.Dequeue(), ct);
        if (last.Kind != RespKind.Integer || last.Integer != snapshot.LastApplied) throw new ReplicationRefusedException(last);
    }

    // Starts one session's part in a DUPS chunk; returns where its reply count goes.
    private static int StartSession(List<byte[]> chunk, long client, long ackedThrough)
    {
        chunk.Add(Replica.Ascii(client));
        chunk.Add(Replica.Ascii(ackedThrough));
        chunk.Add([]);
        return chunk.Count - 1;
    }

    private static void Check(RespValue reply)
    {
        if (reply.IsError) throw new ReplicationRefusedException(reply);
    }

    /// <summary>Every wait on the backup has a deadline: a reply later than the backup timeout fails the attempt.</summary>
    private async Task<RespValue> Deadline(Task<RespValue> reply, CancellationToken ct)
    {
        try
        {
            return await reply.WaitAsync(_options.BackupTimeout, _options.TimeProvider, ct);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"the backup {_view.Backup} did not answer within {_options.BackupTimeout.TotalMilliseconds:0} ms");
        }
    }

    /// <summary>
    /// A failed attempt that is not fencing: the backup is unreachable, stalled or broken. Once it has failed
    /// for the backup timeout (or a reply was that late), ask the coordinator to replace it.
    /// </summary>
    private void NoteFailure(Exception e)
    {
        long now = _options.TimeProvider.GetTimestamp();
        long since = Interlocked.CompareExchange(ref _failingSince, now, 0);
        if (since == 0) since = now;
        if (e is TimeoutException || _options.TimeProvider.GetElapsedTime(since, now) >= _options.BackupTimeout)
            _replica.OnBackupUnreachable(this);
    }

    private void FailReads(RespValue error)
    {
        List<PendingRead> reads;
        lock (_outboxLock)
        {
            reads = _reads;
            _reads = new();
        }
        Complete(reads, error);
    }

    private static void Complete(List<PendingRead> waiters, RespValue? result)
    {
        foreach (PendingRead w in waiters) w.Done.TrySetResult(result);
    }

    private static string Num(long n) => n.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static RespValue TryAgain(string why) => RespValue.Error($"{ErrorCodes.TryAgain} {why}");

}

/// <summary>The backup answered a replication message with an error (or an unexpected reply).</summary>
internal sealed class ReplicationRefusedException(RespValue reply) : Exception($"backup replied {reply}")
{
    public bool Fenced => reply.IsError && reply.ErrorCode == ErrorCodes.StaleView;
}
