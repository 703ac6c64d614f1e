using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.Server;

/// <summary>
/// The replication engine of one server: its view of the world, its role, the sequencer and the commit
/// index. One lock (<see cref="_lock"/>) guards all of it and is never held across I/O. A write is
/// sequenced, applied and put on the backup's outbox in one critical section, so the order of writes is
/// decided exactly once. See docs/design.md for the state machine.
/// </summary>
public sealed partial class Replica : IDisposable
{
    private readonly object _lock = new();
    private readonly StateMachine _state;
    private readonly ServerNodeOptions _options;
    private readonly ILogger _log;
    private readonly Queue<(long Seq, TaskCompletionSource<RespValue?> Done)> _commitWaiters = new();

    /// <summary>
    /// Every wait handed out (a commit or a read confirmation), in the order they began: one sweep a few times per
    /// commit timeout answers those still open after <see cref="ServerNodeOptions.CommitTimeout"/> with
    /// <c>TRYAGAIN</c>, instead of a timer per wait.
    /// </summary>
    private readonly Queue<(long Since, TaskCompletionSource<RespValue?> Wait)> _deadlines = new();
    private ITimer? _sweep;

    private View _view = View.Empty;
    private long _previousViewNumber;
    private bool _initialized;
    private long _heldView;
    private bool _viewAcked;
    private TaskCompletionSource<RespValue?> _ackSignal = NewAckSignal();
    private long _commitIndex;
    private bool _soleCopy;
    private long _soleThrough;
    private Replicator? _replicator;
    private (long View, string Backup)? _unreachableBackup;
    private bool _disposed;

    /// <summary>Creates the engine for the server at <paramref name="me"/>.</summary>
    public Replica(string me, ServerNodeOptions options)
    {
        Me = me;
        _options = options;
        _state = new StateMachine(options.Duplicates);
        _log = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger($"Tandem.Server[{me}]");
    }

    /// <summary>This server's address, its identity in views.</summary>
    public string Me { get; }

    /// <summary>Raised (outside the lock) when the engine wants the coordinator pinged now, not at the next interval.</summary>
    public event Action? PingRequested;

    /// <summary>The newest view this server knows.</summary>
    public View View { get { lock (_lock) return _view; } }

    /// <summary>True when this server is the primary of its view and may serve clients.</summary>
    public bool IsServingPrimary { get { lock (_lock) return ServingPrimary; } }

    private bool ServingPrimary => _view.Primary == Me && _initialized && !_disposed;

    /// <summary>
    /// The newest view in which this server's state was a synced copy (primary whose ack was recorded, or
    /// backup that installed the view's snapshot); 0 when it holds no valid state. Sent with every ping: the
    /// coordinator falls back only to a server that holds the last acknowledged view.
    /// </summary>
    public long HeldView { get { lock (_lock) return _initialized ? _heldView : 0; } }

    /// <summary>True when this server is primary and the coordinator has recorded its ack of the view.</summary>
    public bool ViewAcknowledged { get { lock (_lock) return ServingPrimary && _viewAcked; } }

    /// <summary>
    /// Set when this primary's backup has not acknowledged within <see cref="ServerNodeOptions.BackupTimeout"/>:
    /// the view and the backup to report to the coordinator, which replaces it. Cleared by the next view.
    /// </summary>
    public (long View, string Backup)? UnreachableBackup { get { lock (_lock) return _unreachableBackup; } }

    /// <summary>Bytes of writes held for the backup (queued or not yet acknowledged); 0 without one.</summary>
    public long BacklogBytes { get { lock (_lock) return _replicator?.BacklogBytes ?? 0; } }

    /// <summary>Number of keys held (for status and tests).</summary>
    public int KeyCount { get { lock (_lock) return _state.Count; } }

    /// <summary>The newest write known to be on the backup of this primary's view (for status and tests).</summary>
    public long CommitIndex { get { lock (_lock) return _commitIndex; } }

    /// <summary>
    /// The newest write whose reply may go out: on the backup, with this primary's view acknowledged; 0 when
    /// none may (not the serving primary, or the view not acknowledged yet).
    /// </summary>
    public long CommittedThrough { get { lock (_lock) return ServingPrimary && _viewAcked ? _commitIndex : 0; } }

    /// <summary>Sequence number of the last applied write (for status and tests).</summary>
    public long LastApplied { get { lock (_lock) return _state.LastApplied; } }

    /// <summary>The duplicate table's size and marks, as <c>INFO</c> lines.</summary>
    public string SessionInfo()
    {
        lock (_lock)
        {
            DuplicateTable d = _state.Duplicates;
            return $"tandem_sessions:{d.ClientCount}\r\ntandem_session_bytes:{d.Bytes}\r\ntandem_session_floor:{d.Floor}\r\ntandem_highest_client_id:{d.HighestId}\r\n";
        }
    }

    /// <summary>
    /// The view number to put in the next ping. A primary acknowledges its view only once the view's backup
    /// holds the whole state; a server named primary that has no valid state pings 0, so the coordinator
    /// treats it as restarted and never takes its ping as an acknowledgement.
    /// </summary>
    public long ViewNumberForPing()
    {
        lock (_lock)
        {
            if (_view.Primary != Me) return _view.Number;
            if (!_initialized) return 0;
            bool synced = _view.Backup == "" || _replicator?.SyncedView == _view.Number && _commitIndex >= _soleThrough;
            return synced ? _view.Number : _previousViewNumber;
        }
    }

    /// <summary>
    /// Takes on a view the coordinator replied with, whether its primary has acknowledged it, and the number of
    /// the newest acknowledged view: a server named primary afresh takes the role only if it holds that view, and
    /// starts empty only when that number is 0 (no view of this history was ever acknowledged; -1: not said).
    /// </summary>
    public void OnView(View next, bool acked = false, long lastAckedView = -1)
    {
        var effects = new ViewEffects();
        lock (_lock)
        {
            if (_disposed) return;
            if (next.Number == _view.Number && acked && ServingPrimary && !_viewAcked) AckRecordedLocked(ref effects);
            else if (next.Number > _view.Number) TakeOnLocked(next, acked, lastAckedView, ref effects);
            else return;
        }
        effects.Stopped?.Stop();
        effects.Started?.Start();
        if (effects.PingNow) PingRequested?.Invoke();
        Complete(effects.Committed, null);
        Complete(effects.Failed, effects.Failure);
    }

    /// <summary>What taking on a view leaves to do outside the lock.</summary>
    private struct ViewEffects
    {
        public List<TaskCompletionSource<RespValue?>>? Committed, Failed;
        public RespValue? Failure;
        public Replicator? Stopped, Started;
        public bool PingNow;
    }

    /// <summary>
    /// The coordinator has recorded this primary's ack: from now on it never falls back to a server of an
    /// older view, so the replies held back so far may go out.
    /// </summary>
    private void AckRecordedLocked(ref ViewEffects effects)
    {
        _viewAcked = true;
        _heldView = _view.Number;
        effects.Committed = ReleaseLocked();
        _ackSignal.TrySetResult(null);
        _log.LogInformation("{Me}: view {View} acknowledged", Me, _view.Number);
    }

    private void TakeOnLocked(View next, bool acked, long lastAckedView, ref ViewEffects effects)
    {
        View old = _view;
        bool oldAcked = _viewAcked;
        bool wasSole = _soleCopy;
        _soleCopy = false;
        _previousViewNumber = old.Number;
        _unreachableBackup = null;
        _view = next;
        _viewAcked = false;
        _ackSignal.TrySetResult(RespValue.Error($"{ErrorCodes.TryAgain} the view changed to {next.Number} before this request was confirmed"));
        _ackSignal = NewAckSignal();
        _log.LogInformation("{Me}: {View}", Me, next);

        bool wasPrimary = old.Primary == Me && _initialized;
        effects.Stopped = _replicator;
        _replicator = null;
        _incoming = null; // a transfer of an older view can never finish
        // The commit index speaks of one primary's history on its backups. A server taking the role afresh
        // may hold another history than the one it last committed in (a fallback can fork histories at an
        // unacknowledged view), so it starts from nothing known to be on a backup.
        if (!wasPrimary || next.Primary != Me)
        {
            _commitIndex = 0;
            _soleThrough = 0;
        }
        if (next.Primary != Me)
        {
            // The state stays a valid copy of the view it was held in (a fallback may need it); as a backup it
            // takes no batch until this view's snapshot is installed.
            _backupSession = null;
            if (wasPrimary)
            {
                // These writes were applied here and may have reached the backup that now leads: their outcome
                // is unknown, so the reply must not be NOTPRIMARY (which promises "not applied").
                effects.Failed = FailAllWaitersLocked();
                effects.Failure = RespValue.Error($"{ErrorCodes.TryAgain} the view changed to {next.Number} before this request was confirmed; it may or may not have taken effect");
            }
            return;
        }

        if (wasPrimary)
        {
            // Still primary; the backup (or at least the view) changed: sync it from a fresh snapshot. If the last
            // view it acknowledged had no backup, it stays the only copy the coordinator could ever turn to until it
            // acknowledges this view (it is the only server of that view, and a view it has not acknowledged never
            // changes but for its backup): so it goes on answering on its own during the transfer, as it did alone.
            _soleCopy = next.Backup != "" && (wasSole || oldAcked && old.Backup == "");
            if (_soleCopy) _log.LogInformation("{Me}: the only copy while {Backup} syncs: writes are answered during the transfer", Me, next.Backup);
        }
        else if (_initialized && _heldView >= lastAckedView)
        {
            // The backup of the previous view, or (falling back) a server of the last acknowledged view that
            // still holds it: the coordinator names one only when that is safe (docs/design.md).
            _log.LogInformation("{Me}: primary of view {View} at write {Seq} (held view {Held})", Me, next.Number, _state.LastApplied, _heldView);
        }
        else if (lastAckedView == 0 && !acked)
        {
            // A new history (view 1 of a new cluster, or one the operator started after every copy was lost): no
            // view of it was ever acknowledged, so no client was ever answered and the empty store is the whole
            // truth. Like every primary it answers only once the coordinator has recorded its ack: a server that
            // restarts before that point never answered anyone, so another may start the history over.
            _initialized = true;
            _heldView = next.Number; // the empty store is this view's whole state
            _log.LogInformation("{Me}: primary of a new history (view {View})", Me, next.Number);
        }
        else
        {
            _log.LogWarning("{Me}: named primary of view {View} without the state of view {Acked} (it holds {Held}); refusing to serve",
                Me, next.Number, lastAckedView, _initialized ? _heldView : 0);
            _initialized = false; // its copy is older than an acknowledged view: it can never serve from it
            return;
        }

        // Everything this server holds is committed once it is the only copy or its new backup syncs; replies
        // still wait for the coordinator to record the ack.
        if (next.Backup == "")
        {
            AdvanceCommitLocked(_state.LastApplied);
            effects.PingNow = true; // nothing to sync: acknowledge at once
        }
        else effects.Started = _replicator = new Replicator(this, next, _options, _log);
    }

    /// <summary>Applies a client write on the primary and waits until it is committed.</summary>
    public async ValueTask<RespValue> WriteAsync(Operation op)
    {
        Held held = Write(op);
        if (held.IsFinal) return held.Reply;
        BatchOutcome outcome = await WaitAsync(held.CommitSeq, confirm: false);
        return outcome.WriteError ?? held.Reply;
    }

    /// <summary>Reads on the primary and waits for the read to be confirmed (see <see cref="Read(byte[][])"/>).</summary>
    public async ValueTask<RespValue> ReadAsync(byte[] key)
    {
        Held held = Read(key);
        if (held.IsFinal) return held.Reply;
        BatchOutcome outcome = await WaitAsync(held.CommitSeq, confirm: true);
        return outcome.WriteError ?? outcome.ReadError ?? held.Reply;
    }

    /// <summary>
    /// Sequences and applies a client write on the primary, at this server's time (never earlier than the
    /// history's, <see cref="StateMachine.Clock"/>). Its reply may go out only once the write is committed (the
    /// backup holds it) and the coordinator has recorded this primary's ack of its view:
    /// <see cref="Held.CommitSeq"/> is the write to wait for with <see cref="WaitAsync"/>, 0 when the reply is
    /// final (an error, or a write already committed). With <paramref name="watched"/> (a transaction's
    /// <c>WATCH</c>), the write is applied only if none of those keys changed since; otherwise the reply is
    /// <paramref name="aborted"/>, held like a read.
    /// </summary>
    public Held Write(in Operation op, IReadOnlyList<WatchedKey>? watched = null, RespValue? aborted = null)
    {
        lock (_lock)
        {
            if (!ServingPrimary) return new Held(NotPrimaryError(write: true));
            long seq;
            RespValue reply;
            SavedReply saved = default;
            DuplicateCheck check = op.IsTracked
                ? _state.Duplicates.Check(op.ClientId, op.RequestSeq, op.AckedThrough, out saved)
                : DuplicateCheck.New;
            switch (check)
            {
                case DuplicateCheck.AlreadyAcknowledged:
                    return new Held(RespValue.Error($"{ErrorCodes.Err} request {op.RequestSeq} of client {op.ClientId} was already acknowledged"));
                case DuplicateCheck.SessionExpired:
                    return new Held(RespValue.Error($"{ErrorCodes.NoSession} client {op.ClientId}'s session was dropped from the duplicate table; " +
                                                    "the request may already have taken effect; get a new client id with XCLIENT"));
                case DuplicateCheck.WindowFull:
                    return new Held(RespValue.Error($"{ErrorCodes.TryAgain} client {op.ClientId} has too many requests in flight"));
                case DuplicateCheck.Duplicate:
                    // A retry: never apply twice; answer the saved reply once the first copy is committed.
                    reply = saved.Reply;
                    seq = saved.LogSeq;
                    break;
                default:
                    long now = NowLocked();
                    if (watched is not null && !UnchangedLocked(watched, now))
                        return ReadHeldLocked(aborted ?? RespValue.Array(null), 0);
                    Operation timed = op with { Now = now };
                    if (!TrySequenceLocked(timed, out seq, out reply, out Held refused)) return refused;
                    break;
            }
            if (_soleCopy)
            {
                // Answered as the only copy: the view is acknowledged only once the new backup holds this write.
                _soleThrough = Math.Max(_soleThrough, seq);
                return new Held(reply);
            }
            return seq <= _commitIndex && _viewAcked ? new Held(reply) : new Held(reply, seq, false);
        }
    }

    /// <summary>The time of a write or read sequenced now: this server's clock, but never before the history's.</summary>
    private long NowLocked() => Math.Max(_options.TimeProvider.GetUtcNow().ToUnixTimeMilliseconds(), _state.Clock);

    /// <summary>Applies <paramref name="op"/> as the next write and puts it on the backup's outbox; false (and the reply in <paramref name="refused"/>) when the backlog is full.</summary>
    private bool TrySequenceLocked(in Operation op, out long seq, out RespValue reply, out Held refused)
    {
        // A backup that is behind may hold only so much of the primary's memory: refuse, do not grow.
        if (_replicator is { } link && link.BacklogBytes + Replicator.SizeOf(op) > _options.MaxBacklogBytes)
        {
            refused = new Held(RespValue.Error($"{ErrorCodes.TryAgain} the backup is {link.BacklogBytes} bytes behind (limit {_options.MaxBacklogBytes}); this write was not applied"));
            seq = 0;
            reply = refused.Reply;
            return false;
        }
        seq = _state.LastApplied + 1;
        reply = _state.Apply(op, seq, _options.MaxValueBytes);
        if (_replicator is null) _commitIndex = seq; // the only copy: no one else can be promoted
        else _replicator.Enqueue(op, seq);
        refused = default;
        return true;
    }

    private bool UnchangedLocked(IReadOnlyList<WatchedKey> watched, long now)
    {
        foreach (WatchedKey w in watched)
            if (!Equals(VersionLocked(w.Key, now), w.Version)) return false;
        return true;
    }

    // A key whose deadline has come counts as gone, whether or not a write has removed it yet.
    private (byte[]? Entry, long Deadline) VersionLocked(byte[] key, long now)
    {
        (byte[]? entry, long deadline) = _state.VersionOf(key);
        return entry is null || (deadline != 0 && deadline <= now) ? (null, 0) : (entry, deadline);
    }

    /// <summary>What <c>WATCH</c> remembers of <paramref name="keys"/> now, on the primary; null when this server is not serving.</summary>
    public WatchedKey[]? Watch(IReadOnlyList<byte[]> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        lock (_lock)
        {
            if (!ServingPrimary) return null;
            long now = NowLocked();
            return [.. keys.Select(k => new WatchedKey(k, VersionLocked(k, now)))];
        }
    }

    /// <summary>
    /// Reads <paramref name="key"/> on the primary (GET): <see cref="Read(byte[][])"/>, without building a command
    /// when no key has a deadline.
    /// </summary>
    public Held Read(byte[] key)
    {
        lock (_lock)
        {
            if (!ServingPrimary) return new Held(NotPrimaryError());
            if (_state.NextDeadline != long.MaxValue) return ReadLocked([GetName, key]);
            RespValue value = _state.TryGet(key, out ReadOnlyMemory<byte> bytes) ? RespValue.Bulk(bytes) : RespValue.NullBulk;
            return ReadHeldLocked(value, 0);
        }
    }

    private static readonly byte[] GetName = "GET"u8.ToArray();
    private static readonly byte[][] ExpiredArgs = [System.Text.Encoding.ASCII.GetBytes(Operation.Expired)];

    /// <summary>
    /// Runs the read-only data command <paramref name="args"/> on the primary. The value is read now; it may go
    /// out only after the backup confirms, with a message sent after this read, that this server is still its
    /// primary in this view, and the backup holds every write applied before this read (so the value is
    /// committed): <see cref="Held.Confirm"/> asks <see cref="WaitAsync"/> for that. Without a backup the primary
    /// answers at once: no one can replace it. When a key's deadline has come, an <see cref="Operation.Expired"/>
    /// write removes it first and the read waits for that write too: a key a client saw expire is gone from
    /// every copy that could serve next.
    /// </summary>
    public Held Read(byte[][] args)
    {
        lock (_lock)
        {
            if (!ServingPrimary) return new Held(NotPrimaryError());
            return ReadLocked(args);
        }
    }

    private Held ReadLocked(byte[][] args)
    {
        long now = NowLocked();
        if (!TryExpireDueLocked(now, out long expiredSeq, out Held refused)) return refused;
        return ReadHeldLocked(_state.Read(args, now), expiredSeq);
    }

    /// <summary>
    /// When a deadline has come by <paramref name="now"/>, sequences the <see cref="Operation.Expired"/> write that
    /// removes those keys (<paramref name="seq"/> its number, 0 when none was due); false when the backlog refused it.
    /// </summary>
    private bool TryExpireDueLocked(long now, out long seq, out Held refused)
    {
        seq = 0;
        refused = default;
        if (_state.NextDeadline > now) return true;
        if (!TrySequenceLocked(new Operation(ExpiredArgs, now), out seq, out _, out refused)) return false;
        if (_soleCopy) _soleThrough = Math.Max(_soleThrough, seq); // answered as the only copy: see Write
        return true;
    }

    private Held ReadHeldLocked(RespValue value, long afterWrite)
    {
        if (_soleCopy || (_replicator is null && _viewAcked)) return new Held(value);
        return new Held(value, afterWrite > _commitIndex || !_viewAcked ? afterWrite : 0, true);
    }

    /// <summary>
    /// Removes the keys whose deadline has come, with one replicated write (the primary's active expiry);
    /// true when there were any. Nothing is removed on a server that is not a serving primary.
    /// </summary>
    public bool ExpireDue()
    {
        Replicator? link;
        lock (_lock)
        {
            if (!ServingPrimary || !TryExpireDueLocked(NowLocked(), out long seq, out _) || seq == 0) return false;
            link = _replicator;
        }
        link?.Pump(); // no client waits on this write: send it now
        return true;
    }

    /// <summary>
    /// Waits until every write through <paramref name="commitSeq"/> is committed and, with
    /// <paramref name="confirm"/>, until the reads made so far are confirmed (ReadIndex: the backup answers a
    /// message sent after this call and holds every write applied before it). One wait serves every write and
    /// read of a batch: the replies of one client read go out together, after one round trip to the backup.
    /// </summary>
    public async ValueTask<BatchOutcome> WaitAsync(long commitSeq, bool confirm)
    {
        Task<RespValue?>? committed = null, confirmed = null;
        Replicator? link;
        lock (_lock)
        {
            link = _replicator;
            if (!ServingPrimary)
            {
                // Writes held here were applied and may have reached the server that leads now.
                RespValue failed = RespValue.Error($"{ErrorCodes.TryAgain} the view changed to {_view.Number} before this request was confirmed; it may or may not have taken effect");
                return new BatchOutcome(commitSeq > 0 ? failed : null, confirm ? failed : null);
            }
            if (commitSeq > 0 && (commitSeq > _commitIndex || !_viewAcked))
            {
                TaskCompletionSource<RespValue?> done = NewWaitLocked();
                _commitWaiters.Enqueue((commitSeq, done));
                committed = done.Task;
            }
            if (confirm)
            {
                // Before the ack is recorded, a read also waits for it (the coordinator might fall back to an older copy).
                Task<RespValue?>? acked = _viewAcked ? null : AckWaitLocked();
                if (_replicator is null) confirmed = acked;
                else
                {
                    // ReadIndex: the values read may include any write applied so far; answer only once all of
                    // them are on the backup and a confirmation sent after this point has come back.
                    TaskCompletionSource<RespValue?> wait = NewWaitLocked();
                    _replicator.RequestConfirmation(_state.LastApplied, wait);
                    confirmed = acked is null ? wait.Task : BothAsync(wait.Task, acked);
                }
            }
        }
        if (committed is null && confirmed is null) return default;
        link?.Pump(); // send the batch's writes and confirmation now, from this thread
        RespValue? writeError = committed is null ? null : await committed;
        RespValue? readError = confirmed is null ? null : writeError ?? await confirmed;
        return new BatchOutcome(writeError, readError);
    }

    private static async Task<RespValue?> BothAsync(Task<RespValue?> first, Task<RespValue?> second) =>
        await first ?? await second;

    private static TaskCompletionSource<RespValue?> NewAckSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// A new wait, answered <c>TRYAGAIN</c> by the sweep if still open after the commit timeout. Its continuations
    /// run on the thread that completes it (no hop to the thread pool): the backup's acknowledgement loop answers
    /// the clients itself. So it is completed only outside <see cref="_lock"/>. Called under the lock.
    /// </summary>
    private TaskCompletionSource<RespValue?> NewWaitLocked()
    {
        var wait = new TaskCompletionSource<RespValue?>();
        while (_deadlines.TryPeek(out var oldest) && oldest.Wait.Task.IsCompleted) _deadlines.Dequeue();
        _deadlines.Enqueue((_options.TimeProvider.GetTimestamp(), wait));
        if (_sweep is null && !_disposed)
        {
            TimeSpan period = _options.CommitTimeout / 8;
            _sweep = _options.TimeProvider.CreateTimer(_ => ExpireWaits(), null, period, period);
        }
        return wait;
    }

    /// <summary>A wait for the coordinator to record this view's ack (bounded like every wait). Called under the lock.</summary>
    private Task<RespValue?> AckWaitLocked()
    {
        TaskCompletionSource<RespValue?> wait = NewWaitLocked();
        _ackSignal.Task.ContinueWith(static (signal, w) => ((TaskCompletionSource<RespValue?>)w!).TrySetResult(signal.Result),
            wait, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return wait.Task;
    }

    /// <summary>The sweep: answers every wait open longer than the commit timeout with <c>TRYAGAIN</c>.</summary>
    internal void ExpireWaits()
    {
        List<TaskCompletionSource<RespValue?>>? expired = null;
        lock (_lock)
        {
            long now = _options.TimeProvider.GetTimestamp();
            while (_deadlines.TryPeek(out var oldest)
                   && (oldest.Wait.Task.IsCompleted || _options.TimeProvider.GetElapsedTime(oldest.Since, now) >= _options.CommitTimeout))
            {
                _deadlines.Dequeue();
                if (!oldest.Wait.Task.IsCompleted) (expired ??= []).Add(oldest.Wait);
            }
        }
        if (expired is null) return;
        Complete(expired, RespValue.Error($"{ErrorCodes.TryAgain} the backup did not confirm within {_options.CommitTimeout.TotalMilliseconds:0} ms"));
    }

    /// <summary>Called by the current replicator when the backup holds every write up to <paramref name="seq"/>.</summary>
    internal void OnBackupAcknowledged(Replicator from, long seq)
    {
        List<TaskCompletionSource<RespValue?>>? done;
        bool pingNow;
        lock (_lock)
        {
            if (_replicator != from) return;
            // The backup now holds every write answered during its transfer: the view may be acknowledged.
            pingNow = _commitIndex < _soleThrough && seq >= _soleThrough && from.SyncedView == _view.Number;
            done = AdvanceCommitLocked(seq);
        }
        Complete(done, null);
        if (pingNow) PingRequested?.Invoke();
    }

    /// <summary>Called by the replicator once the backup has installed the snapshot: the view can be acknowledged.</summary>
    internal void OnBackupSynced(Replicator from, long seq)
    {
        lock (_lock)
        {
            // From now on a write is answered once the backup has it: it could be promoted as soon as this view is
            // acknowledged, which it is once the backup holds every write answered during the transfer.
            if (_replicator == from) _soleCopy = false;
        }
        OnBackupAcknowledged(from, seq);
        PingRequested?.Invoke();
    }

    /// <summary>Called by the replicator when the backup has not acknowledged within the backup timeout.</summary>
    internal void OnBackupUnreachable(Replicator from)
    {
        lock (_lock)
        {
            if (_replicator != from || _view.Backup == "") return;
            if (_unreachableBackup is null)
                _log.LogWarning("{Me}: backup {Backup} of view {View} does not acknowledge; asking the coordinator to replace it", Me, _view.Backup, _view.Number);
            _unreachableBackup = (_view.Number, _view.Backup);
        }
        PingRequested?.Invoke();
    }

    /// <summary>Called by the replicator when the backup refused it as primary: find out the newest view.</summary>
    internal void OnFenced() => PingRequested?.Invoke();

    /// <summary>Takes a snapshot for <paramref name="from"/>; writes after it go to that replicator's outbox.</summary>
    internal Snapshot? SnapshotFor(Replicator from)
    {
        lock (_lock)
        {
            if (_replicator != from) return null;
            from.ClearOutboxLocked();
            return _state.CreateSnapshot();
        }
    }

    private List<TaskCompletionSource<RespValue?>>? AdvanceCommitLocked(long seq)
    {
        if (seq <= _commitIndex) return null;
        _commitIndex = seq;
        return ReleaseLocked();
    }

    /// <summary>
    /// The waiters whose writes are committed, if their replies may go out: only once the coordinator has
    /// recorded this primary's ack of its view (until then it might fall back to a server without them).
    /// </summary>
    private List<TaskCompletionSource<RespValue?>>? ReleaseLocked()
    {
        if (!_viewAcked) return null;
        List<TaskCompletionSource<RespValue?>>? done = null;
        while (_commitWaiters.TryPeek(out var w) && w.Seq <= _commitIndex)
        {
            _commitWaiters.Dequeue();
            (done ??= []).Add(w.Done);
        }
        return done;
    }

    private List<TaskCompletionSource<RespValue?>>? FailAllWaitersLocked()
    {
        if (_commitWaiters.Count == 0) return null;
        var all = _commitWaiters.Select(w => w.Done).ToList();
        _commitWaiters.Clear();
        return all;
    }

    private static void Complete(List<TaskCompletionSource<RespValue?>>? waiters, RespValue? result)
    {
        if (waiters is null) return;
        foreach (var w in waiters) w.TrySetResult(result);
    }

    /// <summary>The error a client gets from a server that is not serving as primary.</summary>
    public RespValue NotPrimaryReply() { lock (_lock) return NotPrimaryError(); }

    private RespValue NotPrimaryError(bool write = false)
    {
        View v = _view;
        string primary = v.Primary == "" || v.Primary == Me ? "unknown" : v.Primary;
        string why = v.Primary == Me ? "is not initialized" : v.Backup == Me ? "is the backup" : "is not the primary";
        // A write gets Redis's replica error, which client libraries know; a read keeps Tandem's own code.
        return write
            ? RespValue.Error($"{ErrorCodes.ReadOnly} You can't write against a read only replica. {Me} {why} in view {v.Number}; primary: {primary}")
            : RespValue.Error($"{ErrorCodes.NotPrimary} {Me} {why} in view {v.Number}; primary: {primary}");
    }

    /// <summary>Stops all replication and fails every waiting request (the server is going away).</summary>
    public void Dispose()
    {
        List<TaskCompletionSource<RespValue?>>? failed;
        Replicator? stopped;
        lock (_lock)
        {
            _disposed = true;
            _ackSignal.TrySetResult(RespValue.Error($"{ErrorCodes.TryAgain} server is shutting down"));
            stopped = _replicator;
            _replicator = null;
            failed = FailAllWaitersLocked();
            _sweep?.Dispose();
        }
        stopped?.Stop();
        Complete(failed, RespValue.Error($"{ErrorCodes.TryAgain} server is shutting down"));
    }
}

/// <summary>
/// A reply decided on the primary that may have to wait before it goes out: until the write
/// <see cref="CommitSeq"/> is committed (0: no write to wait for) and, when <see cref="Confirm"/>, until the read
/// is confirmed (see <see cref="Replica.WaitAsync"/>).
/// </summary>
public readonly record struct Held(RespValue Reply, long CommitSeq = 0, bool Confirm = false)
{
    /// <summary>True when the reply may go out now.</summary>
    public bool IsFinal => CommitSeq == 0 && !Confirm;
}

/// <summary>How a wait of <see cref="Replica.WaitAsync"/> ended: null errors mean the held replies may go out.</summary>
public readonly record struct BatchOutcome(RespValue? WriteError, RespValue? ReadError);

/// <summary>A key a connection <c>WATCH</c>es and what it was then: its entry and deadline (see <see cref="StateMachine.VersionOf"/>).</summary>
public readonly record struct WatchedKey(byte[] Key, (byte[]? Entry, long Deadline) Version);
