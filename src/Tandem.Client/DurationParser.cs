using System.Globalization;

namespace Tandem.Client;

/// <summary>
/// Parses durations written with a unit: <c>500ms</c>, <c>2s</c>, <c>1.5s</c>, <c>1m</c>, <c>1h</c>, or a bare
/// <c>0</c>. Other bare numbers are refused, since it is unclear whether they mean seconds or milliseconds.
/// </summary>
public static class DurationParser
{
    private static readonly (string Unit, double Ms)[] Units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];

    /// <summary>Parses <paramref name="text"/>; false when it is not a non-negative duration with a unit.</summary>
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrEmpty(text)) return false;
        if (text == "0") return true;
        foreach ((string unit, double ms) in Units)
        {
            if (!text.EndsWith(unit, StringComparison.Ordinal)) continue;
            string number = text[..^unit.Length];
            // "ms" also ends with "s": a number part ending in 'm' belongs to the longer unit.
            if (number.Length == 0 || !char.IsAsciiDigit(number[^1])) return false;
            if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n)) return false;
            double total = n * ms;
            if (double.IsNaN(total) || total > TimeSpan.MaxValue.TotalMilliseconds) return false;
            value = TimeSpan.FromMilliseconds(total);
            return true;
        }
        return false;
    }

    /// <summary>Parses <paramref name="text"/>; throws <see cref="FormatException"/> when it is not a duration.</summary>
    public static TimeSpan Parse(string text) =>
        TryParse(text, out TimeSpan value) ? value
            : throw new FormatException($"'{text}' is not a duration; use a number with a unit, such as 500ms, 2s or 1m");

    /// <summary>Formats <paramref name="value"/> in the largest unit that shows it exactly (<c>10s</c>, <c>250ms</c>, <c>2m</c>).</summary>
    public static string Format(TimeSpan value)
    {
        double ms = value.TotalMilliseconds;
        if (ms == 0) return "0";
        for (int i = Units.Length - 1; i > 0; i--)
        {
            double n = ms / Units[i].Ms;
            if (n >= 1 && Math.Abs(n * 1000 - Math.Round(n * 1000)) < 1e-6)
                return n.ToString("0.###", CultureInfo.InvariantCulture) + Units[i].Unit;
        }
        return ms.ToString("0.###", CultureInfo.InvariantCulture) + "ms";
    }
}
