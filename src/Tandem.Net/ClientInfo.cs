using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Tandem.Protocol;

namespace Tandem.Net;

/// <summary>
/// One client connection as <c>CLIENT LIST</c> shows it: its id, the protocol it speaks (2 or 3, set by
/// <c>HELLO</c>), its name, when it connected and its last command. The read loop creates one per connection and
/// sets it on the connection's <c>Features</c>; only that connection's commands change it, other connections
/// only read it (<c>CLIENT LIST</c>, <c>CLIENT KILL</c>).
/// </summary>
public sealed class ClientInfo
{
    private readonly TimeProvider _time;
    private volatile int _protocol = 2;
    private volatile string? _name;
    private volatile string _libName = "";
    private volatile string _libVersion = "";
    private volatile string _lastCommand = "NULL";
    private long _lastCommandAt;
    private volatile bool _closeAfterReply;

    internal ClientInfo(long id, ConnectionContext connection, TimeProvider time)
    {
        Id = id;
        Connection = connection;
        _time = time;
        ConnectedAt = time.GetTimestamp();
        _lastCommandAt = ConnectedAt;
        Address = Format(connection.RemoteEndPoint);
        LocalAddress = Format(connection.LocalEndPoint);
    }

    /// <summary>The connection's id, unique on this node (<c>CLIENT ID</c>), from 1.</summary>
    public long Id { get; }

    /// <summary>The connection itself.</summary>
    public ConnectionContext Connection { get; }

    /// <summary>The client's address, <c>ip:port</c> (<c>[ip]:port</c> for IPv6), as Redis writes <c>addr=</c>.</summary>
    public string Address { get; }

    /// <summary>The node's address this client connected to (<c>laddr=</c>).</summary>
    public string LocalAddress { get; }

    /// <summary>When the connection was accepted, as a <see cref="TimeProvider"/> timestamp.</summary>
    public long ConnectedAt { get; }

    /// <summary>The RESP version replies are written in: 2 (the default) or 3 (after <c>HELLO 3</c>).</summary>
    public int Protocol
    {
        get => _protocol;
        set => _protocol = value is 2 or 3 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "RESP 2 or 3");
    }

    /// <summary>The name set by <c>CLIENT SETNAME</c> or <c>HELLO ... SETNAME</c>; null when none.</summary>
    public string? Name
    {
        get => _name;
        set => _name = string.IsNullOrEmpty(value) ? null : value;
    }

    /// <summary>The client library's name (<c>CLIENT SETINFO LIB-NAME</c>); empty when not said.</summary>
    public string LibraryName { get => _libName; set => _libName = value ?? ""; }

    /// <summary>The client library's version (<c>CLIENT SETINFO LIB-VER</c>); empty when not said.</summary>
    public string LibraryVersion { get => _libVersion; set => _libVersion = value ?? ""; }

    /// <summary><c>CLIENT NO-EVICT ON</c> (flag <c>e</c>): recorded; Tandem evicts no client anyway.</summary>
    public bool NoEvict { get; set; }

    /// <summary><c>CLIENT NO-TOUCH ON</c> (flag <c>T</c>): recorded; Tandem keeps no access times anyway.</summary>
    public bool NoTouch { get; set; }

    /// <summary>Channels this connection is subscribed to (<c>sub=</c>); kept by pub/sub.</summary>
    public int Subscriptions { get; set; }

    /// <summary>Patterns this connection is subscribed to (<c>psub=</c>); kept by pub/sub.</summary>
    public int PatternSubscriptions { get; set; }

    /// <summary>Shard channels this connection is subscribed to (<c>ssub=</c>); kept by pub/sub.</summary>
    public int ShardSubscriptions { get; set; }

    /// <summary>The last command's name in lower case, <c>container|subcommand</c> for a subcommand; <c>NULL</c> before any.</summary>
    public string LastCommand { get => _lastCommand; set => _lastCommand = value ?? "NULL"; }

    /// <summary>When the last command started, as a <see cref="TimeProvider"/> timestamp.</summary>
    public long LastCommandAt => Interlocked.Read(ref _lastCommandAt);

    /// <summary>Set by a command that closes its own connection (<c>CLIENT KILL</c> of itself): closed once the reply is out.</summary>
    public bool CloseAfterReply { get => _closeAfterReply; set => _closeAfterReply = value; }

    /// <summary>Seconds since the connection was accepted (<c>age=</c>).</summary>
    public long AgeSeconds => (long)_time.GetElapsedTime(ConnectedAt).TotalSeconds;

    /// <summary>Seconds since the last command (<c>idle=</c>).</summary>
    public long IdleSeconds => (long)_time.GetElapsedTime(LastCommandAt).TotalSeconds;

    /// <summary>Back to a fresh connection's state (<c>RESET</c>): RESP2, no name, no flags. The id stays.</summary>
    public void Reset()
    {
        Protocol = 2;
        Name = null;
        NoEvict = false;
        NoTouch = false;
    }

    /// <summary>Records that a command named <paramref name="name"/> starts now (at <paramref name="timestamp"/>).</summary>
    internal void Started(string name, long timestamp)
    {
        _lastCommand = name;
        Interlocked.Exchange(ref _lastCommandAt, timestamp);
    }

    /// <summary>The <c>flags=</c> letters: <c>N</c> for none, <c>e</c> no-evict, <c>T</c> no-touch, <c>P</c> subscribed.</summary>
    public string Flags
    {
        get
        {
            string flags = (Subscriptions + PatternSubscriptions + ShardSubscriptions > 0 ? "P" : "") + (NoEvict ? "e" : "") + (NoTouch ? "T" : "");
            return flags.Length == 0 ? "N" : flags;
        }
    }

    /// <summary>
    /// The line <c>CLIENT LIST</c> and <c>CLIENT INFO</c> give for this connection, in Redis 7.2's fields and order,
    /// ending with a newline. Fields about Redis's own buffers (<c>qbuf</c>, <c>rbs</c>, <c>tot-mem</c>...) are 0.
    /// </summary>
    public string Describe()
    {
        var line = new StringBuilder(300);
        line.Append(CultureInfo.InvariantCulture,
            $"id={Id} addr={Address} laddr={LocalAddress} fd={FileDescriptor()} name={Name} age={AgeSeconds} idle={IdleSeconds} ");
        line.Append(CultureInfo.InvariantCulture,
            $"flags={Flags} db=0 sub={Subscriptions} psub={PatternSubscriptions} ssub={ShardSubscriptions} multi=-1 ");
        line.Append("qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r ");
        line.Append(CultureInfo.InvariantCulture,
            $"cmd={LastCommand} user=default redir=-1 resp={Protocol} lib-name={LibraryName} lib-ver={LibraryVersion}\n");
        return line.ToString();
    }

    /// <summary>True for a name Redis accepts for a client or a library: printable ASCII, no spaces.</summary>
    public static bool IsValidName(ReadOnlySpan<byte> name)
    {
        foreach (byte b in name)
            if (b is < (byte)'!' or > (byte)'~') return false;
        return true;
    }

    private long FileDescriptor()
    {
        try
        {
            return Connection.Features.Get<IConnectionSocketFeature>()?.Socket is { } socket ? socket.SafeHandle.DangerousGetHandle().ToInt64() : -1;
        }
        catch (ObjectDisposedException)
        {
            return -1;
        }
    }

    private static string Format(EndPoint? endPoint) => endPoint switch
    {
        IPEndPoint { Address.IsIPv4MappedToIPv6: true } ip => new IPEndPoint(ip.Address.MapToIPv4(), ip.Port).ToString(),
        IPEndPoint ip => ip.ToString(),
        null => "",
        _ => endPoint.ToString() ?? "",
    };

    /// <summary>The kind of client <c>CLIENT LIST TYPE</c> and <c>CLIENT KILL TYPE</c> select: <c>normal</c> or <c>pubsub</c>.</summary>
    internal string Type => Subscriptions + PatternSubscriptions + ShardSubscriptions > 0 ? "pubsub" : "normal";

    /// <summary>The reply to <c>CLIENT INFO</c>: verbatim text in RESP3, a bulk string in RESP2.</summary>
    internal RespValue Info() => RespValue.Verbatim(Describe());
}
