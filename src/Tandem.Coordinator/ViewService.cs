using Tandem.Protocol;

namespace Tandem.Coordinator;

/// <summary>
/// The view service engine: records heartbeats and, on each <see cref="Tick"/>, decides the next view.
/// Thread-safe. It reads time only through <see cref="ViewServiceOptions.TimeProvider"/>.
/// </summary>
/// <remarks>
/// Rules: view 1 is made on a tick, never in a ping, so every server's first reply is view 0. The view
/// changes only once its primary has acknowledged it (pinged with its number). A server silent for the
/// dead time is dead; a primary or backup that pings 0 after being told its role has restarted and is
/// treated as dead. The next primary is always the current backup, and only if it is alive and not
/// restarted. A new backup is the live idle server that first pinged (preferring one that did not just
/// restart), or none.
/// </remarks>
public sealed class ViewService
{
    private const int ForgetAfterDeadTimes = 10;

    private readonly Lock _lock = new();
    private readonly Lock _tickLock = new();
    private readonly TimeProvider _time;
    private readonly TimeSpan _deadTime;
    private readonly Dictionary<string, ServerState> _servers = new(StringComparer.Ordinal);
    private View _view = View.Empty;
    private bool _acked;
    private long _nextOrder;

    /// <summary>Creates an engine at view 0 with no servers. Call <see cref="Start"/> to run its timer.</summary>
    public ViewService(ViewServiceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        _time = options.TimeProvider;
        _deadTime = options.DeadTime;
    }

    /// <summary>The settings.</summary>
    public ViewServiceOptions Options { get; }

    /// <summary>Raised after every view change, outside the engine's lock, in view order.</summary>
    public event Action<View>? ViewChanged;

    /// <summary>The current view.</summary>
    public View CurrentView
    {
        get { lock (_lock) return _view; }
    }

    /// <summary>Whether the current view's primary has acknowledged it (pinged with its number).</summary>
    public bool PrimaryAcked
    {
        get { lock (_lock) return _acked; }
    }

    /// <summary>Starts a timer (from the options' time provider) that calls <see cref="Tick"/> every ping interval.</summary>
    /// <returns>The timer; dispose it to stop.</returns>
    public IDisposable Start() =>
        _time.CreateTimer(static state => ((ViewService)state!).Tick(), this, Options.PingInterval, Options.PingInterval);

    /// <summary>Records a heartbeat from <paramref name="server"/> and returns the current view.</summary>
    /// <param name="server">The server's <c>HOST:PORT</c>.</param>
    /// <param name="viewNumber">The newest view number the server knows; 0 after a (re)start.</param>
    public View Ping(string server, long viewNumber) => Ping(server, viewNumber, out _);

    /// <summary>Records a heartbeat; returns the current view and whether its primary has acknowledged it.</summary>
    /// <param name="server">The server's <c>HOST:PORT</c>.</param>
    /// <param name="viewNumber">The newest view number the server knows; 0 after a (re)start.</param>
    /// <param name="acked">Whether the returned view has been acknowledged by its primary.</param>
    public View Ping(string server, long viewNumber, out bool acked)
    {
        ArgumentException.ThrowIfNullOrEmpty(server);
        ArgumentOutOfRangeException.ThrowIfNegative(viewNumber);
        lock (_lock)
        {
            if (!_servers.TryGetValue(server, out ServerState? s))
                _servers.Add(server, s = new ServerState(_nextOrder++));
            s.LastPing = _time.GetTimestamp();
            s.ViewNumber = viewNumber;
            bool inRole = HasRole(server, _view);
            // A 0 before the server has been told its role only means it has not heard of the view yet.
            if (viewNumber == 0 && inRole && s.ToldRole) s.Restarted = true;
            if (server == _view.Primary && viewNumber == _view.Number)
            {
                // Tandem servers never acknowledge a view in which they are primary without holding its state
                // (they ping 0 instead), so an ack also clears a restart flag that a lost reply caused.
                _acked = true;
                s.Restarted = false;
            }
            if (inRole) s.ToldRole = true;
            acked = _acked;
            return _view;
        }
    }

    /// <summary>Applies the rules once: forgets long-dead servers and moves to a new view if one is due.</summary>
    public void Tick()
    {
        // The tick lock keeps ViewChanged in view order when ticks race; handlers may still call Ping.
        lock (_tickLock)
        {
            View? next;
            lock (_lock)
            {
                long now = _time.GetTimestamp();
                Forget(now);
                next = NextView(now);
                if (next is { } view) Install(view);
            }
            if (next is { } changed) ViewChanged?.Invoke(changed);
        }
    }

    /// <summary>A snapshot of the view, the ack and every remembered server.</summary>
    public ViewServiceStatus GetStatus()
    {
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            var servers = _servers.OrderBy(p => p.Value.Order).Select(p => new ServerStatus(
                p.Key,
                p.Key == _view.Primary ? ServerRole.Primary : p.Key == _view.Backup ? ServerRole.Backup : ServerRole.Idle,
                !IsDead(p.Value, now),
                _time.GetElapsedTime(p.Value.LastPing, now),
                p.Value.ViewNumber,
                p.Value.Restarted)).ToList();
            return new ViewServiceStatus(_view, _acked, Options.PingInterval, Options.DeadPings, servers);
        }
    }

    private View? NextView(long now)
    {
        if (_view.Number == 0)
            return PickIdle(now, "") is { } first ? new View(1, first, "") : null;
        if (!_acked) return null;

        if (!IsUsable(_view.Primary, now))
        {
            // Only the backup holds the state; with no usable backup, waiting is the only safe choice.
            if (_view.Backup == "" || !IsUsable(_view.Backup, now)) return null;
            return new View(_view.Number + 1, _view.Backup, PickIdle(now, _view.Backup) ?? "");
        }
        if (_view.Backup != "" && !IsUsable(_view.Backup, now))
            return new View(_view.Number + 1, _view.Primary, PickIdle(now, _view.Primary) ?? "");
        if (_view.Backup == "" && PickIdle(now, _view.Primary) is { } backup)
            return new View(_view.Number + 1, _view.Primary, backup);
        return null;
    }

    private void Install(View view)
    {
        _view = view;
        _acked = false;
        foreach ((string address, ServerState s) in _servers)
        {
            s.Restarted = false;
            if (!HasRole(address, view)) s.ToldRole = false;
        }
    }

    /// <summary>
    /// The live server, other than <paramref name="exclude"/>, that first pinged; one that just restarted
    /// only if there is no other.
    /// </summary>
    private string? PickIdle(long now, string exclude)
    {
        string? best = null;
        (bool Restarted, long Order) bestKey = (true, long.MaxValue);
        foreach ((string address, ServerState s) in _servers)
        {
            if (address == exclude || IsDead(s, now)) continue;
            (bool, long) key = (s.Restarted, s.Order);
            if (best is not null && key.CompareTo(bestKey) >= 0) continue;
            best = address;
            bestKey = key;
        }
        return best;
    }

    private void Forget(long now)
    {
        TimeSpan forgetAfter = _deadTime * ForgetAfterDeadTimes;
        foreach ((string address, ServerState s) in _servers)
        {
            if (!HasRole(address, _view) && _time.GetElapsedTime(s.LastPing, now) >= forgetAfter)
                _servers.Remove(address);
        }
    }

    private bool IsUsable(string address, long now) =>
        _servers.TryGetValue(address, out ServerState? s) && !s.Restarted && !IsDead(s, now);

    private bool IsDead(ServerState s, long now) => _time.GetElapsedTime(s.LastPing, now) >= _deadTime;

    private static bool HasRole(string address, View view) => address == view.Primary || address == view.Backup;

    private sealed class ServerState(long order)
    {
        /// <summary>Registration order: ties between idle servers go to the one that pinged first.</summary>
        public long Order { get; } = order;
        public long LastPing { get; set; }
        public long ViewNumber { get; set; }
        public bool Restarted { get; set; }
        /// <summary>A ping reply has named this server primary or backup since it last held no role.</summary>
        public bool ToldRole { get; set; }
    }
}
