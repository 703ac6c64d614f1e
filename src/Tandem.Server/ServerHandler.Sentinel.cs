using Microsoft.AspNetCore.Connections;
using Tandem.Protocol;

namespace Tandem.Server;

/// <summary>
/// What clients that find the primary through the Sentinel API need of the server they are sent to: <c>ROLE</c>, in
/// Redis's shape, from the server's newest view; and, when the server becomes primary or stops being it, every
/// connection to it is closed, as Redis Sentinel closes the clients of a server whose role it changes
/// (<c>CLIENT KILL TYPE normal</c>), so that clients which cached the old role reconnect and ask again.
/// </summary>
internal sealed partial class ServerHandler
{
    private readonly Lock _connectionsLock = new();
    private readonly HashSet<ConnectionContext> _connections = [];
    private ITimer? _roleWatch;
    private bool _wasPrimary;

    /// <inheritdoc />
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        Track(connection, open: true);
        try
        {
            await base.OnConnectedAsync(connection);
        }
        finally
        {
            Track(connection, open: false);
        }
    }

    /// <summary>Keeps the open connections; the role is watched (every ping interval) only while there are some.</summary>
    private void Track(ConnectionContext connection, bool open)
    {
        lock (_connectionsLock)
        {
            if (open)
            {
                _connections.Add(connection);
                if (_roleWatch is not null) return;
                _wasPrimary = IsPrimary();
                _roleWatch = _options.TimeProvider.CreateTimer(static state => ((ServerHandler)state!).WatchRole(), this,
                    _options.PingInterval, _options.PingInterval);
            }
            else
            {
                _connections.Remove(connection);
                if (_connections.Count > 0) return;
                _roleWatch?.Dispose();
                _roleWatch = null;
            }
        }
    }

    private bool IsPrimary() => _replica() is { } r && r.View.Primary == r.Me;

    private void WatchRole()
    {
        ConnectionContext[] open;
        lock (_connectionsLock)
        {
            bool primary = IsPrimary();
            if (primary == _wasPrimary) return;
            _wasPrimary = primary;
            open = _connections.ToArray();
        }
        foreach (ConnectionContext connection in open)
            connection.Abort(new ConnectionAbortedException("this server's role changed: reconnect and ask again"));
    }

    /// <summary>
    /// Adds <c>ROLE</c>: <c>["master", offset, [[ip, port, offset]]]</c> on the view's primary (its backup as the one
    /// replica), <c>["slave", primary-ip, primary-port, state, offset]</c> elsewhere (<c>connected</c> on the view's
    /// backup, <c>connect</c> on an idle or starting server). Offsets are the server's last applied write.
    /// </summary>
    private void AddSentinelClientCommands()
    {
        Table.Add("ROLE", 1, CommandFlags.Fast, (_, _) => Done(Role(_replica())));
    }

    private static RespValue Role(Replica? r)
    {
        if (r is null) return RespValue.Array([RespValue.Bulk("slave"), RespValue.Bulk(""), RespValue.Int(0), RespValue.Bulk("connect"), RespValue.Int(-1)]);
        View v = r.View;
        long offset = r.LastApplied;
        if (v.Primary == r.Me)
        {
            RespValue[] replicas = v.Backup == ""
                ? []
                : [RespValue.Array([RespValue.Bulk(Host(v.Backup)), RespValue.Bulk(Port(v.Backup).ToString(System.Globalization.CultureInfo.InvariantCulture)), RespValue.Bulk(offset.ToString(System.Globalization.CultureInfo.InvariantCulture))])];
            return RespValue.Array([RespValue.Bulk("master"), RespValue.Int(offset), RespValue.Array(replicas)]);
        }
        return RespValue.Array([RespValue.Bulk("slave"), RespValue.Bulk(Host(v.Primary)), RespValue.Int(Port(v.Primary)),
            RespValue.Bulk(v.Backup == r.Me ? "connected" : "connect"), RespValue.Int(v.Backup == r.Me ? offset : -1)]);
    }

    /// <summary>The host of <c>HOST:PORT</c> (<c>[::1]:7001</c> gives <c>::1</c>); empty for none.</summary>
    private static string Host(string address)
    {
        int colon = address.LastIndexOf(':');
        string host = colon < 0 ? address : address[..colon];
        return host.Length >= 2 && host[0] == '[' && host[^1] == ']' ? host[1..^1] : host;
    }

    /// <summary>The port of <c>HOST:PORT</c>; 0 for none.</summary>
    private static long Port(string address)
    {
        int colon = address.LastIndexOf(':');
        return colon >= 0 && long.TryParse(address.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long port) ? port : 0;
    }
}
