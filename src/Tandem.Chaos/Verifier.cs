using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Tandem.Checker;
using Tandem.Client;

namespace Tandem.Chaos;

/// <summary>
/// Checks the history epoch by epoch, so memory stays bounded however long the run: once an epoch is over and none of
/// its operations is still running, it reads each of the epoch's keys once more (the final read, through
/// <see cref="TandemClient"/>), counts lost and duplicated appends against those values and moves the epoch's
/// operations to a file. <see cref="CheckAsync"/> then runs the linearizability checker on each file, after the
/// campaign, so the checker never takes CPU from the nodes under test.
/// </summary>
internal sealed partial class Verifier(ChaosOptions options, Workload workload, HistoryRecorder history, string coordinator,
    string spillDirectory, Action<string> log)
{
    private readonly List<int> _spilled = [];
    private readonly List<KeyResult> _keys = [];
    private readonly Dictionary<string, List<HistoryOp>> _suspects = new(StringComparer.Ordinal);
    private readonly Stopwatch _checking = new();
    private readonly Stopwatch _sinceHealed = new();
    private bool _givenUp;

    public int Operations { get; private set; }
    public int Ok { get; private set; }
    public int Unknown { get; private set; }
    public int Failed { get; private set; }
    public int Lost { get; private set; }
    public int Duplicated { get; private set; }
    public int Unread { get; private set; }
    /// <summary>Increments of counter keys acknowledged (each by 1, alone or in a transaction).</summary>
    public int CounterAcked { get; private set; }
    /// <summary>Increments of counter keys with an unknown outcome.</summary>
    public int CounterUnknown { get; private set; }
    /// <summary>The sum of the counter keys' final values.</summary>
    public long CounterTotal { get; private set; }
    /// <summary>Keys set with a short PX, and reads of them (GET, PTTL) that were answered.</summary>
    public int ExpiryKeys { get; private set; }
    public int ExpiryReads { get; private set; }
    /// <summary>Reads of a PX key that broke its expiry: seen again after it was seen gone, a deadline longer than set, or present well after it.</summary>
    public int ExpiryViolations { get; private set; }
    /// <summary>Operations recorded, by kind (one per key of a multi-key command).</summary>
    public SortedDictionary<OpKind, int> Kinds { get; } = [];
    public List<string> Problems { get; } = [];

    /// <summary>Every key's checker result so far, folded into one.</summary>
    public CheckResult Result
    {
        get
        {
            Verdict verdict = _keys.Any(k => k.Verdict == Verdict.NotLinearizable) ? Verdict.NotLinearizable
                : _keys.Any(k => k.Verdict == Verdict.Unknown) ? Verdict.Unknown
                : Verdict.Linearizable;
            return new CheckResult(verdict, [.. _keys.OrderBy(k => k.Key, StringComparer.Ordinal)], _checking.Elapsed);
        }
    }

    /// <summary>Keys that failed a check (non-linearizable first), with their operations.</summary>
    public IEnumerable<(string Key, List<HistoryOp> Ops)> Suspects => _suspects.Select(kv => (kv.Key, kv.Value));

    /// <summary>From now on a final read that cannot succeed within a minute counts the key as unread.</summary>
    public void Healed() => _sinceHealed.Start();

    /// <summary>Verifies epoch after epoch until the workload is done (<paramref name="clientsDone"/>) and every epoch is verified.</summary>
    public async Task RunAsync(Task clientsDone, CancellationToken ct)
    {
        await using var reader = new TandemClient(new TandemClientOptions { Coordinator = coordinator, OperationTimeout = TimeSpan.FromSeconds(10) });
        for (int epoch = 0; ; epoch++)
        {
            while (true)
            {
                if (clientsDone.IsCompleted && epoch > workload.MaxEpoch) return;
                // An epoch is verified once its keys can no longer change but for unknown writes, plus a grace period
                // for those (a delayed or retried copy still on its way).
                bool due = clientsDone.IsCompleted || history.Elapsed >= options.Epoch * (epoch + 1) + options.OperationTimeout;
                if (due && workload.IsQuiet(epoch)) break;
                await Task.Delay(100, ct);
            }
            await VerifyAsync(epoch, reader, ct);
        }
    }

    private async Task VerifyAsync(int epoch, TandemClient reader, CancellationToken ct)
    {
        var finals = new Dictionary<string, string>(StringComparer.Ordinal);
        int process = history.NewProcess();
        foreach (string key in workload.KeysOf(epoch))
        {
            while (!_givenUp)
            {
                long call = history.Now();
                try
                {
                    string value = await reader.GetAsync(key, ct);
                    if (Workload.IsBig(key)) value = BigValue.Decode(value);
                    history.Add(epoch, new HistoryOp(process, OpKind.Get, key, "", value, call, history.Now(), Outcome.Ok));
                    finals[key] = value;
                    break;
                }
                catch (Exception e) when (e is TimeoutException or TandemException)
                {
                    // Faults may still be active; keep trying until a minute after everything healed.
                    if (_sinceHealed.IsRunning && _sinceHealed.Elapsed > TimeSpan.FromMinutes(1) || e is TandemException)
                    {
                        Problems.Add($"final read of {key} failed: {e.Message}");
                        _givenUp = true;
                    }
                }
            }
            if (!finals.ContainsKey(key)) Unread++;
        }

        List<HistoryOp> ops = history.Take(epoch);
        Operations += ops.Count;
        foreach (HistoryOp op in ops)
        {
            Kinds[op.Kind] = Kinds.GetValueOrDefault(op.Kind) + 1;
            switch (op.Outcome)
            {
                case Outcome.Ok: Ok++; break;
                case Outcome.Unknown: Unknown++; break;
                default: Failed++; break;
            }
        }
        var suspects = new List<string>();

        // Lost: an acknowledged append to an append-only key whose token is not in the key's final value.
        foreach (HistoryOp op in ops.Where(o => o is { Kind: OpKind.Append, Outcome: Outcome.Ok } && Workload.IsAppendOnly(o.Key)))
        {
            if (!finals.TryGetValue(op.Key, out string? final) || final.Contains(op.Input, StringComparison.Ordinal)) continue;
            Lost++;
            if (Lost <= 10) Problems.Add($"lost: append {op.Input} to {op.Key} was acknowledged (process {op.Process}, call {op.Call}us, return {op.Return}us) but the final value is \"{Shorten(final)}\"");
            suspects.Add(op.Key);
        }

        // Duplicated: a token (each is appended by one request) that occurs twice in a final value.
        foreach ((string key, string final) in finals)
        {
            foreach (IGrouping<string, string> token in TokenPattern().Matches(final).Select(m => m.Value).GroupBy(t => t).Where(g => g.Count() > 1))
            {
                Duplicated++;
                if (Duplicated <= 10) Problems.Add($"duplicated: {token.Key} appears {token.Count()} times in the final value of {key}");
                suspects.Add(key);
            }
        }

        // Counters: every acknowledged increment is in the final value, and nothing beyond the unknown ones.
        foreach (string key in finals.Keys.Where(Workload.IsCounter))
        {
            int acked = ops.Count(o => o is { Kind: OpKind.Incr, Outcome: Outcome.Ok } && o.Key == key);
            int unknown = ops.Count(o => o is { Kind: OpKind.Incr, Outcome: Outcome.Unknown } && o.Key == key);
            long final = finals[key] == "" ? 0 : long.TryParse(finals[key], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) ? v : -1;
            CounterAcked += acked;
            CounterUnknown += unknown;
            CounterTotal += Math.Max(0, final);
            if (final < acked)
            {
                Lost += (int)Math.Min(acked - final, acked);
                Problems.Add($"lost: counter {key} ends at \"{finals[key]}\" after {acked} acknowledged increments ({unknown} unknown)");
                suspects.Add(key);
            }
            else if (final > acked + unknown)
            {
                Duplicated += (int)(final - acked - unknown);
                Problems.Add($"duplicated: counter {key} ends at {final} after {acked} acknowledged and {unknown} unknown increments");
                suspects.Add(key);
            }
        }

        // Expiry, apart from the linearizability search (whose model has no clock).
        List<string> expiry = CheckExpiry(ops, out int keys, out int reads);
        foreach (string problem in expiry)
        {
            ExpiryViolations++;
            if (ExpiryViolations <= 10) Problems.Add(problem);
        }
        ExpiryKeys += keys;
        ExpiryReads += reads;

        foreach (string key in suspects.Distinct())
        {
            if (_suspects.Count < 10) _suspects.TryAdd(key, [.. ops.Where(o => o.Key == key)]);
        }
        // The linearizability check runs after the campaign, so it never competes with the nodes for the CPU: until
        // then the epoch waits on disk (Get outputs of append-only keys stored as prefixes of the final value).
        await HistoryFile.WriteAsync(SpillPath(epoch), ops, finals, ct);
        _spilled.Add(epoch);
        log(string.Create(CultureInfo.InvariantCulture, $"epoch {epoch}: {ops.Count} operations, final reads done"));
    }

    private string SpillPath(int epoch) => Path.Combine(spillDirectory, string.Create(CultureInfo.InvariantCulture, $"epoch-{epoch}.jsonl.gz"));

    /// <summary>Runs the linearizability checker on every epoch, one after the other; keeps the files of failing epochs.</summary>
    public async Task CheckAsync(bool keepFiles, CancellationToken ct)
    {
        foreach (int epoch in _spilled)
        {
            string path = SpillPath(epoch);
            List<HistoryOp> ops = await HistoryFile.ReadAsync(path, ct);
            ops = ForChecker(ops);
            _checking.Start();
            CheckResult check = await Task.Run(() => LinearizabilityChecker.Check(ops, options.CheckBudget, ct), ct);
            _checking.Stop();
            _keys.AddRange(check.Keys);
            var bad = check.Keys.Where(k => k.Verdict != Verdict.Linearizable).ToList();
            foreach (KeyResult key in bad)
            {
                Problems.Add(key.Verdict == Verdict.NotLinearizable
                    ? $"not linearizable: {key.Key} ({key.Operations} operations): {key.Explanation}"
                    : $"undecided: {key.Key} ({key.Operations} operations): {key.Explanation ?? "the checker ran out of budget"}");
                if (!_suspects.ContainsKey(key.Key) && _suspects.Count < 10) _suspects[key.Key] = [.. ops.Where(o => o.Key == key.Key)];
            }
            log(string.Create(CultureInfo.InvariantCulture, $"epoch {epoch}: {check.Summary}"));
            if (!keepFiles && bad.Count == 0 && !ops.Any(o => _suspects.ContainsKey(o.Key))) File.Delete(path);
        }
    }

    /// <summary>Microseconds of slack for "present after its deadline": the servers' wall clock against the recorder's monotonic one.</summary>
    private const long LateSlackMicros = 1_000_000;

    /// <summary>
    /// Checks the keys set once with a short PX (<see cref="Workload.IsExpiring"/>). Each was set by one acknowledged
    /// SET PX before any read of it was called. A read of it is answered the value or nothing (GET), or a time to live
    /// from 0 to PX or -2 (PTTL); once a read that saw it gone has returned, no read called later may see it again (a
    /// key that a client has seen expired never comes back, failovers included); and no read called more than PX plus
    /// a second after the SET returned may see it.
    /// </summary>
    internal static List<string> CheckExpiry(List<HistoryOp> ops, out int keys, out int reads)
    {
        var problems = new List<string>();
        keys = reads = 0;
        foreach (IGrouping<string, HistoryOp> key in ops.Where(o => Workload.IsExpiring(o.Key)).GroupBy(o => o.Key, StringComparer.Ordinal))
        {
            HistoryOp? set = key.FirstOrDefault(o => o is { Kind: OpKind.Put, Outcome: Outcome.Ok });
            if (set is null || !set.Options.StartsWith("PX ", StringComparison.Ordinal)) continue;
            keys++;
            long px = long.Parse(set.Options[3..], CultureInfo.InvariantCulture);
            var seen = new List<(HistoryOp Op, bool Present)>();
            foreach (HistoryOp read in key.Where(o => o.Outcome == Outcome.Ok && o.Kind is OpKind.Get or OpKind.Ttl && o.Output is not null))
            {
                reads++;
                bool present;
                if (read.Kind == OpKind.Get)
                {
                    if (read.Output != "" && read.Output != set.Input)
                        problems.Add($"expiry: {key.Key} was set to \"{set.Input}\" only, but a read returned \"{read.Output}\"");
                    present = read.Output != "";
                }
                else
                {
                    long ttl = long.Parse(read.Output!, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                    if (ttl == -1 || ttl < -2 || ttl > px)
                        problems.Add($"expiry: {key.Key} was set with PX {px}, but PTTL answered {ttl}");
                    present = ttl >= 0;
                }
                if (present && read.Call > set.Return + px * 1000 + LateSlackMicros)
                    problems.Add($"expiry: {key.Key} (PX {px}, set by p{set.Process} returning at {set.Return}us) was still there for a read called at {read.Call}us");
                seen.Add((read, present));
            }
            foreach ((HistoryOp gone, _) in seen.Where(r => !r.Present))
            {
                foreach ((HistoryOp again, _) in seen.Where(r => r.Present && r.Op.Call > gone.Return))
                    problems.Add($"expiry: {key.Key} came back: p{gone.Process} saw it gone [call {gone.Call}us, return {gone.Return}us], then p{again.Process} saw it again [call {again.Call}us]");
            }
        }
        return problems;
    }

    /// <summary>The operations the linearizability checker gets: <see cref="Refine"/>d, without the PX keys (checked by <see cref="CheckExpiry"/>).</summary>
    internal static List<HistoryOp> ForChecker(List<HistoryOp> ops) => Refine(ops.FindAll(o => !Workload.IsExpiring(o.Key)));

    /// <summary>
    /// Uses what the final reads prove about unknown outcomes. On an append-only key values only grow and each token is
    /// appended by one request, so an unknown Append whose token is missing from the longest value read never took
    /// effect before that read, and the final read comes after every operation of the epoch completed: taking effect
    /// later could change no output in the history. Such an Append is marked failed (not applied), which spares the
    /// checker from trying every subset of unknown appends.
    /// </summary>
    internal static List<HistoryOp> Refine(List<HistoryOp> ops)
    {
        var longest = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (HistoryOp op in ops)
        {
            if (op is { Kind: OpKind.Get, Outcome: Outcome.Ok, Output: { } value } && Workload.IsAppendOnly(op.Key)
                && (!longest.TryGetValue(op.Key, out string? seen) || value.Length > seen.Length))
                longest[op.Key] = value;
        }
        return ops.ConvertAll(op =>
            op is { Kind: OpKind.Append, Outcome: Outcome.Unknown } && longest.TryGetValue(op.Key, out string? final)
            && !final.Contains(op.Input, StringComparison.Ordinal)
                ? op with { Outcome = Outcome.Failed }
                : op);
    }

    /// <summary>
    /// Checks again the epoch files a run kept in <paramref name="directory"/> (<c>--out</c>): for example with a larger
    /// budget, or after the checker improved. Returns the combined result and prints one line per epoch that did not pass.
    /// </summary>
    internal static async Task<(CheckResult Result, int Operations, int Epochs)> RecheckAsync(string directory, TimeSpan budget,
        TextWriter output, CancellationToken ct)
    {
        var keys = new List<KeyResult>();
        int operations = 0, epochs = 0;
        var clock = Stopwatch.StartNew();
        foreach (string path in Directory.GetFiles(Path.Combine(directory, "history"), "epoch-*.jsonl.gz").Order(StringComparer.Ordinal))
        {
            List<HistoryOp> all = await HistoryFile.ReadAsync(path, ct);
            List<HistoryOp> ops = ForChecker(all);
            foreach (string problem in CheckExpiry(all, out _, out _)) await output.WriteLineAsync($"{Path.GetFileName(path)}: {problem}");
            CheckResult check = await Task.Run(() => LinearizabilityChecker.Check(ops, budget, ct), ct);
            keys.AddRange(check.Keys);
            operations += ops.Count;
            epochs++;
            foreach (KeyResult key in check.Keys.Where(k => k.Verdict != Verdict.Linearizable))
                await output.WriteLineAsync($"{Path.GetFileName(path)}: {key.Verdict}: {key.Key} ({key.Operations} operations): {key.Explanation}");
        }
        Verdict verdict = keys.Any(k => k.Verdict == Verdict.NotLinearizable) ? Verdict.NotLinearizable
            : keys.Any(k => k.Verdict == Verdict.Unknown) ? Verdict.Unknown
            : Verdict.Linearizable;
        return (new CheckResult(verdict, keys, clock.Elapsed), operations, epochs);
    }

    private static string Shorten(string s) => s.Length <= 200 ? s : $"{s[..100]}...{s[^100..]} ({s.Length} chars)";

    [GeneratedRegex(@"c\d+\.\d+;")]
    private static partial Regex TokenPattern();
}
