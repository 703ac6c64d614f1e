using System.Text;

namespace Tandem.Protocol;

/// <summary>
/// The reply types: the five of RESP2, then those RESP3 adds. A RESP3 type is written in its RESP2 form to a
/// connection that speaks RESP2 (see <see cref="RespWriter.WriteValue(System.Buffers.IBufferWriter{byte}, RespValue, int)"/>).
/// </summary>
public enum RespKind
{
    /// <summary><c>+OK</c></summary>
    SimpleString,
    /// <summary><c>-ERR message</c></summary>
    Error,
    /// <summary><c>:42</c></summary>
    Integer,
    /// <summary><c>$3 foo</c>, or the null bulk string <c>$-1</c> when <see cref="RespValue.IsNull"/>.</summary>
    BulkString,
    /// <summary><c>*2 ...</c>, or the null array <c>*-1</c> when <see cref="RespValue.IsNull"/>.</summary>
    Array,
    /// <summary>RESP3 <c>%2 ...</c>: <see cref="RespValue.Items"/> holds key, value, key, value...; RESP2: a flat array.</summary>
    Map,
    /// <summary>RESP3 <c>~2 ...</c>; RESP2: an array.</summary>
    Set,
    /// <summary>RESP3 <c>&gt;3 ...</c>, an out-of-band message (pub/sub); RESP2: an array.</summary>
    Push,
    /// <summary>RESP3 <c>_</c>; RESP2: the null bulk string <c>$-1</c>.</summary>
    Null,
    /// <summary>RESP3 <c>,1.5</c>; RESP2: a bulk string holding the number.</summary>
    Double,
    /// <summary>RESP3 <c>#t</c> / <c>#f</c>; RESP2: the integer 1 or 0.</summary>
    Boolean,
    /// <summary>RESP3 <c>=15 txt:some text</c>, text with a three-letter format; RESP2: a bulk string of the text.</summary>
    Verbatim,
}

/// <summary>A RESP value (a reply, as a client sees it).</summary>
public sealed class RespValue
{
    private readonly byte[]? _bytes;
    private readonly ReadOnlyMemory<byte> _slice;
    private readonly bool _isSlice;

    private RespValue(RespKind kind, byte[]? bytes, long integer, RespValue[]? items)
    {
        Kind = kind;
        _bytes = bytes;
        Integer = integer;
        Items = items;
    }

    private RespValue(double number)
    {
        Kind = RespKind.Double;
        Double = number;
    }

    private RespValue(ReadOnlyMemory<byte> slice)
    {
        Kind = RespKind.BulkString;
        _slice = slice;
        _isSlice = true;
    }

    /// <summary>Which RESP type this is.</summary>
    public RespKind Kind { get; }

    /// <summary>
    /// Payload of a simple string, error or bulk string; null for a null bulk string. A bulk string made from a
    /// slice (<see cref="Bulk(ReadOnlyMemory{byte})"/>) is copied on each call: writers use <see cref="Payload"/>.
    /// </summary>
    public byte[]? Bytes => _isSlice ? _slice.ToArray() : _bytes;

    /// <summary>The payload without a copy (empty for null).</summary>
    public ReadOnlyMemory<byte> Payload => _isSlice ? _slice : _bytes;

    /// <summary>Value of an integer reply; 1 or 0 for a boolean.</summary>
    public long Integer { get; }

    /// <summary>Value of a double reply.</summary>
    public double Double { get; }

    /// <summary>
    /// Elements of an array, set or push message; keys and values in turn for a map (twice its number of entries);
    /// null for a null array.
    /// </summary>
    public RespValue[]? Items { get; }

    /// <summary>True for the null bulk string, the null array and the RESP3 null.</summary>
    public bool IsNull => Kind == RespKind.Null
        || Kind is RespKind.BulkString or RespKind.Array && _bytes is null && !_isSlice && Items is null;

    /// <summary>True for an error reply.</summary>
    public bool IsError => Kind == RespKind.Error;

    /// <summary>The payload as UTF-8 text (empty for null); integers in decimal.</summary>
    public string Text => Kind switch
    {
        RespKind.Integer => Integer.ToString(System.Globalization.CultureInfo.InvariantCulture),
        RespKind.Boolean => Integer != 0 ? "1" : "0",
        RespKind.Double => RespWriter.FormatDouble(Double),
        _ => IsNull ? "" : Encoding.UTF8.GetString(Payload.Span),
    };

    /// <summary>For an error reply, its first word (for example <c>NOTPRIMARY</c>).</summary>
    public string ErrorCode
    {
        get
        {
            string t = Text;
            int space = t.IndexOf(' ');
            return space < 0 ? t : t[..space];
        }
    }

    /// <summary>A simple string.</summary>
    public static RespValue Simple(string s) => new(RespKind.SimpleString, Encoding.UTF8.GetBytes(s), 0, null);

    /// <summary>An error.</summary>
    public static RespValue Error(string s) => new(RespKind.Error, Encoding.UTF8.GetBytes(s), 0, null);

    /// <summary>An integer.</summary>
    public static RespValue Int(long n) => new(RespKind.Integer, null, n, null);

    /// <summary>A bulk string (null gives the null bulk string).</summary>
    public static RespValue Bulk(byte[]? b) => new(RespKind.BulkString, b, 0, null);

    /// <summary>A bulk string over <paramref name="bytes"/>, not copied: the caller never changes them.</summary>
    public static RespValue Bulk(ReadOnlyMemory<byte> bytes) => new(bytes);

    /// <summary>A bulk string from UTF-8 text.</summary>
    public static RespValue Bulk(string s) => Bulk(Encoding.UTF8.GetBytes(s));

    /// <summary>An array (null gives the null array).</summary>
    public static RespValue Array(RespValue[]? items) => new(RespKind.Array, null, 0, items);

    /// <summary>
    /// A map of <paramref name="keysAndValues"/>.Length / 2 entries (key, value, key, value...): RESP3's <c>%</c>, a flat
    /// array in RESP2, as Redis answers <c>HELLO</c> and <c>CONFIG GET</c>.
    /// </summary>
    public static RespValue Map(RespValue[] keysAndValues)
    {
        ArgumentNullException.ThrowIfNull(keysAndValues);
        if (keysAndValues.Length % 2 != 0) throw new ArgumentException("a map needs a value for every key", nameof(keysAndValues));
        return new(RespKind.Map, null, 0, keysAndValues);
    }

    /// <summary>A set (RESP3's <c>~</c>; an array in RESP2).</summary>
    public static RespValue Set(RespValue[] items) => new(RespKind.Set, null, 0, items ?? throw new ArgumentNullException(nameof(items)));

    /// <summary>An out-of-band push message (RESP3's <c>&gt;</c>; an array in RESP2, as pub/sub messages are).</summary>
    public static RespValue Push(RespValue[] items) => new(RespKind.Push, null, 0, items ?? throw new ArgumentNullException(nameof(items)));

    /// <summary>A double (RESP3's <c>,</c>; a bulk string in RESP2).</summary>
    public static RespValue FromDouble(double d) => new(d);

    /// <summary>A boolean (RESP3's <c>#t</c>/<c>#f</c>; the integer 1 or 0 in RESP2).</summary>
    public static RespValue Boolean(bool b) => b ? True : False;

    /// <summary>
    /// A verbatim string of <paramref name="text"/> in <paramref name="format"/> (three letters, <c>txt</c> or
    /// <c>mkd</c>): RESP3's <c>=</c>, a plain bulk string of the text in RESP2, as Redis answers <c>INFO</c>.
    /// </summary>
    public static RespValue Verbatim(string text, string format = "txt")
    {
        ArgumentNullException.ThrowIfNull(text);
        if (format is not { Length: 3 } || !Ascii.IsValid(format)) throw new ArgumentException("the format is three ASCII letters", nameof(format));
        return new(RespKind.Verbatim, Encoding.UTF8.GetBytes(format + ":" + text), 0, null);
    }

    /// <summary>The null bulk string.</summary>
    public static RespValue NullBulk { get; } = new(RespKind.BulkString, null, 0, null);

    /// <summary>RESP3's null <c>_</c> (the null bulk string <c>$-1</c> in RESP2).</summary>
    public static RespValue Null { get; } = new(RespKind.Null, null, 0, null);

    private static readonly RespValue True = new(RespKind.Boolean, null, 1, null);
    private static readonly RespValue False = new(RespKind.Boolean, null, 0, null);

    /// <summary>For a verbatim string, its three-letter format (<c>txt</c>); empty otherwise.</summary>
    public string VerbatimFormat => Kind == RespKind.Verbatim ? Encoding.ASCII.GetString(Payload.Span[..3]) : "";

    /// <summary>For a verbatim string, the text without its format; otherwise the same as <see cref="Text"/>.</summary>
    public string VerbatimText => Kind == RespKind.Verbatim ? Encoding.UTF8.GetString(Payload.Span[4..]) : Text;

    /// <summary><c>+OK</c></summary>
    public static RespValue Ok { get; } = Simple("OK");

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        RespKind.SimpleString => "+" + Text,
        RespKind.Error => "-" + Text,
        RespKind.Integer => ":" + Integer,
        RespKind.BulkString => IsNull ? "(nil)" : "\"" + Text + "\"",
        RespKind.Null => "(nil)",
        RespKind.Double => "(double) " + Text,
        RespKind.Boolean => Integer != 0 ? "(true)" : "(false)",
        RespKind.Verbatim => "\"" + VerbatimText + "\"",
        RespKind.Map => "{" + string.Join(", ", Items!.Chunk(2).Select(p => p[0] + ": " + p[1])) + "}",
        RespKind.Set => "~[" + string.Join(", ", Items!.Select(i => i.ToString())) + "]",
        RespKind.Push => ">[" + string.Join(", ", Items!.Select(i => i.ToString())) + "]",
        _ => IsNull ? "(nil array)" : "[" + string.Join(", ", Items!.Select(i => i.ToString())) + "]",
    };
}
