using System.Diagnostics;
using Tandem.Checker;

namespace Tandem.Chaos;

/// <summary>
/// Collects every operation of the run with call and return times in microseconds since the run started (one
/// monotonic clock for all clients), and hands out process numbers: a client whose operation ended unknown continues
/// as a new process, since the old operation may still take effect at any later time.
/// </summary>
internal sealed class HistoryRecorder
{
    private readonly long _start = Stopwatch.GetTimestamp();
    private readonly Dictionary<int, List<HistoryOp>> _epochs = [];
    private int _processes;

    /// <summary>Microseconds since the recorder was made.</summary>
    public long Now() => (long)(Stopwatch.GetElapsedTime(_start).Ticks / 10);

    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(_start);

    public int NewProcess() => Interlocked.Increment(ref _processes);

    /// <summary>Records an operation on a key of <paramref name="epoch"/>.</summary>
    public void Add(int epoch, HistoryOp op)
    {
        lock (_epochs)
        {
            if (!_epochs.TryGetValue(epoch, out List<HistoryOp>? ops)) _epochs[epoch] = ops = [];
            ops.Add(op);
        }
    }

    /// <summary>Removes and returns the operations of <paramref name="epoch"/> (its keys are done with).</summary>
    public List<HistoryOp> Take(int epoch)
    {
        lock (_epochs)
        {
            if (!_epochs.Remove(epoch, out List<HistoryOp>? ops)) ops = [];
            return ops;
        }
    }
}
