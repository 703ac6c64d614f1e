using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Server;

/// <summary>
/// Deterministic-by-seed fault injection a test cluster turns on per server. Every switch is off by default
/// and is read on each request, so a test can flip it at any time.
/// </summary>
public sealed class FaultInjection(int seed = 0)
{
    private readonly Random _random = new(seed);

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
}
