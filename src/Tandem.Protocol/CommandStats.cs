namespace Tandem.Protocol;

/// <summary>
/// What one command has cost since the node started (or since <c>CONFIG RESETSTAT</c>), as <c>INFO commandstats</c>
/// reports it. Counted with one atomic add per field, so any number of connections may count at once.
/// </summary>
public sealed class CommandStats
{
    private long _calls;
    private long _ticks;
    private long _rejected;
    private long _failed;

    /// <summary>Times the command ran (rejected calls not included).</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Time spent running it, in <see cref="TimeProvider"/> timestamp ticks (waits for a backup not included).</summary>
    public long Ticks => Interlocked.Read(ref _ticks);

    /// <summary>Calls refused before running (a wrong number of arguments).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Calls that ran and answered an error.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Counts one call that took <paramref name="ticks"/>.</summary>
    public void Ran(long ticks)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _ticks, ticks);
    }

    /// <summary>Counts one call refused before it ran.</summary>
    public void Reject() => Interlocked.Increment(ref _rejected);

    /// <summary>Counts one call that answered an error.</summary>
    public void Fail() => Interlocked.Increment(ref _failed);

    /// <summary>Starts counting again from zero.</summary>
    public void Reset()
    {
        Interlocked.Exchange(ref _calls, 0);
        Interlocked.Exchange(ref _ticks, 0);
        Interlocked.Exchange(ref _rejected, 0);
        Interlocked.Exchange(ref _failed, 0);
    }
}
