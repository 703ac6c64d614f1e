namespace Tandem.Client;

/// <summary>
/// Numbers a client's exactly-once requests 1, 2, 3, ... and tracks which are still in flight, to compute the
/// acked-through mark sent with each request: the highest N such that every request numbered N or less is
/// finished, so the server may forget their saved replies. Thread-safe.
/// </summary>
public sealed class RequestWindow
{
    private readonly SortedSet<long> _inFlight = new();
    private long _last;

    /// <summary>Starts a request: returns its number and counts it in flight until <see cref="Complete"/>.</summary>
    public long Begin()
    {
        lock (_inFlight)
        {
            long seq = ++_last;
            _inFlight.Add(seq);
            return seq;
        }
    }

    /// <summary>
    /// Finishes request <paramref name="seq"/>: it got its final reply, or the caller gave up on it and will never
    /// retry it. Either way the server no longer needs its saved reply.
    /// </summary>
    public void Complete(long seq)
    {
        lock (_inFlight) _inFlight.Remove(seq);
    }

    /// <summary>The highest N such that every request numbered N or less is finished (0 before any).</summary>
    public long AckedThrough
    {
        get
        {
            lock (_inFlight) return _inFlight.Count == 0 ? _last : _inFlight.Min - 1;
        }
    }

    /// <summary>Number of requests in flight.</summary>
    public int InFlight
    {
        get
        {
            lock (_inFlight) return _inFlight.Count;
        }
    }
}
