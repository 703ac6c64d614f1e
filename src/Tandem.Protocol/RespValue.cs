using System.Text;

namespace Tandem.Protocol;

/// <summary>The five RESP2 reply types.</summary>
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
}

/// <summary>A parsed RESP2 value (a reply, as a client sees it).</summary>
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

    /// <summary>Value of an integer reply.</summary>
    public long Integer { get; }

    /// <summary>Elements of an array; null for a null array.</summary>
    public RespValue[]? Items { get; }

    /// <summary>True for the null bulk string and the null array.</summary>
    public bool IsNull => Kind is RespKind.BulkString or RespKind.Array && _bytes is null && !_isSlice && Items is null;

    /// <summary>True for an error reply.</summary>
    public bool IsError => Kind == RespKind.Error;

    /// <summary>The payload as UTF-8 text (empty for null); integers in decimal.</summary>
    public string Text => Kind == RespKind.Integer ? Integer.ToString(System.Globalization.CultureInfo.InvariantCulture)
        : IsNull ? "" : Encoding.UTF8.GetString(Payload.Span);

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

    /// <summary>The null bulk string.</summary>
    public static RespValue NullBulk { get; } = new(RespKind.BulkString, null, 0, null);

    /// <summary><c>+OK</c></summary>
    public static RespValue Ok { get; } = Simple("OK");

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        RespKind.SimpleString => "+" + Text,
        RespKind.Error => "-" + Text,
        RespKind.Integer => ":" + Integer,
        RespKind.BulkString => IsNull ? "(nil)" : "\"" + Text + "\"",
        _ => IsNull ? "(nil array)" : "[" + string.Join(", ", Items!.Select(i => i.ToString())) + "]",
    };
}
