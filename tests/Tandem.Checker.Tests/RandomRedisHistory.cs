using System.Globalization;
using Tandem.Checker;

namespace Tandem.Checker.Tests;

/// <summary>
/// Like <see cref="RandomHistory"/>, for the Redis operations: Get, Incr, Set with options, GetDel, Delete, Append,
/// Expire, Persist and Ttl over a reference model written apart from the checker's. Linearizable by construction,
/// unless <c>doubleApplyAt</c> applies that op twice or <c>loseAt</c> reports it without applying it.
/// </summary>
internal static class RandomRedisHistory
{
    internal sealed class Entry
    {
        public string Value = "";
        public bool HasTtl;
    }

    private static readonly string[][] SetOptions =
        [[], ["NX"], ["XX"], ["GET"], ["EX"], ["KEEPTTL"], ["NX", "GET"], ["XX", "GET", "EX"], ["GET", "KEEPTTL"], ["NX", "EX"]];

    public static List<HistoryOp> Generate(int seed, int operations, int keys, int processes, int width,
        double unknownRate = 0, int doubleApplyAt = -1, int loseAt = -1)
    {
        var rng = new Random(seed);
        var store = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var ops = new List<HistoryOp>(operations + 8);
        for (int i = 0; i < operations; i++)
        {
            string key = "key" + rng.Next(keys).ToString(CultureInfo.InvariantCulture);
            long point = 1000 + (long)i * RandomHistory.Spacing;
            long call = point - rng.Next(width + 1);
            long ret = point + rng.Next(width + 1);
            int roll = rng.Next(100);
            OpKind kind = roll switch
            {
                < 25 => OpKind.Get,
                < 50 => OpKind.Incr,
                < 65 => OpKind.Set,
                < 69 => OpKind.GetDel,
                < 73 => OpKind.Delete,
                < 77 => OpKind.Append,
                < 84 => OpKind.Expire,
                < 88 => OpKind.Persist,
                _ => OpKind.Ttl,
            };
            string input = kind switch
            {
                OpKind.Incr => (rng.Next(4) switch { 0 => -1, 1 => 1, 2 => 5, _ => rng.Next(-20, 20) }).ToString(CultureInfo.InvariantCulture),
                OpKind.Set => rng.Next(3) == 0 ? $"s{i}" : rng.Next(100).ToString(CultureInfo.InvariantCulture),
                OpKind.Append => rng.Next(2) == 0 ? "1" : "x",
                _ => "",
            };
            string options = kind switch
            {
                OpKind.Set => string.Join(' ', SetOptions[rng.Next(SetOptions.Length)]),
                OpKind.Expire => rng.Next(3) switch { 0 => "NX", 1 => "XX", _ => "" },
                _ => "",
            };
            // A lost op is answered as if applied, but the store keeps its old state.
            Dictionary<string, Entry> target = i == loseAt
                ? store.ToDictionary(kv => kv.Key, kv => new Entry { Value = kv.Value.Value, HasTtl = kv.Value.HasTtl }, StringComparer.Ordinal)
                : store;
            string? output = Apply(target, key, kind, input, options, rng);
            if (i == doubleApplyAt) Apply(store, key, kind, input, options, rng);
            bool write = kind is not (OpKind.Get or OpKind.Ttl);
            Outcome outcome = write && i != doubleApplyAt && i != loseAt && rng.NextDouble() < unknownRate ? Outcome.Unknown : Outcome.Ok;
            if (outcome == Outcome.Unknown) output = rng.Next(2) == 0 ? null : "garbage";
            ops.Add(new HistoryOp(rng.Next(processes), kind, key, input, output, call, ret, outcome, options));
        }
        return ops;
    }

    /// <summary>The reference model, written apart from the checker's; returns the output.</summary>
    public static string? Apply(Dictionary<string, Entry> store, string key, OpKind kind, string input, string options, Random rng)
    {
        store.TryGetValue(key, out Entry? e);
        string old = e?.Value ?? "";
        bool has(string word) => options.Split(' ').Contains(word);
        switch (kind)
        {
            case OpKind.Get:
                return old;
            case OpKind.Incr:
            {
                long n = 0;
                bool integer = e is null || (old.Length > 0 && old.Length <= 20 && (old == "0" || (old[0] != '0' && !old.StartsWith("-0", StringComparison.Ordinal)))
                    && long.TryParse(old, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out n) && old[0] != '+');
                if (!integer) return "error";
                string next = (n + long.Parse(input, CultureInfo.InvariantCulture)).ToString(CultureInfo.InvariantCulture);
                if (e is null) store[key] = e = new Entry();
                e.Value = next;
                return next;
            }
            case OpKind.Set:
            {
                bool sets = !(has("NX") && e is not null) && !(has("XX") && e is null);
                string? reply = has("GET") ? old : sets ? "1" : "0";
                if (!sets) return reply;
                bool ttl = has("EX") || (has("KEEPTTL") && e is { HasTtl: true });
                store[key] = new Entry { Value = input, HasTtl = ttl };
                return reply;
            }
            case OpKind.GetDel:
                store.Remove(key);
                return old;
            case OpKind.Delete:
                return store.Remove(key) ? "1" : "0";
            case OpKind.Append:
                if (e is null) store[key] = e = new Entry();
                e.Value += input;
                return System.Text.Encoding.UTF8.GetByteCount(e.Value).ToString(CultureInfo.InvariantCulture);
            case OpKind.Expire:
            {
                bool sets = e is not null && !(has("NX") && e.HasTtl) && !(has("XX") && !e.HasTtl);
                if (sets) e!.HasTtl = true;
                return sets ? "1" : "0";
            }
            case OpKind.Persist:
            {
                bool clears = e is { HasTtl: true };
                if (clears) e!.HasTtl = false;
                return clears ? "1" : "0";
            }
            case OpKind.Ttl:
                return e is null ? "-2" : !e.HasTtl ? "-1" : rng.Next(100_000).ToString(CultureInfo.InvariantCulture);
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }
}
