using System.Globalization;
using System.Text;

namespace Tandem.Storage;

/// <summary>How Redis reads numbers and patterns out of arguments and values, so that Tandem accepts and refuses the same inputs.</summary>
public static class RedisText
{
    /// <summary>
    /// A signed 64-bit decimal as Redis's strict parser reads it: an optional minus, then digits with no leading
    /// zero (but "0" itself), no plus, no spaces, at most 20 characters, no overflow.
    /// </summary>
    public static bool TryParseLong(ReadOnlySpan<byte> s, out long value)
    {
        value = 0;
        if (s.Length is 0 or > 20) return false;
        if (s.Length == 1 && s[0] == '0') return true;
        int at = 0;
        bool negative = s[0] == '-';
        if (negative && ++at == s.Length) return false;
        if (s[at] is < (byte)'1' or > (byte)'9') return false;
        ulong v = 0;
        for (; at < s.Length; at++)
        {
            uint d = (uint)(s[at] - '0');
            if (d > 9) return false;
            if (v > (ulong.MaxValue - d) / 10) return false;
            v = v * 10 + d;
        }
        if (negative)
        {
            if (v > (ulong)long.MaxValue + 1) return false;
            value = (long)(0 - v);
        }
        else
        {
            if (v > long.MaxValue) return false;
            value = (long)v;
        }
        return true;
    }

    /// <summary>An unsigned 64-bit decimal (a SCAN cursor): digits only.</summary>
    public static bool TryParseCursor(ReadOnlySpan<byte> s, out ulong value)
    {
        value = 0;
        if (s.Length is 0 or > 20) return false;
        foreach (byte b in s)
        {
            uint d = (uint)(b - '0');
            if (d > 9 || value > (ulong.MaxValue - d) / 10) return false;
            value = value * 10 + d;
        }
        return true;
    }

    /// <summary>
    /// A floating-point argument or value as Redis reads it for INCRBYFLOAT: decimal or exponent notation, no
    /// spaces, finite.
    /// </summary>
    public static bool TryParseFloat(ReadOnlySpan<byte> s, out double value)
    {
        value = 0;
        if (s.Length is 0 or > 5000 || IsSpace(s[0]) || IsSpace(s[^1])) return false;
        string text = Encoding.ASCII.GetString(s);
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value)) return false;
        return !double.IsNaN(value) && !double.IsInfinity(value);
    }

    /// <summary>
    /// The sum of INCRBYFLOAT, written as Redis writes it: at most 17 digits after the point, trailing zeros
    /// removed. Decimal arithmetic where the numbers fit, so that 0.1 + 0.2 is 0.3 as Redis's long double gives.
    /// </summary>
    public static string? AddFloats(ReadOnlySpan<byte> current, ReadOnlySpan<byte> increment)
    {
        if (!TryParseFloat(current, out double a) || !TryParseFloat(increment, out double b)) return null;
        if (TryDecimal(current, out decimal da) && TryDecimal(increment, out decimal db))
        {
            try
            {
                decimal sum = Math.Round(da + db, 17, MidpointRounding.ToEven);
                return sum == 0 ? "0" : sum.ToString("0.#################", CultureInfo.InvariantCulture);
            }
            catch (OverflowException)
            {
                // falls through to double
            }
        }
        double total = a + b;
        if (double.IsNaN(total) || double.IsInfinity(total)) return "";
        return Math.Abs(total) < 1e17 ? total.ToString("0.#################", CultureInfo.InvariantCulture) : total.ToString("F0", CultureInfo.InvariantCulture);
    }

    private static bool TryDecimal(ReadOnlySpan<byte> s, out decimal value)
    {
        value = 0;
        string text = Encoding.ASCII.GetString(s);
        return decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
    }

    private static bool IsSpace(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r' or (byte)'\v' or (byte)'\f';

    /// <summary>The encoding <c>OBJECT ENCODING</c> reports for a string value.</summary>
    public static string EncodingOf(ReadOnlySpan<byte> value) =>
        value.Length <= 20 && TryParseLong(value, out _) ? "int" : value.Length <= 44 ? "embstr" : "raw";
}
