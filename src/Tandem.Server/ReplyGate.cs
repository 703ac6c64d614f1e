using System.Threading.Tasks.Sources;
using Tandem.Protocol;

namespace Tandem.Server;

/// <summary>
/// The replies of one client connection's batch (the commands of one read) that wait for the backup: group
/// commit. Each held write or read gets a <see cref="ValueTask{TResult}"/> backed by this gate (no allocation
/// per command); when the read loop first awaits one, every command of the batch has run, and the gate asks the
/// replica once for the whole batch (<see cref="Replica.WaitAsync"/>): one commit wait and one read
/// confirmation, however many commands the client pipelined.
/// </summary>
/// <remarks>
/// The read loop awaits the batch's replies in order, one at a time, and starts the next batch only after it
/// has taken every reply of this one; so one continuation at most is registered, and the gate can be reused
/// for the next batch (a new version keeps a stale token from reading a new result).
/// </remarks>
internal sealed class ReplyGate(Replica replica, Func<bool> killed) : IValueTaskSource<RespValue?>
{
    // A ValueTask's token is 16 bits: the reply's index in the batch, and the batch's version to catch misuse.
    private const int IndexBits = 10;
    private const int MaxHeld = 1 << IndexBits;
    private const int IndexMask = MaxHeld - 1;

    private readonly object _lock = new();
    private readonly List<Held> _held = [];
    private short _version;
    private long _commitSeq;
    private bool _confirm;
    private bool _waiting;
    private bool _done;
    private BatchOutcome _outcome;
    private Action<object?>? _continuation;
    private object? _continuationState;

    /// <summary>Replica this gate was made for (a server restarted in place gets a new replica and a new gate).</summary>
    public Replica Replica => replica;

    /// <summary>Holds <paramref name="held"/> until the batch is committed and confirmed.</summary>
    public ValueTask<RespValue?> Hold(in Held held)
    {
        lock (_lock)
        {
            if (_done) Reset();
            if (_held.Count >= MaxHeld) throw new InvalidOperationException($"more than {MaxHeld} replies held in one batch");
            _held.Add(held);
            _commitSeq = Math.Max(_commitSeq, held.CommitSeq);
            _confirm |= held.Confirm;
            return new ValueTask<RespValue?>(this, Token(_held.Count - 1));
        }
    }

    private void Reset()
    {
        // Only called once every reply of the previous batch was taken (see remarks).
        _held.Clear();
        _version = (short)((_version + 1) & (short.MaxValue >> IndexBits));
        _commitSeq = 0;
        _confirm = false;
        _waiting = false;
        _done = false;
        _outcome = default;
        _continuation = null;
        _continuationState = null;
    }

    public ValueTaskSourceStatus GetStatus(short token) => Wait() ? ValueTaskSourceStatus.Succeeded : ValueTaskSourceStatus.Pending;

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        bool runNow;
        lock (_lock)
        {
            runNow = _done;
            if (!runNow)
            {
                _continuation = continuation;
                _continuationState = state;
            }
        }
        if (runNow) ThreadPool.UnsafeQueueUserWorkItem(continuation, state, preferLocal: true);
    }

    public RespValue? GetResult(short token)
    {
        lock (_lock)
        {
            if (!_done || token >> IndexBits != _version) throw new InvalidOperationException("a reply of another batch, or one not ready");
            Held held = _held[token & IndexMask];
            if (killed()) return null;
            return (held.CommitSeq > 0 ? _outcome.WriteError : _outcome.ReadError) ?? held.Reply;
        }
    }

    private short Token(int index) => (short)((_version << IndexBits) | index);

    /// <summary>Starts the batch's wait if it has not started; true when it is over.</summary>
    private bool Wait()
    {
        ValueTask<BatchOutcome> wait;
        lock (_lock)
        {
            if (_done) return true;
            if (_waiting) return false;
            _waiting = true;
            wait = replica.WaitAsync(_commitSeq, _confirm);
        }
        if (wait.IsCompleted)
        {
            Finish(wait.Result);
            return true;
        }
        _ = FinishWhenDoneAsync(wait);
        lock (_lock) return _done;
    }

    private async Task FinishWhenDoneAsync(ValueTask<BatchOutcome> wait) => Finish(await wait);

    private void Finish(BatchOutcome outcome)
    {
        Action<object?>? continuation;
        object? state;
        lock (_lock)
        {
            _outcome = outcome;
            _done = true;
            continuation = _continuation;
            state = _continuationState;
            _continuation = null;
        }
        continuation?.Invoke(state);
    }
}
