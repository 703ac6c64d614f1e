using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Server;

/// <summary>
/// Named places in the server where a test can hold, drop or count what happens, to force one interleaving
/// every time instead of hoping for it. Each site is reached only when <see cref="ServerNodeOptions.Faults"/>
/// is set (a null check otherwise).
/// </summary>
public enum FaultPoint
{
    /// <summary>
    /// Primary: the replication stream is about to take the next batch (writes and waiting reads) from the
    /// outbox. Holding it keeps writes applied on the primary but not forwarded.
    /// </summary>
    BeforeBatch,

    /// <summary>Primary: a read has registered to wait for its confirmation (count only).</summary>
    ReadRegistered,

    /// <summary>Primary: about to send one snapshot chunk after <c>BEGIN</c>. Holding it stalls the state transfer.</summary>
    SnapshotChunk,

    /// <summary>
    /// Backup: a replication message (<c>REPL.*</c>) arrived. Holding it makes the backup hang without
    /// answering (a stalled process or a black-holed link); dropping it loses the message and every later one
    /// on that connection, unanswered, with the connection left open.
    /// </summary>
    BackupReceive,

    /// <summary>Any server: a reply from the coordinator arrived. Dropping it loses the reply (the ping counted).</summary>
    CoordinatorReply,
}

/// <summary>
/// Fault injection a test turns on for one server: the unreliable network of the acceptance scenarios, and
/// the named <see cref="FaultPoint"/> sites. Every switch is off by default and may be flipped at any time.
/// </summary>
public sealed class FaultInjection(int seed = 0)
{
    private readonly Random _random = new(seed);
    private readonly FaultSite[] _sites = Enum.GetValues<FaultPoint>().Select(_ => new FaultSite()).ToArray();

    /// <summary>
    /// Unreliable network, as the acceptance scenarios define it: of the requests this server receives
    /// (from clients and from its primary alike) about 10% are dropped unprocessed and about 18% of the rest
    /// are processed but their reply is lost; the connection is closed in both cases.
    /// </summary>
    public bool Unreliable { get; set; }

    /// <summary>
    /// When set, every request this server receives is dropped unprocessed (the connection is closed), while
    /// it keeps pinging the coordinator: alive to the coordinator, unreachable to everyone else.
    /// </summary>
    public bool DropAllRequests { get; set; }

    /// <summary>When set, pings to the coordinator are black-holed (this server cannot reach it).</summary>
    public bool CoordinatorLinkCut { get; set; }

    /// <summary>
    /// A test's own rule, asked first for every request: a fate, or null to fall through to the switches above.
    /// Lets a test lose exactly the reply it means to.
    /// </summary>
    public Func<RespCommand, Delivery?>? Rule { get; set; }

    /// <summary>Draws the fate of one request.</summary>
    public Delivery NextDelivery(RespCommand? command = null)
    {
        if (command is not null && Rule?.Invoke(command) is { } chosen) return chosen;
        if (DropAllRequests) return Delivery.Drop;
        if (!Unreliable) return Delivery.Deliver;
        double r;
        lock (_random) r = _random.NextDouble();
        if (r < 0.10) return Delivery.Drop;
        return (r - 0.10) / 0.90 < 0.18 ? Delivery.LoseReply : Delivery.Deliver;
    }

    /// <summary>
    /// Holds everything that reaches <paramref name="point"/> until <see cref="FaultGate.Release"/> lets some
    /// through or the gate is disposed (which lets everything through from then on).
    /// </summary>
    public FaultGate Hold(FaultPoint point) => _sites[(int)point].Hold();

    /// <summary>Drops what reaches <paramref name="point"/> until the returned scope is disposed.</summary>
    public IDisposable Drop(FaultPoint point) => _sites[(int)point].Drop();

    /// <summary>How many times <paramref name="point"/> has been reached since this object was made.</summary>
    public int Hits(FaultPoint point) => _sites[(int)point].Hits;

    /// <summary>Waits until <paramref name="point"/> has been reached at least <paramref name="hits"/> times.</summary>
    public async Task WaitForHitsAsync(FaultPoint point, int hits, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (Hits(point) < hits)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"fault point {point} reached {Hits(point)} times, not {hits}, within {timeout.TotalSeconds:0.#} s");
            await Task.Delay(5);
        }
    }

    /// <summary>Counts a hit and waits while the site is held. Returns true when the site drops what reached it.</summary>
    internal ValueTask<bool> PassAsync(FaultPoint point, CancellationToken ct) => _sites[(int)point].PassAsync(ct);

    /// <summary>Counts a hit (for sites that may not wait: under a lock). Returns true when the site drops.</summary>
    internal bool Pass(FaultPoint point) => _sites[(int)point].Pass();

    private sealed class FaultSite
    {
        private int _hits;
        private volatile FaultGate? _gate;
        private volatile bool _drop;

        public int Hits => Volatile.Read(ref _hits);

        public FaultGate Hold()
        {
            var gate = new FaultGate(() => _gate = null);
            _gate = gate;
            return gate;
        }

        public IDisposable Drop()
        {
            _drop = true;
            return new Scope(() => _drop = false);
        }

        public bool Pass()
        {
            Interlocked.Increment(ref _hits);
            return _drop;
        }

        public async ValueTask<bool> PassAsync(CancellationToken ct)
        {
            Interlocked.Increment(ref _hits);
            if (_gate is { } gate) await gate.WaitAsync(ct);
            return _drop;
        }
    }

    private sealed class Scope(Action onDispose) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) onDispose();
        }
    }
}

/// <summary>A held <see cref="FaultPoint"/>: nothing passes until released; disposing opens it for good.</summary>
public sealed class FaultGate : IDisposable
{
    private readonly SemaphoreSlim _permits = new(0);
    private readonly Action _onDispose;
    private volatile bool _open;
    private int _waiting;

    internal FaultGate(Action onDispose) => _onDispose = onDispose;

    /// <summary>How many are waiting at the gate now.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>Lets <paramref name="count"/> waiting or future arrivals through.</summary>
    public void Release(int count = 1) => _permits.Release(count);

    /// <summary>Opens the gate: every waiting and later arrival passes.</summary>
    public void Dispose()
    {
        if (_open) return;
        _open = true;
        _onDispose();
        _permits.Release(int.MaxValue / 2);
    }

    internal async ValueTask WaitAsync(CancellationToken ct)
    {
        if (_open) return;
        Interlocked.Increment(ref _waiting);
        try
        {
            await _permits.WaitAsync(ct);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }
}
