using Microsoft.AspNetCore.Connections;

namespace Tandem.Server;

/// <summary>
/// What clients that find the primary through the Sentinel API need of the server they are sent to (besides
/// <c>ROLE</c>, in ServerHandler.Admin.cs): when the server becomes primary or stops being it, every
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

    // The same test as the one that decides between serving a write and READONLY, and as ROLE and INFO's role:
    // a client that saw "master" gets its writes served, one that got READONLY is told to reconnect.
    private bool IsPrimary() => _replica() is { } r && r.IsServingPrimary;

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
}
