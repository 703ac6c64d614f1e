using System.Globalization;
using System.Text;
using Tandem.Checker;
using Tandem.Client;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Chaos;

/// <summary>
/// The clients. Each is sequential (one operation at a time) and draws its operations from its own seeded random
/// source. Even-numbered clients use <see cref="TandemClient"/> (exactly-once writes, retries); odd-numbered ones
/// speak plain RESP to the primary named by the coordinator group's leader and never retry a write.
/// </summary>
/// <remarks>
/// Keys come in two sets: append-only keys (<c>a{i}.e{epoch}</c>: only Get and Append, so every acknowledged
/// append's token must be in the final value) and mixed keys (<c>m{i}.e{epoch}</c>: every operation). The epoch
/// advances every <see cref="ChaosOptions.Epoch"/>, so each key's history stays short. A few big-value keys
/// (<c>b{i}.e{epoch}</c>: Put of 1-4 MiB, Get, Delete; see <see cref="BigValue"/>) are drawn at a low rate. Some
/// exactly-once clients (<see cref="IsShortLived"/>) make a new <see cref="TandemClient"/>, so a new session, every
/// 1-4 operations: with a small duplicate table (<see cref="ChaosOptions.MaxSessions"/>) they push out the sessions
/// of long-lived clients that are still retrying. A request answered "session expired" counts as unknown: it may
/// have taken effect once.
/// </remarks>
internal sealed class Workload(ChaosOptions options, string coordinator, HistoryRecorder history, Action<string> log)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<int, int> _inFlight = [];
    private int _maxEpoch = -1;
    private int _sessionsExpired;

    /// <summary>Exactly-once requests answered "session expired" (recorded as unknown).</summary>
    public int SessionsExpired => Volatile.Read(ref _sessionsExpired);

    /// <summary>Exactly-once clients that make a new <see cref="TandemClient"/> every few operations.</summary>
    public static bool IsShortLived(int client) => client % 4 == 2;

    public int AppendKeys => options.Keys / 2;

    /// <summary>Which operations the clients draw.</summary>
    public WorkloadMix Mix => options.Mix;

    public int MixedKeys => options.Keys - AppendKeys;

    /// <summary>The newest epoch any client has used so far (-1 before the first operation).</summary>
    public int MaxEpoch
    {
        get
        {
            lock (_lock) return _maxEpoch;
        }
    }

    /// <summary>Counter keys per epoch (only Incr, Get and transactions of two increments) in the Redis mix.</summary>
    public int CounterKeys => options.Mix == WorkloadMix.Redis ? 2 : 0;

    /// <summary>Every key name of <paramref name="epoch"/> that gets a final read (the short-lived expiry keys do not).</summary>
    public IEnumerable<string> KeysOf(int epoch)
    {
        for (int i = 0; i < AppendKeys; i++) yield return AppendKey(i, epoch);
        for (int i = 0; i < MixedKeys; i++) yield return MixedKey(i, epoch);
        for (int i = 0; i < BigKeys; i++) yield return BigKey(i, epoch);
        for (int i = 0; i < CounterKeys; i++) yield return CounterKey(i, epoch);
    }

    /// <summary>Commands sent, by name (and option), for the report.</summary>
    public IReadOnlyDictionary<string, int> CommandCounts
    {
        get
        {
            lock (_commands) return new SortedDictionary<string, int>(_commands, StringComparer.Ordinal);
        }
    }

    private readonly Dictionary<string, int> _commands = new(StringComparer.Ordinal);

    private void Count(string command)
    {
        lock (_commands) _commands[command] = _commands.GetValueOrDefault(command) + 1;
    }

    /// <summary>Keys set with a short PX, per epoch: what expiry reads pick from.</summary>
    private readonly Dictionary<int, List<string>> _expiring = [];

    private void Expiring(int epoch, string key)
    {
        lock (_expiring)
        {
            if (!_expiring.TryGetValue(epoch, out List<string>? keys)) _expiring[epoch] = keys = [];
            keys.Add(key);
            _expiring.Remove(epoch - 2);
        }
    }

    private string? PickExpiring(int epoch, Random random)
    {
        lock (_expiring)
        {
            if (!_expiring.TryGetValue(epoch, out List<string>? keys) || keys.Count == 0) return null;
            return keys[Math.Max(0, keys.Count - 1 - random.Next(Math.Min(8, keys.Count)))]; // one of the newest
        }
    }

    private int BigKeys => options.BigRate > 0 ? options.BigKeys : 0;

    /// <summary>The share of operations that go to big-value keys, for about <see cref="ChaosOptions.BigRate"/> per second.</summary>
    private double BigShare => BigKeys == 0 ? 0 : options.BigRate / (options.Rate > 0 ? options.Rate : 2000);

    /// <summary>True once <paramref name="epoch"/> is over and none of its operations is still running: its keys will not change again (but for unknown writes).</summary>
    public bool IsQuiet(int epoch)
    {
        lock (_lock) return CurrentEpoch() > epoch && _inFlight.GetValueOrDefault(epoch) == 0;
    }

    private int CurrentEpoch() => (int)(history.Elapsed.Ticks / options.Epoch.Ticks);

    /// <summary>Starts an operation in the current epoch; pair with <see cref="Exit"/>.</summary>
    private int Enter()
    {
        lock (_lock)
        {
            int epoch = CurrentEpoch();
            _inFlight[epoch] = _inFlight.GetValueOrDefault(epoch) + 1;
            _maxEpoch = Math.Max(_maxEpoch, epoch);
            return epoch;
        }
    }

    private void Exit(int epoch)
    {
        lock (_lock) _inFlight[epoch]--;
    }

    public static bool IsAppendOnly(string key) => key.StartsWith('a');

    private static string AppendKey(int i, int epoch) => string.Create(CultureInfo.InvariantCulture, $"a{i}.e{epoch}");

    private static string MixedKey(int i, int epoch) => string.Create(CultureInfo.InvariantCulture, $"m{i}.e{epoch}");

    private static string BigKey(int i, int epoch) => string.Create(CultureInfo.InvariantCulture, $"b{i}.e{epoch}");

    private static string CounterKey(int i, int epoch) => string.Create(CultureInfo.InvariantCulture, $"n{i}.e{epoch}");

    /// <summary>Counter keys: only increments by 1 (alone or two in a transaction) and reads.</summary>
    public static bool IsCounter(string key) => key.StartsWith('n');

    /// <summary>Keys set once with a short PX (<c>x...</c>): checked by <see cref="Verifier"/> for expiry, not by the linearizability search.</summary>
    public static bool IsExpiring(string key) => key.StartsWith('x');

    /// <summary>The EXPIRE and SET EX seconds of the mixed keys: far too long to pass during a run, so the model's deadline flag is exact.</summary>
    public const long LongExpirySeconds = 100_000_000;

    /// <summary>Keys whose values are <see cref="BigValue"/>s (the history holds their descriptions).</summary>
    public static bool IsBig(string key) => key.StartsWith('b');

    /// <summary>
    /// True for an exactly-once request refused because its session left the duplicate table
    /// (<see cref="TandemSessionExpiredException"/>, or an error reply <c>NOSESSION</c>): its outcome is unknown.
    /// </summary>
    internal static bool IsSessionExpired(Exception e) =>
        e is TandemSessionExpiredException || e is TandemException { Code: ErrorCodes.NoSession };

    /// <summary>Runs every client until <paramref name="stop"/> fires; an operation in progress then finishes first.</summary>
    public Task RunAsync(CancellationToken stop, CancellationToken abort) =>
        Task.WhenAll(Enumerable.Range(0, options.Clients).Select(c => Task.Run(() =>
            c % 2 == 0 ? ExactlyOnceClientAsync(c, stop, abort) : PlainClientAsync(c, stop, abort), CancellationToken.None)));

    /// <param name="Kind">What the operation does.</param>
    /// <param name="Key">Its key.</param>
    /// <param name="Input">What the history records as input (for a big value: its description).</param>
    /// <param name="BigToken">For a Put of a big value: its token (the value is made when sent).</param>
    /// <param name="BigLength">For a Put of a big value: its length.</param>
    /// <param name="Options">For Set and Expire: the options (see <see cref="HistoryOp.Options"/>); for an expiry key's Set: <c>PX n</c>.</param>
    /// <param name="Shape">A one-key command, or one that touches two keys (recorded as one operation per key).</param>
    /// <param name="Key2">The second key of a two-key shape.</param>
    /// <param name="Input2">The second value of an MSET.</param>
    private readonly record struct Op(OpKind Kind, string Key, string Input, string? BigToken = null, int BigLength = 0,
        string Options = "", Shape Shape = Shape.Single, string Key2 = "", string Input2 = "")
    {
        /// <summary>The value to send.</summary>
        public string Value => BigToken is null ? Input : BigValue.Make(BigToken, BigLength);

        /// <summary>The operations the history records for it, one per key.</summary>
        public (OpKind Kind, string Key, string Input, string Options)[] Parts => Shape switch
        {
            Shape.MSet => [(OpKind.Put, Key, Input, ""), (OpKind.Put, Key2, Input2, "")],
            Shape.MGet => [(OpKind.Get, Key, "", ""), (OpKind.Get, Key2, "", "")],
            Shape.DelMany => [(OpKind.Delete, Key, "", ""), (OpKind.Delete, Key2, "", "")],
            Shape.Transaction => [(OpKind.Incr, Key, "1", ""), (OpKind.Incr, Key2, "1", "")],
            _ => [(Kind, Key, Input, Options)],
        };

        public bool IsWrite => Shape is not Shape.MGet && Kind is not (OpKind.Get or OpKind.Ttl);
    }

    /// <summary>How an operation is sent.</summary>
    private enum Shape
    {
        /// <summary>One command on one key.</summary>
        Single,
        /// <summary>MSET of two keys.</summary>
        MSet,
        /// <summary>MGET of two keys.</summary>
        MGet,
        /// <summary>DEL of two keys.</summary>
        DelMany,
        /// <summary>A transaction of two increments (two counter keys).</summary>
        Transaction,
    }

    private static readonly string[] SetOptionChoices = ["", "NX", "XX", "GET", "EX", "KEEPTTL", "NX GET", "XX GET", "GET EX", "XX KEEPTTL", "NX EX"];

    private sealed class Chooser(int seed, int client, Workload workload)
    {
        private readonly Random _random = new(unchecked(seed * 1_000_003 + client * 7919 + 17));
        private readonly double _bigShare = workload.BigShare;
        private int _n;

        /// <summary>Operations until a short-lived client makes a new <see cref="TandemClient"/>.</summary>
        public int Lifetime() => 1 + _random.Next(4);

        public Op Next(int epoch)
        {
            if (_bigShare > 0 && _random.NextDouble() < _bigShare)
            {
                string big = BigKey(_random.Next(workload.BigKeys), epoch);
                int roll0 = _random.Next(100);
                string bigToken = string.Create(CultureInfo.InvariantCulture, $"c{client}.{++_n};");
                if (roll0 < 45)
                {
                    int length = BigValue.MinLength + _random.Next(BigValue.MaxLength - BigValue.MinLength + 1);
                    return new Op(OpKind.Put, big, BigValue.Describe(bigToken, length), bigToken, length);
                }
                return roll0 < 90 ? new Op(OpKind.Get, big, "") : new Op(OpKind.Delete, big, "");
            }
            if (workload.Mix == WorkloadMix.Redis) return NextRedis(epoch);
            bool appendOnly = _random.Next(2) == 0;
            int index = _random.Next(appendOnly ? workload.AppendKeys : workload.MixedKeys);
            int roll = _random.Next(100);
            int n = ++_n;
            string token = string.Create(CultureInfo.InvariantCulture, $"c{client}.{n};");
            if (appendOnly) return roll < 60 ? new Op(OpKind.Append, AppendKey(index, epoch), token) : new Op(OpKind.Get, AppendKey(index, epoch), "");
            string key = MixedKey(index, epoch);
            return roll switch
            {
                < 40 => new Op(OpKind.Get, key, ""),
                < 75 => new Op(OpKind.PutHash, key, token.TrimEnd(';')),
                < 85 => new Op(OpKind.Append, key, token),
                < 95 => new Op(OpKind.Put, key, string.Create(CultureInfo.InvariantCulture, $"p{client}.{n}")),
                _ => new Op(OpKind.Delete, key, ""),
            };
        }

        private Op NextRedis(int epoch)
        {
            int group = _random.Next(100);
            int n = ++_n;
            string token = string.Create(CultureInfo.InvariantCulture, $"c{client}.{n};");
            if (group < 30)
            {
                string append = AppendKey(_random.Next(workload.AppendKeys), epoch);
                return _random.Next(100) < 60 ? new Op(OpKind.Append, append, token) : new Op(OpKind.Get, append, "");
            }
            if (group < 45)
            {
                int c = _random.Next(workload.CounterKeys);
                int roll = _random.Next(100);
                string counter = CounterKey(c, epoch);
                return roll switch
                {
                    < 70 => new Op(OpKind.Incr, counter, "1"),
                    < 85 => new Op(OpKind.Get, counter, ""),
                    _ => new Op(OpKind.Incr, counter, "1", Shape: Shape.Transaction, Key2: CounterKey((c + 1) % workload.CounterKeys, epoch)),
                };
            }
            if (group < 52)
            {
                int roll = _random.Next(100);
                string? known = roll < 40 ? null : workload.PickExpiring(epoch, _random);
                if (known is null)
                {
                    string key = string.Create(CultureInfo.InvariantCulture, $"x{client}.{n}.e{epoch}");
                    int px = 100 + _random.Next(500);
                    return new Op(OpKind.Put, key, string.Create(CultureInfo.InvariantCulture, $"v{client}.{n}"), Options: $"PX {px}");
                }
                return roll < 75 ? new Op(OpKind.Get, known, "") : new Op(OpKind.Ttl, known, "");
            }
            int index = _random.Next(workload.MixedKeys);
            string m = MixedKey(index, epoch);
            string other = MixedKey((index + 1) % workload.MixedKeys, epoch);
            bool twoKeys = workload.MixedKeys >= 2;
            int r = _random.Next(100);
            string value = string.Create(CultureInfo.InvariantCulture, $"p{client}.{n}");
            return r switch
            {
                < 20 => new Op(OpKind.Get, m, ""),
                < 30 => new Op(OpKind.PutHash, m, token.TrimEnd(';')),
                < 36 => new Op(OpKind.Append, m, token),
                < 42 => new Op(OpKind.Put, m, value),
                < 45 => new Op(OpKind.Delete, m, ""),
                < 53 => new Op(OpKind.Incr, m, _random.Next(2) == 0 ? "1" : (_random.Next(9) - 4).ToString(CultureInfo.InvariantCulture)),
                < 63 => new Op(OpKind.Set, m, value, Options: SetOptionChoices[_random.Next(SetOptionChoices.Length)]),
                < 67 => new Op(OpKind.GetDel, m, ""),
                < 72 => new Op(OpKind.Expire, m, "", Options: (_random.Next(3) switch { 0 => "NX", 1 => "XX", _ => "" })),
                < 75 => new Op(OpKind.Persist, m, ""),
                < 81 => new Op(OpKind.Ttl, m, ""),
                < 86 when twoKeys => new Op(OpKind.Put, m, value, Shape: Shape.MSet, Key2: other, Input2: value + "b"),
                < 92 when twoKeys => new Op(OpKind.Get, m, "", Shape: Shape.MGet, Key2: other),
                < 96 when twoKeys => new Op(OpKind.Delete, m, "", Shape: Shape.DelMany, Key2: other),
                _ => new Op(OpKind.Set, m, value, Options: "GET"),
            };
        }
    }

    private async Task ExactlyOnceClientAsync(int client, CancellationToken stop, CancellationToken abort)
    {
        var chooser = new Chooser(options.Seed, client, this);
        TandemClient NewClient() => new(new TandemClientOptions { Coordinator = coordinator, OperationTimeout = options.OperationTimeout });
        TandemClient tandem = NewClient();
        bool shortLived = IsShortLived(client);
        int left = shortLived ? chooser.Lifetime() : int.MaxValue;
        int process = history.NewProcess();
        var pacer = new Pacer(options);
        try
        {
            while (!stop.IsCancellationRequested && !abort.IsCancellationRequested)
            {
                bool expired = await OneAsync();
                // A new client is a new session: after an expired one (a real application would do the same), and
                // every few operations for a short-lived client.
                if (expired || --left <= 0)
                {
                    await tandem.DisposeAsync();
                    tandem = NewClient();
                    left = shortLived ? chooser.Lifetime() : int.MaxValue;
                }
            }
        }
        finally
        {
            await tandem.DisposeAsync();
        }

        async Task<bool> OneAsync()
        {
            bool expired = false;
            await pacer.WaitAsync(abort);
            int epoch = Enter();
            Op op = chooser.Next(epoch);
            long call = history.Now();
            string?[] outputs = new string?[op.Parts.Length];
            Outcome outcome = Outcome.Failed;
            Count(Name(op));
            try
            {
                outputs = await ExactlyOnceAsync(tandem, op, abort);
                outcome = Outcome.Ok;
            }
            catch (TandemException e) when (op.Kind == OpKind.Incr && IsIncrRefusal(e.Message))
            {
                outputs = ["error"];
                outcome = Outcome.Ok;
            }
            catch (Exception e) when (!abort.IsCancellationRequested && IsSessionExpired(e))
            {
                // The session (and with it the reply of an earlier attempt) was dropped: the write may have taken
                // effect once; never "not applied".
                outcome = op.IsWrite ? Outcome.Unknown : Outcome.Failed;
                expired = true;
                Interlocked.Increment(ref _sessionsExpired);
            }
            catch (TandemException e) when (e.Code == ErrorCodes.Err)
            {
                outcome = Outcome.Failed;
                log($"client {client}: {op.Kind} {op.Key} refused: {e.Message}");
            }
            catch (Exception) when (!abort.IsCancellationRequested)
            {
                // Timed out (or any other surprise): a write may or may not have been applied.
                outcome = op.IsWrite ? Outcome.Unknown : Outcome.Failed;
            }
            finally
            {
                Record(epoch, process, op, outputs, call, outcome);
                Exit(epoch);
            }
            if (outcome == Outcome.Unknown) process = history.NewProcess();
            return expired;
        }
    }

    /// <summary>Records one operation per key of <paramref name="op"/>; an expiry key's Set that succeeded becomes readable.</summary>
    private void Record(int epoch, int process, Op op, string?[] outputs, long call, Outcome outcome)
    {
        long ret = history.Now();
        var parts = op.Parts;
        for (int i = 0; i < parts.Length; i++)
        {
            (OpKind kind, string key, string input, string options) = parts[i];
            Outcome o = outcome == Outcome.Unknown && kind is OpKind.Get or OpKind.Ttl ? Outcome.Failed : outcome;
            history.Add(epoch, new HistoryOp(process, kind, key, input, o == Outcome.Ok ? outputs[i] : null, call, ret, o, options));
        }
        if (outcome == Outcome.Ok && op.Kind == OpKind.Put && IsExpiring(op.Key)) Expiring(epoch, op.Key);
    }

    /// <summary>The refusals of INCR that leave the value as it is (the model's <c>"error"</c> output).</summary>
    private static bool IsIncrRefusal(string message) =>
        message.Contains("not an integer", StringComparison.Ordinal) || message.Contains("overflow", StringComparison.Ordinal);

    /// <summary>The command an operation sends, for the report's counts.</summary>
    private static string Name(Op op) => op.Shape switch
    {
        Shape.MSet => "MSET",
        Shape.MGet => "MGET",
        Shape.DelMany => "DEL2",
        Shape.Transaction => "EXEC",
        _ => op.Kind switch
        {
            OpKind.Get when IsExpiring(op.Key) => "GET(px key)",
            OpKind.Ttl when IsExpiring(op.Key) => "PTTL",
            OpKind.Put when IsExpiring(op.Key) => "SET PX",
            OpKind.Get => "GET",
            OpKind.Put => "SET",
            OpKind.PutHash => "PUTHASH",
            OpKind.Append => "APPEND",
            OpKind.Delete => "DEL",
            OpKind.Incr => op.Input == "1" ? "INCR" : "INCRBY",
            OpKind.Set when op.Options == "GET" => "GETSET",
            OpKind.Set => op.Options == "" ? "SET(opts)" : "SET " + op.Options,
            OpKind.GetDel => "GETDEL",
            OpKind.Expire => op.Options == "" ? "EXPIRE" : "EXPIRE " + op.Options,
            OpKind.Persist => "PERSIST",
            OpKind.Ttl => "TTL",
            _ => op.Kind.ToString(),
        },
    };

    private static async Task<string?[]> ExactlyOnceAsync(TandemClient tandem, Op op, CancellationToken ct)
    {
        switch (op.Shape)
        {
            case Shape.MSet:
                await tandem.MSetAsync([new(op.Key, op.Input), new(op.Key2, op.Input2)], ct);
                return [null, null];
            case Shape.MGet:
                return [.. (await tandem.MGetAsync([op.Key, op.Key2], ct)).Select(v => v ?? "")];
            case Shape.DelMany:
                return DeletedOfTwo(await tandem.DeleteAsync([op.Key, op.Key2], ct));
            case Shape.Transaction:
                return [.. (await tandem.TransactionAsync([["INCR", op.Key], ["INCR", op.Key2]], ct)).Select(IncrOutput)];
        }
        string? output = op.Kind switch
        {
            OpKind.Get when IsBig(op.Key) => BigValue.Decode(await tandem.GetAsync(op.Key, ct)),
            OpKind.Get => await tandem.GetAsync(op.Key, ct),
            OpKind.Put when IsExpiring(op.Key) => await SetPxAsync(tandem, op, ct),
            OpKind.Put => await PutAsync(tandem, op, ct),
            OpKind.PutHash => await tandem.PutHashAsync(op.Key, op.Input, ct),
            OpKind.Append => Decimal(await tandem.AppendAsync(op.Key, op.Input, ct)),
            OpKind.Delete => await tandem.DeleteAsync(op.Key, ct) ? "1" : "0",
            OpKind.Incr when op.Input == "1" => Decimal(await tandem.IncrAsync(op.Key, ct)),
            OpKind.Incr => Decimal(await tandem.IncrByAsync(op.Key, long.Parse(op.Input, CultureInfo.InvariantCulture), ct)),
            OpKind.Set when op.Options == "GET" => await tandem.GetSetAsync(op.Key, op.Input, ct) ?? "",
            OpKind.Set => await SetAsync(tandem, op, ct),
            OpKind.GetDel => await tandem.GetDelAsync(op.Key, ct) ?? "",
            OpKind.Expire => await tandem.ExpireAsync(op.Key, LongExpirySeconds, op.Options switch
            {
                "NX" => ExpireCondition.IfNoExpiry,
                "XX" => ExpireCondition.IfHasExpiry,
                _ => ExpireCondition.Always,
            }, ct) ? "1" : "0",
            OpKind.Persist => await tandem.PersistAsync(op.Key, ct) ? "1" : "0",
            OpKind.Ttl when IsExpiring(op.Key) => Decimal(await tandem.PTtlAsync(op.Key, ct)),
            OpKind.Ttl => Decimal(await tandem.TtlAsync(op.Key, ct)),
            _ => throw new InvalidOperationException($"no command for {op.Kind}"),
        };
        return [output];
    }

    private static async Task<string?> SetAsync(TandemClient tandem, Op op, CancellationToken ct)
    {
        string[] words = op.Options.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var options = new SetOptions
        {
            Condition = words.Contains("NX") ? SetCondition.IfMissing : words.Contains("XX") ? SetCondition.IfExists : SetCondition.Always,
            ReturnOldValue = words.Contains("GET"),
            Expiry = words.Contains("KEEPTTL") ? SetExpiry.KeepTtl : SetExpiry.None,
        };
        if (words.Contains("EX")) options = options with { Expiry = SetExpiry.Seconds, ExpiryValue = LongExpirySeconds };
        SetResult result = await tandem.SetAsync(op.Key, op.Input, options, ct);
        return options.ReturnOldValue ? result.OldValue ?? "" : result.Applied ? "1" : "0";
    }

    private static async Task<string?> SetPxAsync(TandemClient tandem, Op op, CancellationToken ct)
    {
        await tandem.SetAsync(op.Key, op.Input, SetOptions.ExpireInMilliseconds(long.Parse(op.Options[3..], CultureInfo.InvariantCulture)), ct);
        return null;
    }

    private static string?[] DeletedOfTwo(long deleted) => deleted switch
    {
        2 => ["1", "1"],
        0 => ["0", "0"],
        _ => [null, null], // one of them: which is not known
    };

    private static string? IncrOutput(RespValue reply) =>
        reply.Kind == RespKind.Integer ? Decimal(reply.Integer)
        : reply.IsError && IsIncrRefusal(reply.Text) ? "error"
        : throw new RespProtocolException($"unexpected reply to INCR: {reply}");

    private static string Decimal(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static async Task<string?> PutAsync(TandemClient tandem, Op op, CancellationToken ct)
    {
        await tandem.PutAsync(op.Key, op.Value, ct);
        return null;
    }

    private async Task PlainClientAsync(int client, CancellationToken stop, CancellationToken abort)
    {
        var chooser = new Chooser(options.Seed, client, this);
        int process = history.NewProcess();
        var pacer = new Pacer(options);
        RespClientConnection? viewService = null, primary = null;
        var members = new CoordinatorMembers(coordinator);
        string asking = "";
        int hops = 0; // redirects followed at once (bounded: members that lost the leadership may name each other)
        try
        {
            while (!stop.IsCancellationRequested && !abort.IsCancellationRequested)
            {
                if (primary is null or { IsBroken: true })
                {
                    if (primary is not null) await primary.DisposeAsync();
                    primary = null;
                    try
                    {
                        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(abort);
                        timeout.CancelAfter(TimeSpan.FromSeconds(1));
                        if (viewService is not null && (viewService.IsBroken || asking != members.Current))
                        {
                            await viewService.DisposeAsync();
                            viewService = null;
                        }
                        asking = members.Current;
                        viewService ??= await RespClientConnection.ConnectAsync(asking, timeout.Token);
                        RespValue answer = await viewService.SendAsync(timeout.Token, Commands.VsView);
                        if (answer.IsError && answer.ErrorCode == ErrorCodes.NotLeader)
                        {
                            // A member that does not lead: ask the leader it names (or the next member) at once.
                            if (members.Redirected(asking, answer.Text) && ++hops <= members.All.Count) continue;
                        }
                        else
                        {
                            View view = View.FromResp(answer);
                            if (view.Primary != "") primary = await RespClientConnection.ConnectAsync(view.Primary, timeout.Token);
                        }
                    }
                    catch (Exception) when (!abort.IsCancellationRequested)
                    {
                        if (viewService is not null) await viewService.DisposeAsync();
                        viewService = null;
                        members.Failed(asking);
                    }
                    hops = 0;
                    if (primary is null)
                    {
                        await Pause(abort);
                        continue;
                    }
                }

                await pacer.WaitAsync(abort);
                int epoch = Enter();
                Op op = chooser.Next(epoch);
                bool write = op.IsWrite;
                long call = history.Now();
                string?[] outputs = new string?[op.Parts.Length];
                Outcome outcome = write ? Outcome.Unknown : Outcome.Failed;
                bool reconnect = false;
                Count(Name(op));
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(abort);
                    timeout.CancelAfter(options.OperationTimeout);
                    RespValue reply = op.Shape == Shape.Transaction
                        ? await PlainTransactionAsync(primary, op, timeout.Token)
                        : await primary.SendAsync(timeout.Token, PlainCommand(op));
                    if (reply.IsError && op.Kind == OpKind.Incr && op.Shape == Shape.Single && IsIncrRefusal(reply.Text))
                    {
                        outputs = ["error"];
                        outcome = Outcome.Ok;
                    }
                    else if (reply.IsError)
                    {
                        switch (reply.ErrorCode)
                        {
                            case ErrorCodes.NotPrimary:
                            case ErrorCodes.ReadOnly:
                                // Refused before anything was applied; ask the coordinator again.
                                outcome = Outcome.Failed;
                                reconnect = true;
                                break;
                            case ErrorCodes.Err:
                            case "EXECABORT":
                                outcome = Outcome.Failed;
                                log($"client {client}: {op.Kind} {op.Key} refused: {reply.Text}");
                                break;
                            default:
                                // TRYAGAIN: a write may be applied on the primary and later committed, or lost with it.
                                outcome = write ? Outcome.Unknown : Outcome.Failed;
                                break;
                        }
                    }
                    else
                    {
                        outputs = op.Kind == OpKind.Get && IsBig(op.Key) && reply.Kind == RespKind.BulkString
                            ? [reply.IsNull ? "" : BigValue.Decode(reply.Bytes)]
                            : Decode(op, reply);
                        outcome = Outcome.Ok;
                    }
                }
                catch (Exception) when (!abort.IsCancellationRequested)
                {
                    // Timeout or a lost connection after sending: a write may have been applied.
                    outcome = write ? Outcome.Unknown : Outcome.Failed;
                    reconnect = true;
                }
                finally
                {
                    Record(epoch, process, op, outputs, call, outcome);
                    Exit(epoch);
                }
                if (outcome == Outcome.Unknown) process = history.NewProcess();
                if (reconnect)
                {
                    await primary.DisposeAsync();
                    primary = null;
                }
                if (outcome != Outcome.Ok) await Pause(abort);
            }
        }
        finally
        {
            if (primary is not null) await primary.DisposeAsync();
            if (viewService is not null) await viewService.DisposeAsync();
        }
    }

    /// <summary>Keeps one client at <see cref="ChaosOptions.Rate"/> / <see cref="ChaosOptions.Clients"/> operations per second.</summary>
    private sealed class Pacer(ChaosOptions options)
    {
        private readonly long _interval = options.Rate == 0 ? 0 : System.Diagnostics.Stopwatch.Frequency * options.Clients / options.Rate;
        private long _due = System.Diagnostics.Stopwatch.GetTimestamp();

        public async Task WaitAsync(CancellationToken ct)
        {
            if (_interval == 0) return;
            // Timers are coarse (a short delay can take 10 ms or more), so sleep only once 20 ms ahead of the pace
            // and let a client that fell behind catch up by at most 50 ms.
            long now = System.Diagnostics.Stopwatch.GetTimestamp(), ms = System.Diagnostics.Stopwatch.Frequency / 1000;
            _due = Math.Max(_due + _interval, now - 50 * ms);
            if (_due - now > 20 * ms) await Task.Delay(TimeSpan.FromSeconds((double)(_due - now) / System.Diagnostics.Stopwatch.Frequency), ct);
        }
    }

    private static Task Pause(CancellationToken abort) => Task.Delay(TimeSpan.FromMilliseconds(20 + Random.Shared.Next(30)), abort);

    /// <summary>The command a plain client sends for <paramref name="op"/> (not a transaction).</summary>
    private static string[] PlainCommand(Op op) => op.Shape switch
    {
        Shape.MSet => ["MSET", op.Key, op.Input, op.Key2, op.Input2],
        Shape.MGet => ["MGET", op.Key, op.Key2],
        Shape.DelMany => [Commands.Del, op.Key, op.Key2],
        _ => op.Kind switch
        {
            OpKind.Get => [Commands.Get, op.Key],
            OpKind.Put when IsExpiring(op.Key) => [Commands.Set, op.Key, op.Input, .. op.Options.Split(' ')],
            OpKind.Put => [Commands.Set, op.Key, op.Value],
            OpKind.PutHash => [Commands.PutHash, op.Key, op.Input],
            OpKind.Append => [Commands.Append, op.Key, op.Input],
            OpKind.Delete => [Commands.Del, op.Key],
            OpKind.Incr when op.Input == "1" => ["INCR", op.Key],
            OpKind.Incr => ["INCRBY", op.Key, op.Input],
            OpKind.Set when op.Options == "GET" => ["GETSET", op.Key, op.Input],
            OpKind.Set => [Commands.Set, op.Key, op.Input, .. op.Options.Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .SelectMany(w => w == "EX" ? ["EX", Decimal(LongExpirySeconds)] : new[] { w })],
            OpKind.GetDel => ["GETDEL", op.Key],
            OpKind.Expire => ["EXPIRE", op.Key, Decimal(LongExpirySeconds), .. op.Options.Split(' ', StringSplitOptions.RemoveEmptyEntries)],
            OpKind.Persist => ["PERSIST", op.Key],
            OpKind.Ttl => [IsExpiring(op.Key) ? "PTTL" : "TTL", op.Key],
            _ => throw new InvalidOperationException($"no command for {op.Kind}"),
        },
    };

    /// <summary>MULTI, the two increments, EXEC; the reply is EXEC's (or the first that refused).</summary>
    private static async Task<RespValue> PlainTransactionAsync(RespClientConnection connection, Op op, CancellationToken ct)
    {
        RespValue multi = await connection.SendAsync(ct, "MULTI");
        if (multi.IsError) return multi; // nothing queued
        foreach (string key in new[] { op.Key, op.Key2 })
        {
            RespValue queued = await connection.SendAsync(ct, "INCR", key);
            if (queued.IsError) throw new RespProtocolException($"INCR inside MULTI answered {queued}"); // reconnect, outcome unknown
        }
        return await connection.SendAsync(ct, "EXEC");
    }

    private static string? Text(RespValue reply) =>
        reply.Kind == RespKind.BulkString ? reply.IsNull ? "" : Encoding.UTF8.GetString(reply.Bytes!) : throw new RespProtocolException($"unexpected reply {reply}");

    private static string?[] Decode(Op op, RespValue reply)
    {
        switch (op.Shape)
        {
            case Shape.MSet when reply.Kind == RespKind.SimpleString:
                return [null, null];
            case Shape.MGet when reply is { Kind: RespKind.Array, Items.Length: 2 }:
                return [.. reply.Items.Select(Text)];
            case Shape.DelMany when reply.Kind == RespKind.Integer:
                return DeletedOfTwo(reply.Integer);
            case Shape.Transaction when reply is { Kind: RespKind.Array, Items.Length: 2 }:
                return [.. reply.Items.Select(IncrOutput)];
            case Shape.Single:
                break;
            default:
                throw new RespProtocolException($"unexpected reply to {op.Shape}: {reply}");
        }
        return [op.Kind switch
        {
            OpKind.Get or OpKind.PutHash or OpKind.GetDel => Text(reply),
            OpKind.Set when op.Options.Contains("GET", StringComparison.Ordinal) => Text(reply),
            OpKind.Set when reply.Kind == RespKind.SimpleString => "1",
            OpKind.Set when reply is { Kind: RespKind.BulkString, IsNull: true } => "0",
            OpKind.Append or OpKind.Delete or OpKind.Incr or OpKind.Expire or OpKind.Persist or OpKind.Ttl when reply.Kind == RespKind.Integer => Decimal(reply.Integer),
            OpKind.Put when reply.Kind == RespKind.SimpleString => null,
            _ => throw new RespProtocolException($"unexpected reply to {op.Kind}: {reply}"),
        }];
    }
}
