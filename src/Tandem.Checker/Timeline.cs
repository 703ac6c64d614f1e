using System.Globalization;
using System.Net;
using System.Text;

namespace Tandem.Checker;

/// <summary>Renders one key's operations as an HTML page with an inline SVG timeline.</summary>
internal static class Timeline
{
    private const int LeftMargin = 90;
    private const int RightMargin = 40;
    private const int LaneHeight = 22;
    private const int RowGap = 10;
    private const int TopMargin = 30;

    public static string Render(IReadOnlyList<HistoryOp> history, string key)
    {
        var ops = history.Where(o => o is not null && string.Equals(o.Key, key, StringComparison.Ordinal))
            .OrderBy(o => o.Call).ThenBy(o => o.Process).ToList();
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Timeline of key ")
          .Append(Enc(key)).Append("</title>\n<style>\n")
          .Append("body{font-family:sans-serif;font-size:13px} svg text{font-size:11px;font-family:monospace}\n")
          .Append(".ok{fill:#cfe3ff;stroke:#2b5fa8} .unknown{fill:#ffe9b3;stroke:#b07800;stroke-dasharray:4 3}\n")
          .Append(".failed{fill:#eee;stroke:#aaa;opacity:.6} table{border-collapse:collapse} td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}\n")
          .Append("</style></head><body>\n<h2>Key ").Append(Enc(key)).Append("</h2>\n");
        if (ops.Count == 0)
        {
            sb.Append("<p>No operations on this key.</p>\n</body></html>\n");
            return sb.ToString();
        }
        sb.Append(CultureInfo.InvariantCulture,
            $"<p>{ops.Count} operations. Bars run from call to return; dashed open-ended bars are unknown outcomes (may or may not have taken effect); faded bars failed (excluded from the check). Hover a bar for details.</p>\n");

        long t0 = ops.Min(o => o.Call);
        long t1 = Math.Max(ops.Max(o => o.Call), ops.Where(o => o.Outcome != Outcome.Unknown).Select(o => o.Return).DefaultIfEmpty(t0).Max());
        double span = Math.Max(1, t1 - t0);
        int plotWidth = Math.Clamp(ops.Count * 60, 1000, 120_000);
        double X(long t) => LeftMargin + (t - t0) / span * plotWidth;
        double right = LeftMargin + plotWidth + RightMargin - 5;

        // Rows per process; within a row, lanes so that bars of one process never overlap.
        var rows = new List<(int Process, List<(HistoryOp Op, int Lane)> Bars, int Lanes)>();
        foreach (var group in ops.GroupBy(o => o.Process).OrderBy(g => g.Key))
        {
            var laneEnd = new List<long>();
            var bars = new List<(HistoryOp, int)>();
            foreach (HistoryOp op in group)
            {
                long end = op.Outcome == Outcome.Unknown ? long.MaxValue : op.Return;
                int lane = laneEnd.FindIndex(e => e < op.Call);
                if (lane < 0) { lane = laneEnd.Count; laneEnd.Add(end); } else laneEnd[lane] = end;
                bars.Add((op, lane));
            }
            rows.Add((group.Key, bars, laneEnd.Count));
        }

        int height = TopMargin + rows.Sum(r => r.Lanes * LaneHeight + RowGap) + 10;
        int width = LeftMargin + plotWidth + RightMargin;
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{LeftMargin}\" y=\"14\">t = {t0}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{LeftMargin + plotWidth}\" y=\"14\" text-anchor=\"end\">t = {t1}</text>\n");
        int y = TopMargin;
        foreach (var (process, bars, lanes) in rows)
        {
            int rowHeight = lanes * LaneHeight;
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"0\" x2=\"{width}\" y1=\"{y - RowGap / 2}\" y2=\"{y - RowGap / 2}\" stroke=\"#ddd\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"4\" y=\"{y + 14}\">process {process}</text>\n");
            foreach (var (op, lane) in bars)
            {
                double x0 = X(op.Call);
                double x1 = op.Outcome == Outcome.Unknown ? right : Math.Max(X(op.Return), x0 + 2);
                int by = y + lane * LaneHeight + 2;
                string cls = op.Outcome switch { Outcome.Ok => "ok", Outcome.Unknown => "unknown", _ => "failed" };
                string label = ShortLabel(op);
                sb.Append(CultureInfo.InvariantCulture, $"<g><title>{Enc(Details(op))}</title>");
                if (op.Outcome == Outcome.Unknown)
                {
                    // Open-ended: no right edge.
                    sb.Append(CultureInfo.InvariantCulture,
                        $"<path class=\"{cls}\" d=\"M{x1:0.#},{by} H{x0:0.#} V{by + LaneHeight - 4} H{x1:0.#}\"/>");
                }
                else
                {
                    sb.Append(CultureInfo.InvariantCulture,
                        $"<rect class=\"{cls}\" x=\"{x0:0.#}\" y=\"{by}\" width=\"{x1 - x0:0.#}\" height=\"{LaneHeight - 4}\" rx=\"3\"/>");
                }
                sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 + 3:0.#}\" y=\"{by + 13}\">{Enc(label)}</text></g>\n");
            }
            y += rowHeight + RowGap;
        }
        sb.Append("</svg>\n");

        sb.Append("<h3>Operations by call time</h3>\n<table><tr><th>process</th><th>operation</th><th>call</th><th>return</th><th>outcome</th></tr>\n");
        foreach (HistoryOp op in ops)
        {
            string ret = op.Outcome == Outcome.Unknown ? "?" : op.Return.ToString(CultureInfo.InvariantCulture);
            sb.Append(CultureInfo.InvariantCulture,
                $"<tr><td>{op.Process}</td><td>{Enc(KeySearch.Label(op))}</td><td>{op.Call}</td><td>{ret}</td><td>{op.Outcome}</td></tr>\n");
        }
        sb.Append("</table>\n</body></html>\n");
        return sb.ToString();
    }

    private static string ShortLabel(HistoryOp op)
    {
        static string Cut(string? s) => s is null ? "?" : s.Length > 20 ? s[..20] + "…" : s;
        string text = op.Kind switch
        {
            OpKind.Get => $"Get → {Cut(op.Output)}",
            OpKind.Put => $"Put {Cut(op.Input)}",
            OpKind.PutHash => $"PutHash {Cut(op.Input)} → {Cut(op.Output)}",
            OpKind.Append => $"Append {Cut(op.Input)} → {Cut(op.Output)}",
            OpKind.Delete => $"Delete → {Cut(op.Output)}",
            OpKind.Incr => $"Incr {Cut(op.Input)} → {Cut(op.Output)}",
            OpKind.Set => $"Set {Cut(op.Input)} {op.Options} → {Cut(op.Output)}",
            OpKind.GetDel => $"GetDel → {Cut(op.Output)}",
            OpKind.Expire => $"Expire {op.Options} → {Cut(op.Output)}",
            OpKind.Persist => $"Persist → {Cut(op.Output)}",
            OpKind.Ttl => $"Ttl → {Cut(op.Output)}",
            _ => op.Kind.ToString(),
        };
        return op.Outcome switch
        {
            Outcome.Unknown => text + " (unknown)",
            Outcome.Failed => text + " (failed)",
            _ => text,
        };
    }

    private static string Details(HistoryOp op)
    {
        string ret = op.Outcome == Outcome.Unknown ? "unknown" : op.Return.ToString(CultureInfo.InvariantCulture);
        return $"process {op.Process}: {op.Kind} input={KeyState.Quote(op.Input ?? "")} output={(op.Output is null ? "null" : KeyState.Quote(op.Output))} call={op.Call} return={ret} outcome={op.Outcome}";
    }

    private static string Enc(string s) => WebUtility.HtmlEncode(s);
}
