namespace Tandem.Protocol;

/// <summary>
/// A view: which server is primary and which is backup. Addresses are <c>HOST:PORT</c>; an empty string
/// means none. View 0 is the empty view that exists before any server has pinged.
/// </summary>
public readonly record struct View(long Number, string Primary, string Backup)
{
    /// <summary>The view before any server has pinged.</summary>
    public static View Empty { get; } = new(0, "", "");

    /// <summary>
    /// A server address split as Redis reports one (host, port): at the last colon, an IPv6 host without its
    /// brackets (<c>[::1]:7001</c> gives <c>::1</c> and <c>7001</c>); port <c>0</c> when there is none.
    /// </summary>
    public static (string Host, string Port) SplitAddress(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        int colon = address.LastIndexOf(':');
        if (colon < 0) return (address, "0");
        string host = address[..colon];
        if (host.Length >= 2 && host[0] == '[' && host[^1] == ']') host = host[1..^1];
        return (host, address[(colon + 1)..]);
    }

    /// <summary>
    /// Encodes as the reply to <c>VS.PING</c> / <c>VS.VIEW</c>: <c>[:number, $primary, $backup, :acked,
    /// :last-acked]</c>, where <c>acked</c> is 1 once the view's primary has acknowledged it and
    /// <c>last-acked</c> is the number of the newest acknowledged view.
    /// </summary>
    public RespValue ToResp(bool acked, long lastAcked) =>
        RespValue.Array([RespValue.Int(Number), RespValue.Bulk(Primary), RespValue.Bulk(Backup), RespValue.Int(acked ? 1 : 0), RespValue.Int(lastAcked)]);

    /// <summary>Decodes a view reply; throws <see cref="RespProtocolException"/> if it has the wrong shape.</summary>
    public static View FromResp(RespValue v) => FromResp(v, out _);

    /// <summary>Decodes a view reply and its acknowledged flag (false when the reply has no such element).</summary>
    public static View FromResp(RespValue v, out bool acked) => FromResp(v, out acked, out _);

    /// <summary>
    /// Decodes a view reply, its acknowledged flag and the number of the newest acknowledged view (-1 when the
    /// reply does not say; 0 means no view of this history was ever acknowledged).
    /// </summary>
    public static View FromResp(RespValue v, out bool acked, out long lastAcked)
    {
        if (v.Kind != RespKind.Array || v.Items is not { Length: >= 3 and <= 5 } items || items[0].Kind != RespKind.Integer)
            throw new RespProtocolException($"not a view: {v}");
        acked = items.Length >= 4 && items[3].Kind == RespKind.Integer && items[3].Integer == 1;
        lastAcked = items.Length == 5 && items[4].Kind == RespKind.Integer ? items[4].Integer : -1;
        return new View(items[0].Integer, items[1].Text, items[2].Text);
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"view {Number}: primary {(Primary == "" ? "(none)" : Primary)}, backup {(Backup == "" ? "(none)" : Backup)}";
}
