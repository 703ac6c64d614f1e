using System.Net;
using Microsoft.Extensions.Logging;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.Server;

/// <summary>Settings of one key-value server. Its listen address is its identity in views.</summary>
public sealed record ServerNodeOptions
{
    private readonly TimeSpan _pingInterval = TimeSpan.FromMilliseconds(100);
    private readonly TimeSpan _commitTimeout = TimeSpan.FromSeconds(2);
    private readonly TimeSpan _backupTimeout = TimeSpan.FromMilliseconds(1500);
    private readonly long _maxBacklogBytes = 256L * 1024 * 1024;
    private readonly int _maxKeyBytes = 64 * 1024;
    private readonly int _maxValueBytes = 8 * 1024 * 1024;
    private readonly long _maxBufferedBytes = Tandem.Net.RespConnectionHandler.DefaultMaxBufferedBytes;

    /// <summary>Where to listen. Port 0 picks a free port (the bound address becomes the identity).</summary>
    public required IPEndPoint Listen { get; init; }

    /// <summary>
    /// The coordinator group's members, <c>HOST:PORT[,HOST:PORT...]</c> (one address for a group of one). The
    /// server pings the leader; a member that does not lead names it.
    /// </summary>
    public required string Coordinator { get; init; }

    /// <summary>
    /// The address other nodes and clients use to reach this server, <c>HOST:PORT</c>. Defaults to the bound
    /// listen address.
    /// </summary>
    public string? AdvertisedAddress { get; init; }

    /// <summary>
    /// How often a primary removes the keys whose deadline has come (active expiry, one replicated write each
    /// time there are any). Default 100 ms, as Redis's.
    /// </summary>
    public TimeSpan ExpiryInterval
    {
        get => _expiryInterval;
        init => _expiryInterval = value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(ExpiryInterval));
    }

    private TimeSpan _expiryInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>How often to ping the coordinator. Default 100 ms.</summary>
    public TimeSpan PingInterval
    {
        get => _pingInterval;
        init => _pingInterval = value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(PingInterval));
    }

    /// <summary>
    /// How long a request waits for its write to be committed (or its read confirmed) by the backup before
    /// the client gets <c>TRYAGAIN</c>. Default 2 s.
    /// </summary>
    public TimeSpan CommitTimeout
    {
        get => _commitTimeout;
        init => _commitTimeout = value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(CommitTimeout));
    }

    /// <summary>
    /// The bound on every wait of a primary on its backup (connect, each snapshot chunk, each batch): a later
    /// answer fails the attempt, and a backup that fails this long is reported to the coordinator, which
    /// replaces it. Default 1.5 s.
    /// </summary>
    public TimeSpan BackupTimeout
    {
        get => _backupTimeout;
        init => _backupTimeout = value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(BackupTimeout));
    }

    /// <summary>
    /// Most bytes of writes a primary holds for a backup that is behind (queued, or sent and not yet
    /// acknowledged). Past it, writes are refused with <c>TRYAGAIN</c> (not applied) instead of growing the
    /// heap. Default 256 MiB; it must leave room for the largest value.
    /// </summary>
    public long MaxBacklogBytes
    {
        get => _maxBacklogBytes;
        init => _maxBacklogBytes = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxBacklogBytes));
    }

    /// <summary>Largest key accepted, in bytes. Default 64 KiB.</summary>
    public int MaxKeyBytes
    {
        get => _maxKeyBytes;
        init => _maxKeyBytes = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxKeyBytes));
    }

    /// <summary>Largest value accepted, in bytes. Default 8 MiB.</summary>
    public int MaxValueBytes
    {
        get => _maxValueBytes;
        init => _maxValueBytes = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(MaxValueBytes));
    }

    /// <summary>
    /// Dial overrides for links to other servers: when this server connects to the peer whose identity is a
    /// key, it dials the value instead (for example a proxy that injects faults on that one link). Empty by
    /// default.
    /// </summary>
    public IReadOnlyDictionary<string, string> Routes { get; init; } = new Dictionary<string, string>();

    /// <summary>The address to dial to reach the peer <paramref name="identity"/>.</summary>
    internal string DialAddress(string identity) => Routes.GetValueOrDefault(identity, identity);

    /// <summary>
    /// Longest time a command may stay incomplete once its first bytes arrived (slow clients are closed).
    /// Default 30 s; <see cref="Timeout.InfiniteTimeSpan"/> turns it off.
    /// </summary>
    public TimeSpan FrameTimeout { get; init; } = Tandem.Net.RespConnectionHandler.DefaultFrameTimeout;

    /// <summary>Most connections served at once (clients and other nodes together). Default 10,000.</summary>
    public int MaxConnections { get; init; } = Tandem.Net.RespHost.DefaultMaxConnections;

    /// <summary>
    /// The memory budget of all connections together: most bytes of input held for incomplete commands (beyond
    /// 64 KiB per connection). A connection that would pass it is cut with <c>-ERR Protocol error</c>. Default
    /// 2 GiB; it must hold at least the largest frame (<see cref="MaxFrameBytes"/>).
    /// </summary>
    public long MaxBufferedBytes
    {
        get => _maxBufferedBytes;
        init => _maxBufferedBytes = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxBufferedBytes));
    }

    /// <summary>
    /// The largest command a connection may send, framing included: a forwarded batch holds up to 4 MiB of writes
    /// plus one largest value, so twice the largest bulk string plus 1 MiB. A longer one is cut.
    /// </summary>
    public long MaxFrameBytes => 2L * RespLimits.MaxBulkLength + 1024 * 1024;

    /// <summary>Bounds on the duplicate table.</summary>
    public DuplicateTableOptions Duplicates { get; init; } = new();

    /// <summary>The clock. Tests may pass a fake.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Where to log. Null logs nothing.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>Fault injection for tests (unreliable network, cut coordinator link). Null in production.</summary>
    public FaultInjection? Faults { get; init; }

    /// <summary>
    /// RESP limits for frames and replies between nodes, derived from the key and value limits: twice the largest, so a value
    /// somewhat over the limit gets a clear error reply, and a far larger one closes the connection unread.
    /// </summary>
    internal RespLimits RespLimits => new() { MaxBulkLength = (int)Math.Min(int.MaxValue, 2L * Math.Max(MaxKeyBytes, MaxValueBytes)) };
}
