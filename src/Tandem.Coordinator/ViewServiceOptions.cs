namespace Tandem.Coordinator;

/// <summary>Settings of the view service: how often servers ping and how many missed pings make one dead.</summary>
public sealed record ViewServiceOptions
{
    private readonly TimeSpan _pingInterval = TimeSpan.FromMilliseconds(100);
    private readonly int _deadPings = 5;
    private readonly TimeProvider _timeProvider = TimeProvider.System;
    private readonly TimeSpan _unreachableCooldown = TimeSpan.FromSeconds(10);

    /// <summary>P: how often servers are expected to ping, and how often the rules are applied. Default 100 ms.</summary>
    public TimeSpan PingInterval
    {
        get => _pingInterval;
        init => _pingInterval = value > TimeSpan.Zero ? value
            : throw new ArgumentOutOfRangeException(nameof(PingInterval), value, "must be positive");
    }

    /// <summary>D: missed pings after which a server is dead. Default 5.</summary>
    public int DeadPings
    {
        get => _deadPings;
        init => _deadPings = value >= 1 ? value
            : throw new ArgumentOutOfRangeException(nameof(DeadPings), value, "must be at least 1");
    }

    /// <summary>The clock and timer source. Tests pass a fake.</summary>
    public TimeProvider TimeProvider
    {
        get => _timeProvider;
        init => _timeProvider = value ?? throw new ArgumentNullException(nameof(TimeProvider));
    }

    /// <summary>
    /// How long a backup that its primary reported unreachable is passed over when a new backup is chosen
    /// (another idle server is preferred; none is better than one the primary cannot reach). Default 10 s.
    /// </summary>
    public TimeSpan UnreachableCooldown
    {
        get => _unreachableCooldown;
        init => _unreachableCooldown = value >= TimeSpan.Zero ? value
            : throw new ArgumentOutOfRangeException(nameof(UnreachableCooldown), value, "must not be negative");
    }

    /// <summary>P × D: how long a server may stay silent before it is dead.</summary>
    public TimeSpan DeadTime => PingInterval * DeadPings;
}
