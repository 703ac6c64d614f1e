using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Client;

/// <summary>Settings of a <see cref="TandemClient"/>. Invalid values throw when set.</summary>
public sealed record TandemClientOptions
{
    private readonly string _coordinator = "127.0.0.1:7000";
    private readonly TimeSpan _attemptTimeout = TimeSpan.FromSeconds(1);
    private readonly TimeSpan _maxBackoff = TimeSpan.FromMilliseconds(200);
    private readonly TimeSpan? _operationTimeout;
    private readonly int _maxValueBytes = MaxServerValueBytes;

    /// <summary>The largest value a server accepts (<c>tandem server --max-value-bytes</c> at most): 512 MiB.</summary>
    public const int MaxServerValueBytes = 512 * 1024 * 1024;

    /// <summary>
    /// The coordinator group's members, <c>HOST:PORT[,HOST:PORT...]</c> (one address for a group of one).
    /// Default <c>127.0.0.1:7000</c>.
    /// </summary>
    public string Coordinator
    {
        get => _coordinator;
        init
        {
            ArgumentNullException.ThrowIfNull(value);
            try
            {
                CoordinatorMembers.Parse(value);
            }
            catch (FormatException e)
            {
                throw new ArgumentException(e.Message, nameof(Coordinator), e);
            }
            _coordinator = value;
        }
    }

    /// <summary>How long one try on one server may take before the client gives up on it and retries. Default 1 s.</summary>
    public TimeSpan AttemptTimeout
    {
        get => _attemptTimeout;
        init => _attemptTimeout = value > TimeSpan.Zero ? value
            : throw new ArgumentOutOfRangeException(nameof(AttemptTimeout), value, "must be positive");
    }

    /// <summary>Longest pause between retries; pauses grow exponentially from 5 ms up to this. Default 200 ms.</summary>
    public TimeSpan MaxBackoff
    {
        get => _maxBackoff;
        init => _maxBackoff = value > TimeSpan.Zero ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxBackoff), value, "must be positive");
    }

    /// <summary>
    /// How long one call may take in all, retries included, before it throws <see cref="TimeoutException"/>.
    /// Null (the default) retries until the call's cancellation token fires.
    /// </summary>
    public TimeSpan? OperationTimeout
    {
        get => _operationTimeout;
        init => _operationTimeout = value is null || value > TimeSpan.Zero ? value
            : throw new ArgumentOutOfRangeException(nameof(OperationTimeout), value, "must be positive or null");
    }

    /// <summary>
    /// The largest value this client accepts in a reply, in bytes. A larger reply is a protocol error (the
    /// connection is closed). Default <see cref="MaxServerValueBytes"/>, so that any value a server may hold can be
    /// read; memory is taken only for values that actually arrive. Lower it to bound what a misbehaving server can
    /// make the client allocate.
    /// </summary>
    public int MaxValueBytes
    {
        get => _maxValueBytes;
        init => _maxValueBytes = value is >= 1 and <= MaxServerValueBytes ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxValueBytes), value, $"must be between 1 and {MaxServerValueBytes}");
    }

    /// <summary>Limits for reading replies: values up to <see cref="MaxValueBytes"/>, and room for error texts.</summary>
    internal RespLimits ReplyLimits => new() { MaxBulkLength = Math.Max(MaxValueBytes, 1024 * 1024) };
}

/// <summary>One coordinator group member as it describes itself (<c>VS.MEMBER</c>).</summary>
/// <param name="Address">The member's address, as given in <see cref="TandemClientOptions.Coordinator"/>.</param>
/// <param name="Role"><c>leader</c>, <c>follower</c>, or <c>unreachable</c> when it did not answer.</param>
/// <param name="Term">Its Raft term; null when unreachable.</param>
/// <param name="Leader">The leader it knows of; null when none (or unreachable).</param>
public sealed record CoordinatorMemberStatus(string Address, string Role, long? Term, string? Leader);
