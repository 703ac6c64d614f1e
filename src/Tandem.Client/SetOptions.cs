using System.Globalization;

namespace Tandem.Client;

/// <summary>The expiry option of <c>SET</c>.</summary>
public enum SetExpiry
{
    /// <summary>No option: the key loses any deadline it had.</summary>
    None,
    /// <summary><c>EX seconds</c>: expires that many seconds from now.</summary>
    Seconds,
    /// <summary><c>PX milliseconds</c>: expires that many milliseconds from now.</summary>
    Milliseconds,
    /// <summary><c>EXAT unix-seconds</c>: expires at that Unix time, in seconds.</summary>
    UnixSeconds,
    /// <summary><c>PXAT unix-milliseconds</c>: expires at that Unix time, in milliseconds.</summary>
    UnixMilliseconds,
    /// <summary><c>KEEPTTL</c>: keeps the deadline the key has, if any.</summary>
    KeepTtl,
}

/// <summary>When <c>SET</c> sets.</summary>
public enum SetCondition
{
    /// <summary>Always.</summary>
    Always,
    /// <summary><c>NX</c>: only if the key does not exist.</summary>
    IfMissing,
    /// <summary><c>XX</c>: only if the key exists.</summary>
    IfExists,
}

/// <summary>When <c>EXPIRE</c> and <c>PEXPIRE</c> set the deadline (Redis 7's options).</summary>
public enum ExpireCondition
{
    /// <summary>Always (when the key exists).</summary>
    Always,
    /// <summary><c>NX</c>: only if the key has no deadline.</summary>
    IfNoExpiry,
    /// <summary><c>XX</c>: only if the key has a deadline.</summary>
    IfHasExpiry,
    /// <summary><c>GT</c>: only if the new deadline is later than the current one (a key without one counts as never expiring).</summary>
    IfGreater,
    /// <summary><c>LT</c>: only if the new deadline is earlier than the current one (a key without one counts as never expiring).</summary>
    IfLess,
}

/// <summary>
/// The options of <see cref="TandemClient.SetAsync(string, string, SetOptions, CancellationToken)"/>: an expiry, a
/// condition and <c>GET</c>, as Redis 7's <c>SET key value [NX | XX] [GET] [EX | PX | EXAT | PXAT | KEEPTTL]</c>.
/// </summary>
public sealed record SetOptions
{
    private readonly long _expiryValue;

    /// <summary>Plain <c>SET</c>: always set, no deadline.</summary>
    public static SetOptions Default { get; } = new();

    /// <summary>The expiry option; <see cref="ExpiryValue"/> is its number.</summary>
    public SetExpiry Expiry { get; init; }

    /// <summary>The number of <see cref="Expiry"/> (seconds, milliseconds or a Unix time); must be positive when an expiry needs one.</summary>
    public long ExpiryValue
    {
        get => _expiryValue;
        init => _expiryValue = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(ExpiryValue), "must be positive");
    }

    /// <summary><c>NX</c>, <c>XX</c> or neither.</summary>
    public SetCondition Condition { get; init; }

    /// <summary><c>GET</c>: also return the old value.</summary>
    public bool ReturnOldValue { get; init; }

    /// <summary><c>EX seconds</c>.</summary>
    public static SetOptions ExpireInSeconds(long seconds) => new() { Expiry = SetExpiry.Seconds, ExpiryValue = seconds };

    /// <summary><c>PX milliseconds</c>.</summary>
    public static SetOptions ExpireInMilliseconds(long milliseconds) => new() { Expiry = SetExpiry.Milliseconds, ExpiryValue = milliseconds };

    /// <summary><c>PXAT</c> of <paramref name="deadline"/>, to the millisecond.</summary>
    public static SetOptions ExpireAt(DateTimeOffset deadline) =>
        new() { Expiry = SetExpiry.UnixMilliseconds, ExpiryValue = deadline.ToUnixTimeMilliseconds() };

    /// <summary>The options as <c>SET</c> arguments after the value.</summary>
    public IEnumerable<string> Arguments()
    {
        if (Condition == SetCondition.IfMissing) yield return "NX";
        else if (Condition == SetCondition.IfExists) yield return "XX";
        if (ReturnOldValue) yield return "GET";
        string? name = Expiry switch
        {
            SetExpiry.Seconds => "EX",
            SetExpiry.Milliseconds => "PX",
            SetExpiry.UnixSeconds => "EXAT",
            SetExpiry.UnixMilliseconds => "PXAT",
            SetExpiry.KeepTtl => "KEEPTTL",
            _ => null,
        };
        if (name is null) yield break;
        yield return name;
        if (Expiry == SetExpiry.KeepTtl) yield break;
        if (_expiryValue <= 0) throw new ArgumentException($"the {name} option needs a positive {nameof(ExpiryValue)}");
        yield return _expiryValue.ToString(CultureInfo.InvariantCulture);
    }
}

/// <summary>What <c>SET</c> with options did.</summary>
/// <param name="Applied">Whether the value was set (false when NX or XX refused it).</param>
/// <param name="OldValue">
/// With <see cref="SetOptions.ReturnOldValue"/>: the value before, or null when the key did not exist. Always null without it.
/// </param>
public readonly record struct SetResult(bool Applied, string? OldValue);
