using System.Net;
using Microsoft.Extensions.Logging;
using Tandem.Net;

namespace Tandem.Coordinator;

/// <summary>Settings of a coordinator process.</summary>
public sealed record CoordinatorNodeOptions
{
    private readonly int _maxConnections = RespHost.DefaultMaxConnections;
    private readonly long _maxBufferedBytes = RespConnectionHandler.DefaultMaxBufferedBytes;
    private readonly string _serviceName = CoordinatorHandler.DefaultServiceName;

    /// <summary>Where to listen. Port 0 picks a free port.</summary>
    public required IPEndPoint Listen { get; init; }

    /// <summary>The view service settings.</summary>
    public ViewServiceOptions ViewService { get; init; } = new();

    /// <summary>
    /// This process's member of the coordinator group (its Raft address, the members, the data directory). Null
    /// runs the engine alone and in memory: a restart then forgets every view, so production always sets it.
    /// </summary>
    public CoordinatorGroupOptions? Group { get; init; }

    /// <summary>Most connections served at once (servers and clients together). Default 10,000.</summary>
    public int MaxConnections
    {
        get => _maxConnections;
        init => _maxConnections = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxConnections));
    }

    /// <summary>
    /// The largest command accepted, framing included: as on a server with default limits, twice the largest bulk
    /// string (<see cref="Tandem.Protocol.RespLimits.Default"/>) plus 1 MiB, 33 MiB. A longer one is cut with
    /// <c>-ERR Protocol error</c>.
    /// </summary>
    public static long MaxFrameBytes => 2L * Tandem.Protocol.RespLimits.Default.MaxBulkLength + 1024 * 1024;

    /// <summary>
    /// The memory budget of all connections together (input held beyond 64 KiB per connection). Default 2 GiB,
    /// as on a server.
    /// </summary>
    public long MaxBufferedBytes
    {
        get => _maxBufferedBytes;
        init => _maxBufferedBytes = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxBufferedBytes));
    }

    /// <summary>
    /// Longest time a command may stay incomplete once its first bytes arrived (slow clients are closed).
    /// Default 30 s; <see cref="Timeout.InfiniteTimeSpan"/> turns it off.
    /// </summary>
    public TimeSpan FrameTimeout { get; init; } = RespConnectionHandler.DefaultFrameTimeout;

    /// <summary>
    /// The master name clients of the Redis Sentinel API ask for (<c>SENTINEL get-master-addr-by-name NAME</c>):
    /// default <c>tandem</c>; one word of printable ASCII.
    /// </summary>
    public string ServiceName
    {
        get => _serviceName;
        init => _serviceName = CoordinatorHandler.IsServiceName(value)
            ? value
            : throw new ArgumentException($"'{value}' is not a service name: one word of printable ASCII", nameof(ServiceName));
    }

    /// <summary>Where to log. Null logs nothing.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }
}
