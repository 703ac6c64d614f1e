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

    private View _view = View.Empty;
    private long _previousViewNumber;
    private bool _awaitingFirstAck;
    private bool _initialized;
    private long _commitIndex;
    private Replicator? _replicator;
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

    private bool ServingPrimary => _view.Primary == Me && _initialized && !_awaitingFirstAck && !_disposed;

    /// <summary>Number of keys held (for status and tests).</summary>
    public int KeyCount { get { lock (_lock) return _state.Count; } }

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
            bool synced = _view.Backup == "" || _replicator?.SyncedView == _view.Number;
            return synced ? _view.Number : _previousViewNumber;
        }
    }

    /// <summary>Takes on a view the coordinator replied with, and whether its primary has acknowledged it.</summary>
    public void OnView(View next, bool acked = false)
    {
        List<TaskCompletionSource<RespValue?>>? failed = null, committed = null;
        RespValue? failure = null;
        Replicator? stopped = null, started = null;
        bool pingNow = false;
        lock (_lock)
        {
            if (_disposed) return;
            if (next.Number == _view.Number && acked && _awaitingFirstAck)
            {
                _awaitingFirstAck = false; // this server's acknowledgement of view 1 has been recorded
                _log.LogInformation("{Me}: primary of a new cluster (view 1)", Me);
            }
            if (next.Number <= _view.Number) return;
            View old = _view;
            _previousViewNumber = old.Number;
            _awaitingFirstAck = false; // a newer view proves that view 1 was acknowledged
            _view = next;
            _log.LogInformation("{Me}: {View}", Me, next);

            bool wasPrimary = old.Primary == Me && _initialized;
            if (next.Primary == Me)
            {
                if (wasPrimary)
                {
                    // Still primary; the backup (or at least the view) changed: sync it from a fresh snapshot.
                }
                else if (old.Backup == Me && _initialized)
                {
                    _log.LogInformation("{Me}: promoted to primary of view {View} at write {Seq}", Me, next.Number, _state.LastApplied);
                }
                else if (next.Number == 1 && !acked)
                {
                    // A new cluster: the empty store is the whole truth. Serve only once the coordinator has
                    // recorded this server's ack: a server that restarts before that point never answered
                    // anyone, so its successor at this address may take view 1 over; after it, it may not.
                    _initialized = true;
                    _awaitingFirstAck = true;
                    pingNow = true;
                }
                else
                {
                    _initialized = false;
                    _log.LogWarning("{Me}: named primary of view {View} without valid state; refusing to serve", Me, next.Number);
                }

                stopped = _replicator;
                _replicator = null;
                if (_initialized)
                {
                    // Everything this server holds is committed once it is the only copy or its new backup syncs.
                    if (next.Backup == "") committed = AdvanceCommitLocked(_state.LastApplied);
                    else _replicator = started = new Replicator(this, next, _options, _log);
                }
            }
            else
            {
                _initialized = false; // a backup becomes valid again only with the snapshot of this view
                _backupSession = null;
                stopped = _replicator;
                _replicator = null;
                if (wasPrimary)
                {
                    // These writes were applied here and may have reached the backup that now leads: their
                    // outcome is unknown, so the reply must not be NOTPRIMARY (which promises "not applied").
                    failed = FailAllWaitersLocked();
                    failure = RespValue.Error($"{ErrorCodes.TryAgain} the view changed to {next.Number} before this request was confirmed; it may or may not have taken effect");
                }
            }
        }
        stopped?.Stop();
        started?.Start();
        if (pingNow) PingRequested?.Invoke();
        Complete(committed, null);
        Complete(failed, failure);
    }

    /// <summary>Applies a client write on the primary and waits until it is committed.</summary>
    public async ValueTask<RespValue> WriteAsync(Operation op)
    {
        Task<RespValue?> committed;
        RespValue reply;
        lock (_lock)
        {
            if (!ServingPrimary) return NotPrimaryError();
            long seq;
            SavedReply saved = default;
            DuplicateCheck check = op.IsTracked
                ? _state.Duplicates.Check(op.ClientId, op.RequestSeq, op.AckedThrough, out saved)
                : DuplicateCheck.New;
            switch (check)
            {
                case DuplicateCheck.AlreadyAcknowledged:
                    return RespValue.Error($"{ErrorCodes.Err} request {op.RequestSeq} of client {op.ClientId} was already acknowledged");
                case DuplicateCheck.SessionExpired:
                    return RespValue.Error($"{ErrorCodes.NoSession} client {op.ClientId}'s session was dropped from the duplicate table; " +
                                           "the request may already have taken effect; get a new client id with XCLIENT");
                case DuplicateCheck.WindowFull:
                    return RespValue.Error($"{ErrorCodes.TryAgain} client {op.ClientId} has too many requests in flight");
                case DuplicateCheck.Duplicate:
                    // A retry: never apply twice; answer the saved reply once the first copy is committed.
                    reply = saved.Reply;
                    seq = saved.LogSeq;
                    break;
                default:
                    // Checked here, in the sequencer, so no concurrent append can slip past the limit.
                    if (op.Code == OpCode.Append && (long)(_state.Get(op.Key)?.Length ?? 0) + op.Value.Length > _options.MaxValueBytes)
                        return RespValue.Error($"{ErrorCodes.Err} appending would make the value larger than {_options.MaxValueBytes} bytes");
                    seq = _state.LastApplied + 1;
                    reply = _state.Apply(op, seq);
                    if (_replicator is null) _commitIndex = seq; // the only copy: no one else can be promoted
                    else _replicator.Enqueue(op, seq);
                    break;
            }
            if (seq <= _commitIndex) return reply;
            var done = new TaskCompletionSource<RespValue?>(TaskCreationOptions.RunContinuationsAsynchronously);
            _commitWaiters.Enqueue((seq, done));
            committed = done.Task;
        }
        RespValue? error = await WaitAsync(committed);
        return error ?? reply;
    }

    /// <summary>
    /// Reads on the primary. The value is read now; it is returned only after the backup confirms, with a
    /// message sent after this read arrived, that this server is still its primary in this view (and has
    /// every write up to now). Without a backup the primary answers at once: no one can replace it.
    /// </summary>
    public async ValueTask<RespValue> ReadAsync(byte[] key)
    {
        Task<RespValue?> confirmed;
        byte[]? value;
        lock (_lock)
        {
            if (!ServingPrimary) return NotPrimaryError();
            value = _state.Get(key);
            if (_replicator is null) return RespValue.Bulk(value);
            confirmed = _replicator.RequestConfirmation();
        }
        RespValue? error = await WaitAsync(confirmed);
        return error ?? RespValue.Bulk(value);
    }

    private async Task<RespValue?> WaitAsync(Task<RespValue?> task)
    {
        try
        {
            return await task.WaitAsync(_options.CommitTimeout, _options.TimeProvider);
        }
        catch (TimeoutException)
        {
            return RespValue.Error($"{ErrorCodes.TryAgain} the backup did not confirm within {_options.CommitTimeout.TotalMilliseconds:0} ms");
        }
    }

    /// <summary>Called by the current replicator when the backup holds every write up to <paramref name="seq"/>.</summary>
    internal void OnBackupAcknowledged(Replicator from, long seq)
    {
        List<TaskCompletionSource<RespValue?>>? done;
        lock (_lock)
        {
            if (_replicator != from) return;
            done = AdvanceCommitLocked(seq);
        }
        Complete(done, null);
    }

    /// <summary>Called by the replicator once the backup has installed the snapshot: the view can be acknowledged.</summary>
    internal void OnBackupSynced(Replicator from, long seq)
    {
        OnBackupAcknowledged(from, seq);
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
        List<TaskCompletionSource<RespValue?>>? done = null;
        while (_commitWaiters.TryPeek(out var w) && w.Seq <= seq)
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

    private RespValue NotPrimaryError()
    {
        View v = _view;
        string primary = v.Primary == "" || v.Primary == Me ? "unknown" : v.Primary;
        string why = v.Primary == Me ? "is not initialized" : v.Backup == Me ? "is the backup" : "is not the primary";
        return RespValue.Error($"{ErrorCodes.NotPrimary} {Me} {why} in view {v.Number}; primary: {primary}");
    }

    /// <summary>Stops all replication and fails every waiting request (the server is going away).</summary>
    public void Dispose()
    {
        List<TaskCompletionSource<RespValue?>>? failed;
        Replicator? stopped;
        lock (_lock)
        {
            _disposed = true;
            stopped = _replicator;
            _replicator = null;
            failed = FailAllWaitersLocked();
        }
        stopped?.Stop();
        Complete(failed, RespValue.Error($"{ErrorCodes.TryAgain} server is shutting down"));
    }
}
