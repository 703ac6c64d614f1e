using System.Threading.Tasks.Sources;
using Tandem.Protocol;

namespace Tandem.Server;

/// <summary>
/// The replies of one client connection's batch (the commands of one read) that wait for the backup: group
/// commit. Each held write or read gets a <see cref="ValueTask{TResult}"/> backed by this gate (no allocation
/// per command). When the read loop first awaits one, every command of the batch has run: the gate then asks
/// the replica for one read confirmation for all the batch's reads, and waits for the commit of the write it is
/// awaited for; the writes after it are usually committed by then (they were forwarded together), so a batch
/// costs one wait however many commands the client pipelined.
/// </summary>
/// <remarks>
/// The read loop awaits the batch's replies in order, one at a time, and starts the next batch only after it
/// has taken every reply of this one; so one continuation at most is registered, and the gate is reused for the
/// next batch (a version in the token catches a reply taken from the wrong batch).
/// </remarks>
internal sealed class ReplyGate(Replica replica, Func<bool> killed) : IValueTaskSource<RespValue?>
{
    // A ValueTask's token is 16 bits: the reply's index in the batch, and the batch's version.
    private const int IndexBits = 10;
    private const int MaxHeld = 1 << IndexBits;
    private const int IndexMask = MaxHeld - 1;

    private readonly object _lock = new();
    private readonly List<Held> _held = [];
    private short _version;
    private bool _started;
    private bool _confirm;
    private long _committed;
    private bool _writeWaiting;
    private RespValue? _writeError;
    private bool _confirmed;
    private RespValue? _readError;
    private int _awaited = -1;
    private bool _startConfirm;
    private long _startWrite;
    private Action<object?>? _continuation;
    private object? _continuationState;

    /// <summary>Replica this gate was made for (a server restarted in place gets a new replica and a new gate).</summary>
    public Replica Replica => replica;

    /// <summary>Holds <paramref name="held"/> until its write is committed and, for a read, the batch's reads confirmed.</summary>
    public ValueTask<RespValue?> Hold(in Held held)
    {
        lock (_lock)
        {
            if (_started) Reset(); // the previous batch's replies were all taken (see remarks)
            if (_held.Count >= MaxHeld) throw new InvalidOperationException($"more than {MaxHeld} replies held in one batch");
            _held.Add(held);
            _confirm |= held.Confirm;
            return new ValueTask<RespValue?>(this, (short)((_version << IndexBits) | (_held.Count - 1)));
        }
    }

    private void Reset()
    {
        _held.Clear();
        _version = (short)((_version + 1) & (short.MaxValue >> IndexBits));
        _started = false;
        _confirm = false;
        _committed = 0;
        _writeWaiting = false;
        _writeError = null;
        _confirmed = false;
        _readError = null;
        _awaited = -1;
        _startConfirm = false;
        _startWrite = 0;
        _continuation = null;
        _continuationState = null;
    }

    public ValueTaskSourceStatus GetStatus(short token)
    {
        int index;
        lock (_lock)
        {
            index = Index(token);
            if (Ready(index)) return ValueTaskSourceStatus.Succeeded;
        }
        StartWaits(); // a wait that completes at once makes the reply ready now
        lock (_lock) return Ready(index) ? ValueTaskSourceStatus.Succeeded : ValueTaskSourceStatus.Pending;
    }

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        bool ready;
        lock (_lock)
        {
            int index = Index(token);
            ready = Ready(index);
            if (!ready)
            {
                _awaited = index;
                _continuation = continuation;
                _continuationState = state;
            }
        }
        if (ready) ThreadPool.UnsafeQueueUserWorkItem(continuation, state, preferLocal: true);
        else StartWaits();
    }

    public RespValue? GetResult(short token)
    {
        lock (_lock)
        {
            int index = Index(token);
            if (!Ready(index)) throw new InvalidOperationException("a held reply taken before it was ready");
            if (killed()) return null;
            Held held = _held[index];
            if (held.CommitSeq > _committed) return _writeError; // Ready: the wait for it failed
            return held.Confirm && _readError is not null ? _readError : held.Reply;
        }
    }

    private int Index(short token)
    {
        if (token >> IndexBits != _version) throw new InvalidOperationException("a reply of another batch");
        return token & IndexMask;
    }

    /// <summary>
    /// Whether reply <paramref name="index"/> may be taken; if not, notes what it waits for, which
    /// <see cref="StartWaits"/> starts once the lock is released. Called under the lock.
    /// </summary>
    private bool Ready(int index)
    {
        if (!_started)
        {
            // Every command of the batch has run: one confirmation, asked now, serves all its reads.
            _started = true;
            _startConfirm = _confirm;
        }
        Held held = _held[index];
        bool written = held.CommitSeq <= _committed || _writeError is not null;
        if (!written && !_writeWaiting)
        {
            _writeWaiting = true;
            _startWrite = held.CommitSeq;
        }
        return written && (!held.Confirm || _confirmed);
    }

    /// <summary>
    /// Starts the waits <see cref="Ready"/> noted, outside the lock: asking the replica may send the batch to the
    /// backup from this thread.
    /// </summary>
    private void StartWaits()
    {
        bool confirm;
        long write;
        lock (_lock)
        {
            (confirm, write) = (_startConfirm, _startWrite);
            (_startConfirm, _startWrite) = (false, 0);
        }
        if (confirm) _ = WaitAsync(0, confirm: true);
        if (write > 0) _ = WaitAsync(write, confirm: false);
    }

    private async Task WaitAsync(long commitSeq, bool confirm)
    {
        BatchOutcome outcome;
        try
        {
            outcome = await replica.WaitAsync(commitSeq, confirm).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            RespValue failed = RespValue.Error($"{ErrorCodes.TryAgain} {e.Message}");
            outcome = new BatchOutcome(failed, failed);
        }
        Finish(commitSeq, confirm, outcome);
    }

    private void Finish(long commitSeq, bool confirm, BatchOutcome outcome)
    {
        Action<object?>? continuation = null;
        object? state = null;
        long committedThrough = confirm ? 0 : replica.CommittedThrough;
        lock (_lock)
        {
            if (confirm)
            {
                _confirmed = true;
                _readError = outcome.ReadError;
            }
            else
            {
                _writeWaiting = false;
                // Writes up to the commit index are committed whatever became of this one.
                _committed = Math.Max(_committed, outcome.WriteError is null ? Math.Max(commitSeq, committedThrough) : committedThrough);
                _writeError ??= outcome.WriteError;
            }
            if (_continuation is not null && Ready(_awaited))
            {
                continuation = _continuation;
                state = _continuationState;
                _continuation = null;
                _continuationState = null;
            }
        }
        StartWaits();
        continuation?.Invoke(state);
    }
}
