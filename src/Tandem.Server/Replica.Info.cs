using Tandem.Protocol;

namespace Tandem.Server;

/// <summary>What <c>INFO replication</c> and <c>ROLE</c> report about this server, read at one instant.</summary>
/// <param name="View">The newest view this server knows.</param>
/// <param name="ServingPrimary">This server is the view's primary and may serve clients.</param>
/// <param name="ViewAcknowledged">As primary, the coordinator has recorded its ack of the view.</param>
/// <param name="Synced">
/// As primary: the view's backup holds the whole state (its snapshot is installed) and receives the writes. As
/// backup: this server has installed the view's snapshot (it holds the view).
/// </param>
/// <param name="SyncInProgress">As backup: the primary's snapshot is arriving.</param>
/// <param name="LastApplied">Sequence number of the last write applied here.</param>
/// <param name="CommitIndex">As primary: the newest write the backup acknowledged.</param>
/// <param name="Keys">Keys held.</param>
/// <param name="VolatileKeys">Keys held that have a deadline.</param>
public readonly record struct ReplicationStatus(
    View View, bool ServingPrimary, bool ViewAcknowledged, bool Synced, bool SyncInProgress, long LastApplied, long CommitIndex, int Keys,
    int VolatileKeys);

public sealed partial class Replica
{
    /// <summary>This server's role and progress, read under the lock at one instant (for <c>INFO</c> and <c>ROLE</c>).</summary>
    public ReplicationStatus Status()
    {
        lock (_lock)
        {
            bool primary = _view.Primary == Me;
            bool synced = primary
                ? _view.Backup != "" && _replicator?.SyncedView == _view.Number
                : _view.Backup == Me && _initialized && _heldView == _view.Number;
            return new ReplicationStatus(_view, ServingPrimary, ServingPrimary && _viewAcked, synced,
                !primary && _incoming is not null, _state.LastApplied, _commitIndex, _state.Count, _state.VolatileCount);
        }
    }
}

public sealed partial class Replica
{
    /// <summary>
    /// For <c>WAIT</c>: the newest write applied so far (every earlier write of any connection, the caller's
    /// included), or null when this server is not serving as primary.
    /// </summary>
    public long? NewestWrite()
    {
        lock (_lock) return ServingPrimary ? _state.LastApplied : null;
    }

    /// <summary>For <c>WAIT</c>: how many replicas hold every write through <paramref name="seq"/> (0 or 1: the view's synced backup).</summary>
    public int ReplicasHolding(long seq)
    {
        lock (_lock)
        {
            bool synced = _view.Backup != "" && !_soleCopy && _replicator?.SyncedView == _view.Number;
            return ServingPrimary && synced && _commitIndex >= seq ? 1 : 0;
        }
    }
}
