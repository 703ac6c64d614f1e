using Tandem.Protocol;

namespace Tandem.Coordinator;

/// <summary>A server's role in the current view.</summary>
public enum ServerRole
{
    /// <summary>Pinging, but neither primary nor backup.</summary>
    Idle,
    /// <summary>The primary of the current view.</summary>
    Primary,
    /// <summary>The backup of the current view.</summary>
    Backup,
}

/// <summary>What the view service knows about one server.</summary>
/// <param name="Address">The server's <c>HOST:PORT</c>.</param>
/// <param name="Role">Its role in the current view.</param>
/// <param name="Alive">False once it has been silent for the dead time.</param>
/// <param name="SinceLastPing">Time since its last ping.</param>
/// <param name="ViewNumber">The view number its last ping reported.</param>
/// <param name="Restarted">True when it pinged 0 after a view number (it lost its state) since the view began.</param>
/// <param name="HeldView">The newest view whose state it reported holding (-1 when its pings do not say).</param>
public sealed record ServerStatus(string Address, ServerRole Role, bool Alive, TimeSpan SinceLastPing, long ViewNumber, bool Restarted,
    long HeldView = -1);

/// <summary>A snapshot of the view service.</summary>
/// <param name="View">The current view.</param>
/// <param name="Acked">Whether the current view's primary has acknowledged it.</param>
/// <param name="PingInterval">P.</param>
/// <param name="DeadPings">D.</param>
/// <param name="Servers">Every server still remembered, in the order they first pinged.</param>
/// <param name="LastAcked">The newest view whose primary acknowledged it (the current one when acked).</param>
public sealed record ViewServiceStatus(View View, bool Acked, TimeSpan PingInterval, int DeadPings, IReadOnlyList<ServerStatus> Servers,
    View? LastAcked = null)
{
    /// <summary>Every server that may hold the last acknowledged view restarted empty (see <see cref="ViewService.DataLost"/>).</summary>
    public bool DataLost { get; init; }

    /// <summary>The group's log is empty but live servers belong to a later history (see <see cref="ViewService.HistoryLost"/>).</summary>
    public bool HistoryLost { get; init; }

    /// <summary>The primary reported the current view's backup unreachable: the next tick replaces it.</summary>
    public bool BackupReported { get; init; }
}
