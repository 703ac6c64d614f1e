using System.Globalization;
using System.Text;
using Tandem.Checker;

namespace Tandem.Checker.Tests;

/// <summary>
/// A seeded generator of histories that are linearizable by construction: a sequential run of random operations
/// on an in-memory model, each operation given a linearization point 10 time units after the previous one and an
/// interval [point - r1, point + r2] around it. Some applied writes are reported as Unknown; some Unknown writes
/// ("ghosts") and Failed writes that never took effect are added.
/// </summary>
internal sealed class RandomHistory
{
    public const int Spacing = 10;

    public required List<HistoryOp> Ops { get; init; }
    /// <summary>For each op in <see cref="Ops"/>: its position in the sequential run, or -1 if never applied.</summary>
    public required List<int> Position { get; init; }
    public required int Width { get; init; }

    public static RandomHistory Generate(int seed, int operations, int keys, int processes, int width,
        double unknownRate = 0, double ghostRate = 0, double failedRate = 0)
    {
        var rng = new Random(seed);
        var store = new Dictionary<string, string>(StringComparer.Ordinal); // present keys only
        var ops = new List<HistoryOp>(operations + 16);
        var position = new List<int>(operations + 16);
        for (int i = 0; i < operations; i++)
        {
            string key = "key" + rng.Next(keys).ToString(CultureInfo.InvariantCulture);
            long point = 1000 + (long)i * Spacing;
            long call = point - rng.Next(width + 1);
            long ret = point + rng.Next(width + 1);
            int process = rng.Next(processes);
            int roll = rng.Next(100);
            OpKind kind = roll < 45 ? OpKind.Get : roll < 65 ? OpKind.Put : roll < 77 ? OpKind.PutHash : roll < 94 ? OpKind.Append : OpKind.Delete;
            string input = kind switch
            {
                OpKind.Put => $"put#{i}",
                OpKind.PutHash => $"h{i}",
                OpKind.Append => $"+{i}",
                _ => "",
            };
            string? output = Apply(store, key, kind, input);
            Outcome outcome = kind != OpKind.Get && rng.NextDouble() < unknownRate ? Outcome.Unknown : Outcome.Ok;
            if (outcome == Outcome.Unknown)
            {
                output = rng.Next(2) == 0 ? null : "garbage";
                ret = rng.Next(2) == 0 ? ret : -1;
            }
            ops.Add(new HistoryOp(process, kind, key, input, output, call, ret, outcome));
            position.Add(i);

            if (rng.NextDouble() < ghostRate)
            {
                // Sent, never applied, outcome unknown.
                OpKind g = rng.Next(3) switch { 0 => OpKind.Put, 1 => OpKind.Append, _ => OpKind.Delete };
                ops.Add(new HistoryOp(rng.Next(processes), g, key, $"ghost#{i}", "garbage", point - rng.Next(width + 1), 0, Outcome.Unknown));
                position.Add(-1);
            }
            if (rng.NextDouble() < failedRate)
            {
                OpKind f = rng.Next(2) == 0 ? OpKind.Put : OpKind.Append;
                ops.Add(new HistoryOp(rng.Next(processes), f, key, $"failed#{i}", "999", point - rng.Next(width + 1), point + rng.Next(width + 1), Outcome.Failed));
                position.Add(-1);
            }
        }
        return new RandomHistory { Ops = ops, Position = position, Width = width };
    }

    /// <summary>The reference model, written independently of the checker's.</summary>
    public static string? Apply(Dictionary<string, string> store, string key, OpKind kind, string input)
    {
        string old = store.GetValueOrDefault(key, "");
        switch (kind)
        {
            case OpKind.Get:
                return old;
            case OpKind.Put:
                store[key] = input;
                return null;
            case OpKind.PutHash:
                store[key] = Fnv1a32(Encoding.UTF8.GetBytes(old + input)).ToString(CultureInfo.InvariantCulture);
                return old;
            case OpKind.Append:
                store[key] = old + input;
                return Encoding.UTF8.GetByteCount(store[key]).ToString(CultureInfo.InvariantCulture);
            case OpKind.Delete:
                return store.Remove(key) ? "1" : "0";
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    public static uint Fnv1a32(byte[] data)
    {
        uint hash = 2166136261;
        foreach (byte b in data)
        {
            hash ^= b;
            hash *= 16777619;
        }
        return hash;
    }

    /// <summary>A copy with op <paramref name="index"/> replaced.</summary>
    public List<HistoryOp> With(int index, HistoryOp replacement)
    {
        var copy = new List<HistoryOp>(Ops) { [index] = replacement };
        return copy;
    }
}
