using Tandem.Net;

namespace Tandem.Client;

/// <summary>Settings of a <see cref="TandemClient"/>. Invalid values throw when set.</summary>
public sealed record TandemClientOptions
{
    private readonly string _coordinator = "127.0.0.1:7000";
    private readonly TimeSpan _attemptTimeout = TimeSpan.FromSeconds(1);
    private readonly TimeSpan _maxBackoff = TimeSpan.FromMilliseconds(200);
    private readonly TimeSpan? _operationTimeout;

    /// <summary>The coordinator, <c>HOST:PORT</c>. Default <c>127.0.0.1:7000</c>.</summary>
    public string Coordinator
    {
        get => _coordinator;
        init
        {
            ArgumentNullException.ThrowIfNull(value);
            try
            {
                RespClientConnection.ParseEndPoint(value);
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
}
