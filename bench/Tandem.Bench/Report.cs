using System.Globalization;
using System.Text;

namespace Tandem.Bench;

/// <summary>Every figure measured, by row and system, one per round; reported as the median of its rounds.</summary>
internal sealed class Results
{
    public const string Tandem = "Tandem", Redis = "Redis", Garnet = "Garnet";
    public static readonly string[] Systems = [Tandem, Redis, Garnet];

    private readonly Dictionary<(string Row, string System), List<double>> _values = [];
    private readonly Dictionary<(string Row, string System), string> _failures = [];
    public List<string> Notes { get; } = [];

    public void Add(string row, string system, double value)
    {
        if (!_values.TryGetValue((row, system), out List<double>? list)) _values[(row, system)] = list = [];
        list.Add(value);
    }

    public void Fail(string row, string system, string why, bool note = true)
    {
        _failures[(row, system)] = why;
        if (note) Notes.Add($"{system}, {row}: failed: {why}");
    }

    public double? Median(string row, string system)
    {
        if (!_values.TryGetValue((row, system), out List<double>? list) || list.Count == 0) return null;
        double[] sorted = [.. list.Order()];
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public int Count(string row, string system) => _values.TryGetValue((row, system), out List<double>? l) ? l.Count : 0;
    public bool Failed(string row, string system) => _failures.ContainsKey((row, system));
}

/// <summary>A target on Tandem's figure of a row: on its ratio to Redis, or on its absolute value.</summary>
internal sealed record Target(string Text, bool OnRatio, bool AtLeast, double Bound, bool Strict = false)
{
    /// <summary>Null when met; else how far off: achieved/target for an "at least", actual/limit for an "at most".</summary>
    public (bool Met, double Factor) Check(double value)
    {
        bool met = AtLeast ? value >= Bound : Strict ? value < Bound : value <= Bound;
        return (met, value / Bound);
    }

    public string Describe(double value)
    {
        (bool met, double factor) = Check(value);
        if (met) return "met";
        return AtLeast ? $"**missed: {factor:0.00}x of target**" : $"**missed: {factor:0.00}x the limit**";
    }
}

/// <summary>A row of the table. Tandem's and Redis's figures may come from different measured rows (the SET vs
/// SET+WAIT comparison); a Tandem-only row has no Redis or Garnet figure.</summary>
internal sealed record Row(string Label, string Unit, string TandemRow, string? RedisRow, string? GarnetRow, Target? Target, string Format = "N0");

internal static class Report
{
    public static readonly int[] Depths = [1, 4, 16, 64];

    public static List<Row> Rows(Plan plan)
    {
        var rows = new List<Row>();
        foreach (int depth in new[] { 16, 1, 4, 64 })
        {
            int n = plan.Requests(depth);
            Target? set = depth switch
            {
                16 => new Target(">= 1.0x Redis", true, true, 1.0),
                1 => new Target(">= 0.8x Redis", true, true, 0.8),
                _ => null,
            };
            rows.Add(new Row($"SET -c 50 -P {depth} -n {n}", "ops/s", $"set-p{depth}", $"set-p{depth}", $"set-p{depth}", set));
            rows.Add(new Row($"GET -c 50 -P {depth} -n {n}", "ops/s", $"get-p{depth}", $"get-p{depth}", $"get-p{depth}", set));
        }
        rows.Add(new Row($"SET -c 1 -n {plan.OneClientRequests}, mean", "µs", "c1-mean", "c1-mean", "c1-mean", new Target("<= 1.5x Redis", true, false, 1.5), "N1"));
        rows.Add(new Row($"SET -c 1 -n {plan.OneClientRequests}, p99", "µs", "c1-p99", "c1-p99", "c1-p99", new Target("<= 2.0x Redis", true, false, 2.0), "N1"));
        rows.Add(new Row($"raw RESP loop, 1 conn, SET x{plan.RawIterations}, mean", "µs", "raw-mean", "raw-mean", "raw-mean", null, "N1"));
        rows.Add(new Row($"raw RESP loop, 1 conn, SET x{plan.RawIterations}, p99", "µs", "raw-p99", "raw-p99", "raw-p99", null, "N1"));
        rows.Add(new Row($"Tandem SET vs Redis SET + WAIT 1 0 (raw loop x{plan.RawIterations}), mean", "µs", "raw-mean", "wait-mean", null, new Target("< 1.0x Redis SET+WAIT", true, false, 1.0, Strict: true), "N1"));
        rows.Add(new Row($"Tandem SET vs Redis SET + WAIT 1 0 (raw loop x{plan.RawIterations}), p99", "µs", "raw-p99", "wait-p99", null, null, "N1"));
        rows.Add(new Row($"RSS per key, {plan.MemoryKeys:N0} keys, 16 B key + 100 B value", "B/key", "mem", "mem", "mem", new Target("<= 1.0x Redis", true, false, 1.0), "N1"));
        rows.Add(new Row($"state transfer, {plan.TransferKeys:N0} keys x 256 B: start of fresh server -> synced backup", "MB/s", "xfer-mbs", null, null, new Target(">= 300 MB/s", false, true, 300), "N0"));
        rows.Add(new Row("state transfer: from the view naming the new backup -> synced", "MB/s", "xfer-phase-mbs", null, null, null, "N0"));
        rows.Add(new Row("state transfer: writes served meanwhile (pipelined writer, 16 deep)", "writes/s", "xfer-wps", null, null, null, "N0"));
        rows.Add(new Row("state transfer: longest gap between two replies (from the kill of the backup)", "ms", "xfer-gap", null, null, null, "N0"));
        rows.Add(new Row($"failover, SIGKILL primary -> first write accepted, default pings (median of {plan.FailoverTrials})", "ms", "fail-default", null, null, new Target("< 1000 ms", false, false, 1000, Strict: true), "N0"));
        rows.Add(new Row($"failover, tuned: --ping-interval 25ms --dead-pings 4 (median of {plan.FailoverTrials})", "ms", "fail-tuned", null, null, null, "N0"));
        return rows;
    }

    private static string Cell(double? v, string format, bool failed) =>
        v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : failed ? "failed" : "—";

    private static string Ratio(double? a, double? b) => a is double x && b is double y && y != 0 ? $"{x / y:0.00}x" : "—";

    /// <summary>The one table (Markdown), and the list of targets missed and by how much.</summary>
    public static (string Table, List<string> Missed) Table(Results results, Plan plan)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| workload | unit | Tandem (primary + sync backup) | Redis 7 (primary + async replica) | Garnet (standalone, no replica) | Tandem / Redis | Tandem / Garnet | target | result |");
        sb.AppendLine("|---|---|--:|--:|--:|--:|--:|---|---|");
        var missed = new List<string>();
        foreach (Row row in Rows(plan))
        {
            double? t = results.Median(row.TandemRow, Results.Tandem);
            double? r = row.RedisRow is null ? null : results.Median(row.RedisRow, Results.Redis);
            double? g = row.GarnetRow is null ? null : results.Median(row.GarnetRow, Results.Garnet);
            string result = "";
            if (row.Target is Target target)
            {
                double? value = target.OnRatio ? t is double a && r is double b && b != 0 ? a / b : null : t;
                if (value is double v)
                {
                    result = target.Describe(v);
                    if (!target.Check(v).Met)
                    {
                        string have = target.OnRatio ? $"{v:0.00}x Redis" : $"{v.ToString(row.Format, CultureInfo.InvariantCulture)} {row.Unit}";
                        missed.Add($"{row.Label}: {have}, target {target.Text}: {result.Trim('*').Replace("missed: ", "")}");
                    }
                }
                else
                {
                    result = "not measured";
                    missed.Add($"{row.Label}: not measured (see the notes)");
                }
            }
            sb.AppendLine($"| {row.Label} | {row.Unit} | {Cell(t, row.Format, results.Failed(row.TandemRow, Results.Tandem))} | "
                + $"{(row.RedisRow is null ? "—" : Cell(r, row.Format, results.Failed(row.RedisRow, Results.Redis)))} | "
                + $"{(row.GarnetRow is null ? "n/a" : Cell(g, row.Format, results.Failed(row.GarnetRow, Results.Garnet)))} | "
                + $"{Ratio(t, r)} | {(row.GarnetRow is null ? "—" : Ratio(t, g))} | {row.Target?.Text ?? ""} | {result} |");
        }
        return (sb.ToString(), missed);
    }

    /// <summary>Throughput by pipeline depth, SET (solid, filled markers) and GET (dashed, open markers), for the
    /// three systems; log scale on both axes, so that the -P 1 figures stay readable next to -P 64.</summary>
    public static void Chart(Results results, string path)
    {
        var plot = new ScottPlot.Plot();
        double[] positions = [.. Depths.Select(d => Math.Log2(d))];
        var colors = new Dictionary<string, ScottPlot.Color>
        {
            [Results.Tandem] = ScottPlot.Color.FromHex("#1f77b4"),
            [Results.Redis] = ScottPlot.Color.FromHex("#d62728"),
            [Results.Garnet] = ScottPlot.Color.FromHex("#2ca02c"),
        };
        double low = double.MaxValue, high = 0;
        foreach (string system in Results.Systems)
        {
            foreach (string op in new[] { "set", "get" })
            {
                var xs = new List<double>();
                var ys = new List<double>();
                for (int i = 0; i < Depths.Length; i++)
                {
                    if (results.Median($"{op}-p{Depths[i]}", system) is double v && v > 0)
                    {
                        xs.Add(positions[i]);
                        ys.Add(Math.Log10(v));
                        low = Math.Min(low, v);
                        high = Math.Max(high, v);
                    }
                }
                if (xs.Count == 0) continue;
                var line = plot.Add.Scatter(xs.ToArray(), ys.ToArray());
                line.LegendText = $"{system} {op.ToUpperInvariant()}";
                line.Color = colors[system];
                line.LineWidth = 2;
                line.MarkerSize = 8;
                line.MarkerShape = op == "set" ? ScottPlot.MarkerShape.FilledCircle : ScottPlot.MarkerShape.OpenCircle;
                line.LinePattern = op == "set" ? ScottPlot.LinePattern.Solid : ScottPlot.LinePattern.Dashed;
            }
        }
        if (high == 0) throw new BenchException("no throughput figure to chart");
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(positions, [.. Depths.Select(d => d.ToString(CultureInfo.InvariantCulture))]);
        // Y ticks at 1, 2, 5 x 10^k requests per second, labelled 10k, 20k, 50k, ... 1M.
        var ticks = new List<double>();
        var labels = new List<string>();
        for (double decade = 1e3; decade <= 1e8; decade *= 10)
        {
            foreach (double m in new[] { 1.0, 2.0, 5.0 })
            {
                double v = m * decade;
                if (v < low / 2.5 || v > high * 2.5) continue;
                ticks.Add(Math.Log10(v));
                labels.Add(v >= 1e6 ? $"{v / 1e6:0.#}M" : $"{v / 1e3:0}k");
            }
        }
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks], [.. labels]);
        plot.Axes.SetLimits(-0.2, positions[^1] + 0.2, Math.Log10(low) - 0.15, Math.Log10(high) + 0.25);
        plot.Title("redis-benchmark -c 50 -t set,get: throughput by pipeline depth");
        plot.XLabel("pipeline depth (-P)");
        plot.YLabel("requests per second (log scale)");
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        plot.SavePng(path, 900, 560);
    }

    public const string Begin = "<!-- bench:begin -->", End = "<!-- bench:end -->";

    /// <summary>Replaces the text between the markers, keeping the rest of the file (the hand-written analysis).</summary>
    public static void WriteDocs(string path, string generated)
    {
        string text = File.Exists(path) ? File.ReadAllText(path) : "";
        int b = text.IndexOf(Begin, StringComparison.Ordinal), e = text.IndexOf(End, StringComparison.Ordinal);
        if (b >= 0 && e > b)
        {
            text = text[..(b + Begin.Length)] + "\n" + generated.TrimEnd() + "\n" + text[e..];
        }
        else
        {
            string kept = text.Length > 0 ? "\n## Kept from the previous file (it had no bench markers)\n\n" + text : "";
            text = "# Benchmarks\n\n" + Begin + "\n" + generated.TrimEnd() + "\n" + End + "\n\n" + WhySection + kept;
        }
        File.WriteAllText(path, text);
    }

    public const string WhySection = """
        ## Why, and what would close the gaps

        *Written by hand after a run (bench/run.sh rewrites only the part between the bench markers above and keeps
        this section).* For each target missed, say where the time or the memory goes and what change would close the
        gap.

        """;
}
