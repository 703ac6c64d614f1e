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

    public int MixedKeys => options.Keys - AppendKeys;

    /// <summary>The newest epoch any client has used so far (-1 before the first operation).</summary>
    public int MaxEpoch
    {
        get
        {
            lock (_lock) return _maxEpoch;
        }
    }

    /// <summary>Every key name of <paramref name="epoch"/>.</summary>
    public IEnumerable<string> KeysOf(int epoch)
    {
        for (int i = 0; i < AppendKeys; i++) yield return AppendKey(i, epoch);
        for (int i = 0; i < MixedKeys; i++) yield return MixedKey(i, epoch);
        for (int i = 0; i < BigKeys; i++) yield return BigKey(i, epoch);
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
    private readonly record struct Op(OpKind Kind, string Key, string Input, string? BigToken = null, int BigLength = 0)
    {
        /// <summary>The value to send.</summary>
        public string Value => BigToken is null ? Input : BigValue.Make(BigToken, BigLength);
    }

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
            string? output = null;
            Outcome outcome = Outcome.Failed;
            try
            {
                output = op.Kind switch
                {
                    OpKind.Get when IsBig(op.Key) => BigValue.Decode(await tandem.GetAsync(op.Key, abort)),
                    OpKind.Get => await tandem.GetAsync(op.Key, abort),
                    OpKind.Put => await PutAsync(tandem, op, abort),
                    OpKind.PutHash => await tandem.PutHashAsync(op.Key, op.Input, abort),
                    OpKind.Append => (await tandem.AppendAsync(op.Key, op.Input, abort)).ToString(CultureInfo.InvariantCulture),
                    _ => await tandem.DeleteAsync(op.Key, abort) ? "1" : "0",
                };
                outcome = Outcome.Ok;
            }
            catch (Exception e) when (!abort.IsCancellationRequested && IsSessionExpired(e))
            {
                // The session (and with it the reply of an earlier attempt) was dropped: the write may have taken
                // effect once; never "not applied".
                outcome = op.Kind == OpKind.Get ? Outcome.Failed : Outcome.Unknown;
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
                outcome = op.Kind == OpKind.Get ? Outcome.Failed : Outcome.Unknown;
            }
            finally
            {
                history.Add(epoch, new HistoryOp(process, op.Kind, op.Key, op.Input, outcome == Outcome.Ok ? output : null, call, history.Now(), outcome));
                Exit(epoch);
            }
            if (outcome == Outcome.Unknown) process = history.NewProcess();
            return expired;
        }
    }

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
                string[] command = op.Kind switch
                {
                    OpKind.Get => [Commands.Get, op.Key],
                    OpKind.Put => [Commands.Set, op.Key, op.Value],
                    OpKind.PutHash => [Commands.PutHash, op.Key, op.Input],
                    OpKind.Append => [Commands.Append, op.Key, op.Input],
                    _ => [Commands.Del, op.Key],
                };
                bool write = op.Kind != OpKind.Get;
                long call = history.Now();
                string? output = null;
                Outcome outcome = write ? Outcome.Unknown : Outcome.Failed;
                bool reconnect = false;
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(abort);
                    timeout.CancelAfter(options.OperationTimeout);
                    RespValue reply = await primary.SendAsync(timeout.Token, command);
                    if (reply.IsError)
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
                        output = op.Kind == OpKind.Get && IsBig(op.Key) && reply.Kind == RespKind.BulkString
                            ? reply.IsNull ? "" : BigValue.Decode(reply.Bytes)
                            : Decode(op.Kind, reply);
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
                    history.Add(epoch, new HistoryOp(process, op.Kind, op.Key, op.Input, output, call, history.Now(), outcome));
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

    private static string? Decode(OpKind kind, RespValue reply) => kind switch
    {
        OpKind.Get when reply.Kind == RespKind.BulkString => reply.IsNull ? "" : Encoding.UTF8.GetString(reply.Bytes!),
        OpKind.PutHash when reply.Kind == RespKind.BulkString => reply.IsNull ? "" : Encoding.UTF8.GetString(reply.Bytes!),
        OpKind.Append or OpKind.Delete when reply.Kind == RespKind.Integer => reply.Integer.ToString(CultureInfo.InvariantCulture),
        OpKind.Put when reply.Kind == RespKind.SimpleString => null,
        _ => throw new RespProtocolException($"unexpected reply to {kind}: {reply}"),
    };
}
