using System.Globalization;
using Tandem.Protocol;

namespace Tandem.Client;

/// <summary>Redis's string, counter, expiry and multi-key commands: writes exactly once through <c>XREQ</c>, reads from the primary.</summary>
public sealed partial class TandemClient
{
    /// <summary>Adds 1 to the integer value of <paramref name="key"/> (a missing key counts as 0), exactly once; returns the new value.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The value is not an integer, the result would overflow, or the request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public Task<long> IncrAsync(string key, CancellationToken cancellationToken = default) =>
        IntegerWriteAsync(["INCR", Key(key)], cancellationToken);

    /// <summary>Subtracts 1 from the integer value of <paramref name="key"/> (a missing key counts as 0), exactly once; returns the new value.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The value is not an integer, the result would overflow, or the request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public Task<long> DecrAsync(string key, CancellationToken cancellationToken = default) =>
        IntegerWriteAsync(["DECR", Key(key)], cancellationToken);

    /// <summary>Adds <paramref name="increment"/> to the integer value of <paramref name="key"/> (<c>INCRBY</c>), exactly once; returns the new value.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The value is not an integer, the result would overflow, or the request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public Task<long> IncrByAsync(string key, long increment, CancellationToken cancellationToken = default) =>
        IntegerWriteAsync(["INCRBY", Key(key), Decimal(increment)], cancellationToken);

    /// <summary>Subtracts <paramref name="decrement"/> from the integer value of <paramref name="key"/> (<c>DECRBY</c>), exactly once; returns the new value.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The value is not an integer, the result would overflow, or the request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public Task<long> DecrByAsync(string key, long decrement, CancellationToken cancellationToken = default) =>
        IntegerWriteAsync(["DECRBY", Key(key), Decimal(decrement)], cancellationToken);

    /// <summary>Adds <paramref name="increment"/> to the number held by <paramref name="key"/> (<c>INCRBYFLOAT</c>), exactly once; returns the new value.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="increment"/> is not finite.</exception>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The value is not a number, or the request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task<double> IncrByFloatAsync(string key, double increment, CancellationToken cancellationToken = default)
    {
        if (!double.IsFinite(increment)) throw new ArgumentOutOfRangeException(nameof(increment), "must be finite");
        RespValue reply = await ExecuteAsync(["INCRBYFLOAT", Key(key), increment.ToString("R", CultureInfo.InvariantCulture)], exactlyOnce: true, cancellationToken);
        string text = Expect(reply, RespKind.BulkString).Text;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) ? value
            : throw new TandemException(ErrorCodes.Err, $"unexpected reply {reply}");
    }

    /// <summary>
    /// <c>SET</c> with options (expiry, <c>NX</c>/<c>XX</c>, <c>GET</c>), exactly once. Returns whether the value was
    /// set and, with <see cref="SetOptions.ReturnOldValue"/>, the old value (null when the key did not exist).
    /// </summary>
    /// <exception cref="ArgumentException">An expiry option without a positive value.</exception>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused (a bad expiry time, for example) and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task<SetResult> SetAsync(string key, string value, SetOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(options);
        RespValue reply = await ExecuteAsync([Commands.Set, Key(key), value, .. options.Arguments()], exactlyOnce: true, cancellationToken);
        if (!options.ReturnOldValue)
        {
            if (reply.Kind == RespKind.SimpleString) return new SetResult(true, null);
            return Expect(reply, RespKind.BulkString).IsNull ? new SetResult(false, null)
                : throw new TandemException(ErrorCodes.Err, $"unexpected reply {reply}");
        }
        string? old = NullableText(reply);
        bool applied = options.Condition switch
        {
            SetCondition.IfMissing => old is null,
            SetCondition.IfExists => old is not null,
            _ => true,
        };
        return new SetResult(applied, old);
    }

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/> and returns the old value (null when it did not exist), exactly once (<c>GETSET</c>).</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task<string?> GetSetAsync(string key, string value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(value);
        return NullableText(await ExecuteAsync(["GETSET", Key(key), value], exactlyOnce: true, cancellationToken));
    }

    /// <summary>Deletes <paramref name="key"/> and returns the value it had (null when it did not exist), exactly once (<c>GETDEL</c>).</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task<string?> GetDelAsync(string key, CancellationToken cancellationToken = default) =>
        NullableText(await ExecuteAsync(["GETDEL", Key(key)], exactlyOnce: true, cancellationToken));

    /// <summary>Sets every key to its value as one write (<c>MSET</c>), exactly once: no copy ever holds some of them and not the others.</summary>
    /// <exception cref="ArgumentException">No pairs.</exception>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task MSetAsync(IReadOnlyList<KeyValuePair<string, string>> pairs, CancellationToken cancellationToken = default) =>
        Expect(await ExecuteAsync(["MSET", .. Pairs(pairs)], exactlyOnce: true, cancellationToken), RespKind.SimpleString);

    /// <summary>Sets every key to its value only if none of them exists (<c>MSETNX</c>), exactly once; returns whether they were set.</summary>
    /// <exception cref="ArgumentException">No pairs.</exception>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task<bool> MSetNxAsync(IReadOnlyList<KeyValuePair<string, string>> pairs, CancellationToken cancellationToken = default) =>
        Expect(await ExecuteAsync(["MSETNX", .. Pairs(pairs)], exactlyOnce: true, cancellationToken), RespKind.Integer).Integer == 1;

    /// <summary>Deletes every key of <paramref name="keys"/> as one write (<c>DEL</c>), exactly once; returns how many existed.</summary>
    /// <exception cref="ArgumentException">No keys.</exception>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public Task<long> DeleteAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken = default) =>
        IntegerWriteAsync([Commands.Del, .. Keys(keys)], cancellationToken);

    /// <summary>
    /// Gives <paramref name="key"/> a deadline <paramref name="seconds"/> from now (<c>EXPIRE</c>), exactly once, if
    /// <paramref name="condition"/> holds; returns whether it was set (false when the key does not exist).
    /// </summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused (an invalid expire time, for example) and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public Task<bool> ExpireAsync(string key, long seconds, ExpireCondition condition = ExpireCondition.Always, CancellationToken cancellationToken = default) =>
        ExpireCommandAsync("EXPIRE", key, seconds, condition, cancellationToken);

    /// <summary>
    /// Gives <paramref name="key"/> a deadline <paramref name="milliseconds"/> from now (<c>PEXPIRE</c>), exactly once,
    /// if <paramref name="condition"/> holds; returns whether it was set (false when the key does not exist).
    /// </summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused (an invalid expire time, for example) and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public Task<bool> PExpireAsync(string key, long milliseconds, ExpireCondition condition = ExpireCondition.Always, CancellationToken cancellationToken = default) =>
        ExpireCommandAsync("PEXPIRE", key, milliseconds, condition, cancellationToken);

    /// <summary>Removes the deadline of <paramref name="key"/> (<c>PERSIST</c>), exactly once; returns whether it had one.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task<bool> PersistAsync(string key, CancellationToken cancellationToken = default) =>
        await IntegerWriteAsync(["PERSIST", Key(key)], cancellationToken) == 1;

    /// <summary>Reads every key of <paramref name="keys"/> at one instant (<c>MGET</c>); a missing key reads as null.</summary>
    /// <exception cref="ArgumentException">No keys.</exception>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    public async Task<IReadOnlyList<string?>> MGetAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken = default)
    {
        RespValue reply = await ExecuteAsync(["MGET", .. Keys(keys)], exactlyOnce: false, cancellationToken);
        RespValue[] items = Expect(reply, RespKind.Array).Items ?? throw new TandemException(ErrorCodes.Err, $"unexpected reply {reply}");
        if (items.Length != keys.Count) throw new TandemException(ErrorCodes.Err, $"unexpected reply {reply}");
        return Array.ConvertAll(items, NullableText);
    }

    /// <summary>The seconds <paramref name="key"/> has left (<c>TTL</c>): -1 when it has no deadline, -2 when it does not exist.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    public async Task<long> TtlAsync(string key, CancellationToken cancellationToken = default) =>
        Expect(await ExecuteAsync(["TTL", Key(key)], exactlyOnce: false, cancellationToken), RespKind.Integer).Integer;

    /// <summary>The milliseconds <paramref name="key"/> has left (<c>PTTL</c>): -1 when it has no deadline, -2 when it does not exist.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    public async Task<long> PTtlAsync(string key, CancellationToken cancellationToken = default) =>
        Expect(await ExecuteAsync(["PTTL", Key(key)], exactlyOnce: false, cancellationToken), RespKind.Integer).Integer;

    /// <summary>How many of <paramref name="keys"/> exist (<c>EXISTS</c>; a key named twice counts twice).</summary>
    /// <exception cref="ArgumentException">No keys.</exception>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    public async Task<long> ExistsAsync(IReadOnlyList<string> keys, CancellationToken cancellationToken = default) =>
        Expect(await ExecuteAsync(["EXISTS", .. Keys(keys)], exactlyOnce: false, cancellationToken), RespKind.Integer).Integer;

    /// <summary>
    /// Runs <paramref name="commands"/> (each a data command with its arguments, such as <c>["INCR", "k"]</c>) as one
    /// transaction, exactly once: one replicated write (<c>XREQ ... EXEC</c>), applied as a unit on every copy, so no
    /// copy ever holds half of it. Returns each command's reply in order; a command that fails (a non-integer value
    /// given to <c>INCR</c>, say) has its error reply in its place and the others still apply, as in Redis.
    /// </summary>
    /// <exception cref="ArgumentException">No commands, or an empty one.</exception>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The transaction was refused as a whole (an unknown command, wrong arity) and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task<IReadOnlyList<RespValue>> TransactionAsync(IReadOnlyList<string[]> commands, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(commands);
        if (commands.Count == 0) throw new ArgumentException("a transaction needs at least one command", nameof(commands));
        var args = new List<string> { "EXEC" };
        foreach (string[] command in commands)
        {
            ArgumentNullException.ThrowIfNull(command, nameof(commands));
            if (command.Length == 0 || command.Any(a => a is null)) throw new ArgumentException("every command needs a name and no null arguments", nameof(commands));
            args.Add(command.Length.ToString(CultureInfo.InvariantCulture));
            args.AddRange(command);
        }
        RespValue reply = await ExecuteAsync([.. args], exactlyOnce: true, cancellationToken);
        RespValue[] items = Expect(reply, RespKind.Array).Items ?? throw new TandemException(ErrorCodes.Err, $"unexpected reply {reply}");
        return items.Length == commands.Count ? items : throw new TandemException(ErrorCodes.Err, $"unexpected reply {reply}");
    }

    private async Task<bool> ExpireCommandAsync(string name, string key, long amount, ExpireCondition condition, CancellationToken cancellationToken)
    {
        string[] command = condition switch
        {
            ExpireCondition.IfNoExpiry => [name, Key(key), Decimal(amount), "NX"],
            ExpireCondition.IfHasExpiry => [name, Key(key), Decimal(amount), "XX"],
            ExpireCondition.IfGreater => [name, Key(key), Decimal(amount), "GT"],
            ExpireCondition.IfLess => [name, Key(key), Decimal(amount), "LT"],
            _ => [name, Key(key), Decimal(amount)],
        };
        return await IntegerWriteAsync(command, cancellationToken) == 1;
    }

    private async Task<long> IntegerWriteAsync(string[] command, CancellationToken cancellationToken) =>
        Expect(await ExecuteAsync(command, exactlyOnce: true, cancellationToken), RespKind.Integer).Integer;

    private static string? NullableText(RespValue reply) =>
        Expect(reply, RespKind.BulkString).IsNull ? null : reply.Text;

    private static string Key(string key) => key ?? throw new ArgumentNullException(nameof(key));

    private static string Decimal(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string[] Keys(IReadOnlyList<string> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Count == 0) throw new ArgumentException("at least one key is needed", nameof(keys));
        return [.. keys.Select(Key)];
    }

    private static string[] Pairs(IReadOnlyList<KeyValuePair<string, string>> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        if (pairs.Count == 0) throw new ArgumentException("at least one key and value are needed", nameof(pairs));
        var args = new string[2 * pairs.Count];
        for (int i = 0; i < pairs.Count; i++)
        {
            args[2 * i] = Key(pairs[i].Key);
            args[2 * i + 1] = pairs[i].Value ?? throw new ArgumentNullException(nameof(pairs));
        }
        return args;
    }
}
