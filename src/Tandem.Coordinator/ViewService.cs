using Tandem.Protocol;

namespace Tandem.Coordinator;

/// <summary>
/// The view service engine: records heartbeats and, on each <see cref="Tick"/>, decides the next view.
/// Thread-safe. It reads time only through <see cref="ViewServiceOptions.TimeProvider"/>.
/// </summary>
/// <remarks>
/// Rules: view 1 is made on a tick, never in a ping, so every server's first reply is view 0. The view
/// changes only once its primary has acknowledged it (pinged with its number), with one exception that keeps
/// the primary: the backup of an unacknowledged view that is dead, restarted or reported unreachable by the
/// primary is replaced while the primary stays (nothing was committed through a backup that is not synced,
/// and the primary holds everything). A server silent for the dead time is dead; a server that pings 0 after
/// having pinged a view number has restarted. The next primary is always the current primary or backup, and a
/// backup only if it is alive and not restarted. A new backup is the live idle server that first pinged
/// (preferring one that did not just restart and one its primary has not reported unreachable), or none; when an
/// acknowledged view's backup is gone, the next view has none, and the new backup comes one view later (so the
/// primary serves during the transfer).
/// <para>
/// With an <see cref="IViewLog"/> (the coordinator group), the engine decides only while it leads, and every
/// durable change (a new view, an ack) is committed in the group's log before anyone can learn it: a decision
/// becomes a proposal, and the state changes when the committed record is applied (<see cref="Apply"/>). One
/// proposal is in flight at a time. A new leader starts (<see cref="StartLeading"/>) by treating the servers of
/// the current view as alive for one dead time, and promotes nobody it has not heard from itself.
/// </para>
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
    private bool _backupReported;
    private View _lastAcked = View.Empty;
    private long _nextOrder;
    private readonly IViewLog? _log;
    private bool _leading;
    private Task<bool>? _proposal;

    /// <summary>Creates an engine at view 0 with no servers. Call <see cref="Start"/> to run its timer.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="log">
    /// Where durable changes are committed (the coordinator group). Null: the engine keeps its state in memory
    /// and always leads (one process, no persistence; tests of the rules use it).
    /// </param>
    public ViewService(ViewServiceOptions options, IViewLog? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        _time = options.TimeProvider;
        _deadTime = options.DeadTime;
        _log = log;
        _leading = log is null;
    }

    /// <summary>Whether this engine decides views: always without a log; with one, while its member leads the group.</summary>
    public bool IsLeading
    {
        get { lock (_lock) return _leading; }
    }

    /// <summary>The commit in flight (a view change or an ack), if any: a ping handler may wait for it.</summary>
    public Task? PendingCommit
    {
        get { lock (_lock) return _proposal is { IsCompleted: false } p ? p : null; }
    }

    /// <summary>
    /// Applies a record committed in the group's log (every member, in log order): a change only if it was decided
    /// from the current state (its base), a whole state (base -1, from a snapshot) always. Raises
    /// <see cref="ViewChanged"/> when the view changes.
    /// </summary>
    /// <returns>Whether the record took effect.</returns>
    public bool Apply(ViewRecord record)
    {
        bool changed, ackedNow;
        lock (_tickLock)
        {
            lock (_lock)
            {
                if (record.BaseNumber >= 0 && (record.BaseNumber != _view.Number || record.BaseAcked != _acked)) return false;
                changed = record.View != _view;
                ackedNow = record.Acked && (changed || !_acked);
                if (changed) Install(record.View, record.LastAcked.Number);
                _acked = record.Acked;
                _lastAcked = record.LastAcked;
                // The ack clears a restart flag a lost reply caused, unless the primary pinged 0 (or that it holds
                // nothing) since its ack.
                if (record.Acked && _servers.TryGetValue(record.View.Primary, out ServerState? p) && p.ViewNumber == record.View.Number && p.HeldView != 0)
                    p.Restarted = false;
            }
            if (changed) RaiseViewChanged(record.View);
            if (ackedNow) RaiseViewAcknowledged(record.View);
        }
        return true;
    }

    /// <summary>The current durable state, as one whole record (what a snapshot keeps).</summary>
    public ViewRecord Record
    {
        get { lock (_lock) return new ViewRecord(_view, _acked, _lastAcked); }
    }

    /// <summary>Raises <see cref="ViewAcknowledged"/>; a handler that throws is not let out.</summary>
    private void RaiseViewAcknowledged(View view)
    {
        try
        {
            ViewAcknowledged?.Invoke(view);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            System.Diagnostics.Trace.TraceError($"a ViewAcknowledged handler failed: {e}");
        }
    }

    /// <summary>Raises <see cref="ViewChanged"/>; a handler that throws is not let out (it would stop the group's apply loop).</summary>
    private void RaiseViewChanged(View view)
    {
        try
        {
            ViewChanged?.Invoke(view);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            System.Diagnostics.Trace.TraceError($"a ViewChanged handler failed: {e}");
        }
    }

    /// <summary>
    /// This member now leads and has applied every committed record. Who pinged when is forgotten; the servers of
    /// the current view are taken as alive, at that view, for one dead time, but none is promoted or chosen
    /// until it has pinged this leader.
    /// </summary>
    public void StartLeading()
    {
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            _servers.Clear();
            foreach (string address in (string[])[_view.Primary, _view.Backup])
            {
                if (address == "") continue;
                _servers[address] = new ServerState(_nextOrder++) { LastPing = now, ViewNumber = _view.Number, Heard = false };
            }
            _backupReported = false;
            _proposal = null;
            _leading = true;
        }
    }

    /// <summary>This member no longer leads: it decides nothing until <see cref="StartLeading"/>.</summary>
    public void StopLeading()
    {
        lock (_lock) _leading = false;
    }

    /// <summary>The settings.</summary>
    public ViewServiceOptions Options { get; }

    /// <summary>Raised after every view change, outside the engine's lock, in view order.</summary>
    public event Action<View>? ViewChanged;

    /// <summary>
    /// Raised, outside the engine's lock, when the current view's primary has acknowledged it (recorded): from then
    /// on that primary knows its role and serves.
    /// </summary>
    public event Action<View>? ViewAcknowledged;

    /// <summary>The current view.</summary>
    public View CurrentView
    {
        get { lock (_lock) return _view; }
    }

    /// <summary>The current view, whether its primary acknowledged it, and the newest acknowledged view's number.</summary>
    public View GetView(out bool acked, out long lastAcked)
    {
        lock (_lock)
        {
            acked = _acked;
            lastAcked = _lastAcked.Number;
            return _view;
        }
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
    public View Ping(string server, long viewNumber, out bool acked) => Ping(server, viewNumber, -1, out acked, out _);

    /// <summary>Records a heartbeat that also says which view's state the server holds (see the full overload).</summary>
    public View Ping(string server, long viewNumber, long heldView, out bool acked) => Ping(server, viewNumber, heldView, out acked, out _);

    /// <summary>Records a heartbeat that also says which view's state the server holds.</summary>
    /// <param name="server">The server's <c>HOST:PORT</c>.</param>
    /// <param name="viewNumber">The newest view number the server has taken on; 0 after a (re)start.</param>
    /// <param name="heldView">
    /// The newest view in which the server's state was a synced copy (0: it holds none; -1: it does not say).
    /// Only a server that says it holds the last acknowledged view can be fallen back to.
    /// </param>
    /// <param name="acked">Whether the returned view has been acknowledged by its primary.</param>
    /// <param name="lastAcked">The number of the newest acknowledged view (a server named primary must hold it).</param>
    public View Ping(string server, long viewNumber, long heldView, out bool acked, out long lastAcked)
    {
        ArgumentException.ThrowIfNullOrEmpty(server);
        ArgumentOutOfRangeException.ThrowIfNegative(viewNumber);
        ArgumentOutOfRangeException.ThrowIfLessThan(heldView, -1);
        View result;
        bool ackedNow = false;
        lock (_lock)
        {
            if (!_servers.TryGetValue(server, out ServerState? s))
                _servers.Add(server, s = new ServerState(_nextOrder++));
            s.LastPing = _time.GetTimestamp();
            s.Heard = true;
            // A running server never goes back to 0 once it has pinged a view number (a would-be primary that
            // has lost its state pings 0 too, which is the same thing): 0 after a number is a restart. A 0 that
            // follows 0 only means the server has not taken on a view yet, so a lost reply is harmless.
            if (viewNumber == 0 && s.ViewNumber > 0) s.Restarted = true;
            // Likewise a server that said it held a view's state and now holds none has lost it (restarted at the
            // same view number through a leader that did not see its 0, or refused a role it could not serve).
            if (heldView == 0 && s.HeldView > 0) s.Restarted = true;
            s.ViewNumber = viewNumber;
            s.HeldView = heldView;
            if (server == _view.Primary && viewNumber == _view.Number && !_acked)
            {
                // Tandem servers never acknowledge a view in which they are primary without holding its state
                // (they ping 0 instead), so an ack also clears a restart flag that a lost reply caused.
                if (_log is null)
                {
                    _acked = true;
                    ackedNow = true;
                    _lastAcked = _view;
                    if (heldView != 0) s.Restarted = false;
                }
                else if (_leading && _proposal is not { IsCompleted: false })
                {
                    // The ack counts once committed: the primary learns it from a later reply.
                    Propose(new ViewRecord(_view, true, _view, _view.Number, _acked));
                }
            }
            acked = _acked;
            lastAcked = _lastAcked.Number;
            result = _view;
        }
        if (ackedNow) RaiseViewAcknowledged(result);
        return result;
    }

    /// <summary>
    /// The primary of view <paramref name="viewNumber"/> reports that its backup <paramref name="backup"/> does
    /// not acknowledge (PacificA's primary-initiated reconfiguration). If that is still the current view, the
    /// next tick replaces the backup (with another idle server, or none) and keeps the primary; the reported
    /// server is passed over as a backup for <see cref="ViewServiceOptions.UnreachableCooldown"/>.
    /// </summary>
    /// <returns>True when the report concerns the current view and was recorded.</returns>
    public bool ReportUnreachableBackup(string primary, long viewNumber, string backup)
    {
        ArgumentException.ThrowIfNullOrEmpty(primary);
        ArgumentException.ThrowIfNullOrEmpty(backup);
        lock (_lock)
        {
            if (!_leading || viewNumber != _view.Number || primary != _view.Primary || backup != _view.Backup) return false;
            _backupReported = true;
            if (_servers.TryGetValue(backup, out ServerState? s))
                s.PassOverUntil = _time.GetTimestamp() + (long)(Options.UnreachableCooldown.TotalSeconds * _time.TimestampFrequency);
            return true;
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
                if (!_leading || _proposal is { IsCompleted: false }) return;
                long now = _time.GetTimestamp();
                Forget(now);
                next = NextView(now);
                if (next is not { } view) return;
                if (_log is not null)
                {
                    // A fallback to the history's start (nothing ever acknowledged) keeps last-acked at none.
                    Propose(new ViewRecord(view, false, _lastAcked, _view.Number, _acked));
                    return;
                }
                Install(view, _lastAcked.Number);
            }
            RaiseViewChanged(next.Value);
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
                p.Value.Restarted,
                p.Value.HeldView)).ToList();
            return new ViewServiceStatus(_view, _acked, Options.PingInterval, Options.DeadPings, servers, _lastAcked)
            {
                DataLost = IsDataLost(now),
                HistoryLost = IsHistoryLost(now),
                BackupReported = _backupReported,
            };
        }
    }

    /// <summary>
    /// The data is lost: a view was acknowledged, and every server that may hold its state has pinged this
    /// leader, is alive, and holds nothing (each restarted empty). The engine then waits for ever; only
    /// <see cref="StartNewHistoryAsync"/> moves on.
    /// </summary>
    public bool DataLost
    {
        get { lock (_lock) return IsDataLost(_time.GetTimestamp()); }
    }

    /// <summary>
    /// The group's log is empty (view 0) but a live server reports a later view or holds state: it belongs to a
    /// history this group has lost (a wiped data directory). View 1 is not made over it; only
    /// <see cref="StartNewHistoryAsync"/> moves on.
    /// </summary>
    public bool HistoryLost
    {
        get { lock (_lock) return IsHistoryLost(_time.GetTimestamp()); }
    }

    /// <summary>
    /// The operator's explicit choice to start a new history when the data is lost (<see cref="DataLost"/>,
    /// <see cref="HistoryLost"/>), or, with <paramref name="force"/>, when no live server holds the last
    /// acknowledged view (its holders are gone for good). The next view's primary is the live server holding the
    /// newest state (an empty one when all are), its number above every number a server reports, and nothing is
    /// acknowledged in it: everything acknowledged before is given up. Calling it again while that history has
    /// not been acknowledged yet changes nothing.
    /// </summary>
    /// <returns>Null once the new view is committed (or installed, or already there); else why it was refused.</returns>
    public async Task<string?> StartNewHistoryAsync(bool force = false)
    {
        Task<bool>? commit;
        View next;
        lock (_tickLock)
        {
            lock (_lock)
            {
                if (!_leading) return "this coordinator does not lead the group";
                if (_proposal is { IsCompleted: false }) return "a view change is being committed; try again";
                if (_view.Number > 0 && _lastAcked.Number == 0) return null; // a new history is already starting
                long now = _time.GetTimestamp();
                if (!IsDataLost(now) && !IsHistoryLost(now))
                {
                    if (!force) return "the data is not lost: not every server that held it has restarted empty (force gives up what dead servers hold)";
                    if (HolderAlive(now) is { } holder) return $"{holder} is alive and holds view {_lastAcked.Number}: the data is not lost";
                }
                if (NewHistoryPrimary(now) is not { } primary) return "no live server to start the new history on";
                long number = Math.Max(_view.Number, _servers.Values.Max(v => v.ViewNumber)) + 1;
                next = new View(number, primary, "");
                if (_log is not null) commit = Propose(new ViewRecord(next, false, View.Empty, _view.Number, _acked));
                else
                {
                    commit = null;
                    Install(next, 0);
                    _lastAcked = View.Empty;
                }
            }
            if (commit is null) RaiseViewChanged(next);
        }
        if (commit is not null && !await commit) return "this coordinator stopped leading before the new history was committed";
        return null;
    }

    /// <summary>The live, heard server holding the newest state (ties: the idle order), or null.</summary>
    private string? NewHistoryPrimary(long now) =>
        _servers.Where(p => p.Value.Heard && !IsDead(p.Value, now))
            .OrderByDescending(p => p.Value.Restarted ? 0 : Math.Max(0, p.Value.HeldView))
            .ThenBy(p => p.Value.Restarted)
            .ThenBy(p => p.Value.Order)
            .Select(p => p.Key)
            .FirstOrDefault();

    private bool IsHistoryLost(long now) =>
        _view.Number == 0 && _servers.Values.Any(s => s.Heard && !IsDead(s, now) && (s.ViewNumber > 0 || s.HeldView > 0));

    private bool IsDataLost(long now)
    {
        if (_lastAcked.Number == 0) return false;
        bool any = false;
        foreach (string address in (string[])[_view.Primary, _view.Backup, _lastAcked.Primary, _lastAcked.Backup])
        {
            if (address == "") continue;
            if (!_servers.TryGetValue(address, out ServerState? s) || !s.Heard || IsDead(s, now) || s.HeldView != 0) return false;
            // The primary of the acknowledged current view holds it (its pings say so from the next one on).
            if (address == _view.Primary && _acked && !s.Restarted && s.ViewNumber == _view.Number) return false;
            any = true;
        }
        return any;
    }

    private string? HolderAlive(long now)
    {
        foreach (string address in (string[])[_view.Primary, _view.Backup, _lastAcked.Primary, _lastAcked.Backup])
        {
            if (address == "" || !_servers.TryGetValue(address, out ServerState? s) || IsDead(s, now)) continue;
            if (s.HeldView != 0 || !s.Heard) return address; // holds something, or has not said what it holds yet
        }
        return null;
    }

    /// <summary>Starts committing <paramref name="record"/>; the state changes when the group applies it.</summary>
    private Task<bool> Propose(ViewRecord record)
    {
        Task<bool> commit = CommitSafelyAsync(_log!, record);
        _proposal = commit;
        return commit;
    }

    private static async Task<bool> CommitSafelyAsync(IViewLog log, ViewRecord record)
    {
        await Task.Yield(); // never commit under the engine's lock
        try { return await log.CommitAsync(record); }
        catch (Exception) { return false; } // the next tick decides again
    }

    private View? NextView(long now)
    {
        if (_view.Number == 0)
        {
            // A server of a later view (or holding state) belongs to a history this group lost: never start a
            // new one over it by itself.
            if (IsHistoryLost(now)) return null;
            return PickIdle(now, "") is { } first ? new View(1, first, "") : null;
        }
        bool primaryUsable = IsUsable(_view.Primary, now);
        bool backupGone = _view.Backup != "" && (_backupReported || !IsUsable(_view.Backup, now));
        if (!_acked)
        {
            // Before the ack, the view may change in two ways only. Keep the primary (it holds everything) and
            // drop a backup that is gone: nothing was committed through a backup that is not synced.
            if (primaryUsable) return backupGone ? new View(_view.Number + 1, _view.Primary, PickIdle(now, _view.Primary) ?? "") : null;
            // Or, the primary gone, fall back to a server of the last acknowledged view that still holds it:
            // a primary answers nobody before its ack is recorded, so every acknowledged write is there.
            return FallBack(now);
        }
        if (!primaryUsable)
        {
            // Only the backup holds the state; with no usable backup, waiting is the only safe choice. A backup
            // the primary reported unreachable is still synced: every commit of this view went through it.
            if (_view.Backup == "" || !IsUsable(_view.Backup, now) || !_servers[_view.Backup].Heard) return null;
            return new View(_view.Number + 1, _view.Backup, PickIdle(now, _view.Backup) ?? "");
        }
        // A backup that is gone is dropped first, and a new one named in the next view, once the primary has
        // acknowledged this one: its last acknowledged view then has no backup, so it goes on answering while the
        // new backup receives the state (no other server could ever be turned to; design.md, "The only copy").
        if (backupGone)
            return new View(_view.Number + 1, _view.Primary, "");
        if (_view.Backup == "" && PickIdle(now, _view.Primary) is { } backup)
            return new View(_view.Number + 1, _view.Primary, backup);
        return null;
    }

    private View? FallBack(long now)
    {
        // Nothing was ever acknowledged in this history, so no client was ever answered: any live server may
        // start it again, empty.
        if (_lastAcked.Number == 0) return PickIdle(now, _view.Primary) is { } fresh ? new View(_view.Number + 1, fresh, "") : null;
        foreach (string candidate in (string[])[_lastAcked.Primary, _lastAcked.Backup])
        {
            if (candidate == "" || !IsUsable(candidate, now) || _servers[candidate].HeldView < _lastAcked.Number) continue;
            return new View(_view.Number + 1, candidate, PickIdle(now, candidate) ?? "");
        }
        return null;
    }

    /// <summary>
    /// Makes <paramref name="view"/> current, not acknowledged. A restart seen before it no longer counts (a
    /// restarted server named backup receives the state), except the new primary's in a history with an
    /// acknowledged view (<paramref name="lastAcked"/> above 0): it was chosen because it held the state, so a
    /// restart seen between the decision and this install (the group's commit takes time) means it lost it, and
    /// it must stay unusable or the view would wait for ever for an ack it can never give.
    /// </summary>
    private void Install(View view, long lastAcked)
    {
        _view = view;
        _acked = false;
        _backupReported = false;
        foreach ((string address, ServerState s) in _servers)
        {
            if (address != view.Primary || lastAcked == 0) s.Restarted = false;
        }
    }

    /// <summary>
    /// The live server, other than <paramref name="exclude"/>, that first pinged; one that just restarted only
    /// if there is no other, and as a backup never one that a primary reported unreachable lately.
    /// </summary>
    private string? PickIdle(long now, string exclude)
    {
        string? best = null;
        (bool PassedOver, bool Restarted, long Order) bestKey = (true, true, long.MaxValue);
        foreach ((string address, ServerState s) in _servers)
        {
            if (address == exclude || IsDead(s, now) || !s.Heard) continue;
            bool passedOver = s.PassOverUntil > now;
            if (passedOver && exclude != "") continue; // a backup the primary cannot reach is worse than none
            (bool, bool, long) key = (passedOver, s.Restarted, s.Order);
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
        /// <summary>The view whose state the last ping said the server holds (-1: not said).</summary>
        public long HeldView { get; set; } = -1;
        /// <summary>Until this timestamp the server is not chosen as a backup: a primary could not reach it.</summary>
        public long PassOverUntil { get; set; }
        /// <summary>False for a server a new leader only assumes alive: it has not pinged this leader yet.</summary>
        public bool Heard { get; set; } = true;
    }
}
