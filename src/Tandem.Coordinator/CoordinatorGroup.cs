using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Text;
using DotNext.Buffers;
using DotNext.IO;
using DotNext.Net.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.Membership;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Microsoft.Extensions.Logging;

namespace Tandem.Coordinator;

/// <summary>A member of the coordinator group as another sees it.</summary>
/// <param name="Address">Its RESP address (what servers and clients use), or its Raft address when unknown.</param>
/// <param name="RaftEndPoint">Its Raft address.</param>
/// <param name="Role"><c>leader</c>, <c>follower</c> or <c>unreachable</c>.</param>
/// <param name="AddressKnown">False while a member added later has not said its RESP address yet.</param>
public sealed record GroupMember(string Address, EndPoint RaftEndPoint, string Role, bool AddressKnown = true);

/// <summary>
/// This process's member of the coordinator group: a Raft node (DotNext.Net.Cluster) with a write-ahead log
/// under the data directory, whose state machine is the durable part of the view service
/// (<see cref="ViewRecord"/>). It is the engine's <see cref="IViewLog"/>: the leader's proposals are committed
/// here, every member applies them, and the engine leads exactly while this member leads and has applied the
/// whole log (a marker entry of its own term is committed first).
/// </summary>
public sealed class CoordinatorGroup : IViewLog, IAsyncDisposable
{
    private const string AddressKey = "tandem-address";
    private static readonly byte[] Marker = [0];

    private readonly ViewStateMachine _machine;
    private readonly WriteAheadLog _wal;
    private readonly RaftCluster _cluster;
    private readonly ViewService _engine;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private volatile bool _leading;
    private CancellationToken _term = new(canceled: true);
    private Task _leadLoop = Task.CompletedTask;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<EndPoint, string> _addresses = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<EndPoint, byte> _learning = new();

    private CoordinatorGroup(ViewService engine, ViewStateMachine machine, WriteAheadLog wal, RaftCluster cluster, ILogger log)
    {
        _engine = engine;
        _machine = machine;
        _wal = wal;
        _cluster = cluster;
        _log = log;
    }

    /// <summary>Whether this member leads the group and its engine decides.</summary>
    public bool IsLeader => _leading;

    /// <summary>
    /// Whether this member leads and holds the leader's lease: a majority acknowledged it within the lease, which
    /// ends before any other member can be elected.
    /// </summary>
    public bool HoldsLease => _leading && _cluster.TryGetLeaseToken(out CancellationToken lease) && !lease.IsCancellationRequested;

    /// <summary>This member's current Raft term.</summary>
    public long Term => _cluster.Term;

    /// <summary>The RESP address of the leader this member knows of, or null during an election (or while unknown).</summary>
    public string? LeaderAddress => _cluster.Leader is { } leader && AddressOf(leader) is { } address && address != leader.EndPoint.ToString() ? address : null;

    /// <summary>Every member of the group's configuration, with its role as this member sees it.</summary>
    public IReadOnlyList<GroupMember> Members =>
        _cluster.Members.Select(m =>
        {
            string address = AddressOf(m);
            bool known = address != m.EndPoint.ToString();
            if (!known && m.IsRemote) _ = LearnAddressAsync(m);
            return new GroupMember(address, m.EndPoint,
                m.IsLeader ? "leader" : m.Status == ClusterMemberStatus.Unavailable ? "unreachable" : "follower", known);
        }).ToList();

    /// <summary>
    /// Opens the log under <see cref="CoordinatorGroupOptions.DataDirectory"/> (restoring the view state it holds),
    /// joins the group and starts electing. The returned engine is in the state of the log; it decides once this
    /// member leads.
    /// </summary>
    public static async Task<(CoordinatorGroup Group, ViewService Engine)> StartAsync(CoordinatorGroupOptions options,
        ViewServiceOptions viewOptions, ILoggerFactory? loggerFactory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var deferred = new DeferredLog();
        var engine = new ViewService(viewOptions, deferred);
        Directory.CreateDirectory(options.DataDirectory);
        var machine = new ViewStateMachine(Directory.CreateDirectory(Path.Combine(options.DataDirectory, "snapshots")), engine);
        await machine.RestoreAsync(cancellationToken); // before the log is opened, or the whole log is replayed
        var wal = new WriteAheadLog(new WriteAheadLog.Options { Location = Path.Combine(options.DataDirectory, "log") }, machine);

        var members = new MemberList();
        InMemoryClusterConfigurationStorage<EndPoint>.Builder initial = members.CreateInitialConfigurationBuilder();
        foreach (CoordinatorPeer peer in options.Peers) initial.Add(peer.RaftEndPoint);
        IPEndPoint self = options.RaftAdvertised ?? options.RaftListen;
        if (!options.Peers.Any(p => p.RaftEndPoint.Equals(self))) initial.Add(self);
        initial.Build();
        var config = new RaftCluster.TcpConfiguration(options.RaftListen)
        {
            PublicEndPoint = self,
            LowerElectionTimeout = (int)options.ElectionTimeout.TotalMilliseconds,
            UpperElectionTimeout = (int)(options.ElectionTimeout.TotalMilliseconds * 2),
            RequestTimeout = options.RequestTimeout ?? options.ElectionTimeout,
            ColdStart = false,
            IsLeaderLeaseEnabled = true,
            ConfigurationStorage = members,
        };
        config.Metadata[AddressKey] = options.Address;
        var cluster = new RaftCluster(config) { AuditTrail = wal };
        ILogger log = (loggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger("Tandem.Coordinator.Group");
        var group = new CoordinatorGroup(engine, machine, wal, cluster, log);
        foreach (CoordinatorPeer peer in options.Peers) group._addresses[peer.RaftEndPoint] = peer.Address;
        group._addresses[self] = options.Address;
        deferred.Target = group;
        cluster.LeaderChanged += group.OnLeaderChanged;
        try
        {
            await cluster.StartAsync(cancellationToken);
        }
        catch
        {
            cluster.Dispose();
            await wal.DisposeAsync();
            await machine.DisposeAsync();
            throw;
        }
        group._leadLoop = group.LeadLoopAsync();
        return (group, engine);
    }

    /// <inheritdoc />
    public async Task<bool> CommitAsync(ViewRecord record)
    {
        CancellationToken term = _term; // the term this engine leads in; a record of an older one is refused
        if (!_leading || term.IsCancellationRequested) return false;
        try
        {
            await _cluster.ReplicateAsync(record.ToBytes(), null, term);
            return true;
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException or ObjectDisposedException)
        {
            return false; // not the leader any more (NotLeaderException is an InvalidOperationException)
        }
    }

    /// <summary>
    /// Adds a member (leader only): it is caught up, the new configuration is committed, and a replication round
    /// makes every reachable member use it.
    /// </summary>
    public async Task<bool> AddMemberAsync(EndPoint raftEndPoint, CancellationToken cancellationToken)
    {
        bool added = await _cluster.AddMemberAsync(raftEndPoint, cancellationToken);
        await _cluster.ForceReplicationAsync(cancellationToken);
        return added;
    }

    /// <summary>Removes a member (leader only): a configuration without it is committed and sent to every member.</summary>
    public async Task<bool> RemoveMemberAsync(EndPoint raftEndPoint, CancellationToken cancellationToken)
    {
        bool removed = await _cluster.RemoveMemberAsync(raftEndPoint, cancellationToken);
        await _cluster.ForceReplicationAsync(cancellationToken);
        return removed;
    }

    /// <summary>This member's Raft address, as the others know it.</summary>
    public EndPoint RaftAddress => _cluster.LocalMemberAddress;

    /// <summary>The Raft addresses of the members in this member's configuration.</summary>
    public IReadOnlyList<EndPoint> Configuration => _cluster.Members.Select(m => m.EndPoint).ToList();

    private void OnLeaderChanged(ICluster sender, IClusterMember? leader)
    {
        if (leader is { IsRemote: true } && !_addresses.ContainsKey(leader.EndPoint)) _ = LearnAddressAsync(leader);
    }

    /// <summary>
    /// For each term this member leads: commit a marker of the term (so every earlier entry is applied here), then
    /// let the engine decide until the leadership ends.
    /// </summary>
    private async Task LeadLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                CancellationToken term = await _cluster.WaitForLeadershipAsync(_stop.Token);
                try
                {
                    await _cluster.ReplicateAsync(Marker, null, term);
                }
                catch (Exception e) when (e is InvalidOperationException or OperationCanceledException && !_stop.IsCancellationRequested)
                {
                    continue; // lost the leadership before the marker committed; the next leader does the same
                }
                if (term.IsCancellationRequested) continue;
                _term = term;
                _leading = true;
                _engine.StartLeading();
                _log.LogInformation("leader of the coordinator group (term {Term}); {View}", _cluster.Term, _engine.CurrentView);
                await Task.Delay(Timeout.Infinite, term).ContinueWith(static _ => { }, TaskScheduler.Default);
                _leading = false;
                _engine.StopLeading();
                _log.LogInformation("no longer the leader of the coordinator group");
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException && _stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _log.LogWarning("coordinator group: {Error}", e.Message);
                await Task.Delay(50).ConfigureAwait(false);
            }
        }
    }

    /// <summary>A member not given in the peers (added later) says its RESP address in its metadata.</summary>
    private async Task LearnAddressAsync(IClusterMember member)
    {
        if (!_learning.TryAdd(member.EndPoint, 0)) return; // one question in flight per member
        try
        {
            IReadOnlyDictionary<string, string> metadata = await member.GetMetadataAsync(true, _stop.Token);
            if (metadata.TryGetValue(AddressKey, out string? address)) _addresses[member.EndPoint] = address;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _log.LogDebug("could not learn the address of member {Member}: {Error}", member.EndPoint, e.Message);
        }
        finally
        {
            _learning.TryRemove(member.EndPoint, out _);
        }
    }

    private string AddressOf(IClusterMember member) =>
        _addresses.TryGetValue(member.EndPoint, out string? known) ? known
        : member is RaftClusterMember raft && raft.TryGetMetadata() is { } metadata && metadata.TryGetValue(AddressKey, out string? address) ? address
        : member.EndPoint.ToString() ?? "";

    /// <summary>Leaves the group and closes the log.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _leading = false;
        _engine.StopLeading();
        try { await _cluster.StopAsync(CancellationToken.None); }
        catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException) { }
        await _leadLoop;
        _cluster.Dispose();
        await _wal.DisposeAsync();
        await _machine.DisposeAsync();
        _stop.Dispose();
    }

    /// <summary>Lets the engine be built before the group that commits its records.</summary>
    private sealed class DeferredLog : IViewLog
    {
        public CoordinatorGroup? Target { get; set; }

        public Task<bool> CommitAsync(ViewRecord record) => Target?.CommitAsync(record) ?? Task.FromResult(false);
    }

    /// <summary>The group's state machine: the latest <see cref="ViewRecord"/>, snapshotted to disk now and then.</summary>
    private sealed class ViewStateMachine(DirectoryInfo snapshots, ViewService engine) : SimpleStateMachine(snapshots)
    {
        private const int SnapshotEvery = 64;
        private ViewRecord _current = ViewRecord.Initial;
        private int _sinceSnapshot;

        protected override ValueTask<bool> ApplyAsync(LogEntry entry, CancellationToken token)
        {
            if (entry.IsConfiguration || entry.Length is null or 0) return ValueTask.FromResult(false);
            if (!entry.TryGetPayload(out ReadOnlySequence<byte> payload))
                payload = new ReadOnlySequence<byte>(entry.GetPayload().SelectMany(m => m.ToArray()).ToArray());
            if (payload.Length == 1 && payload.FirstSpan[0] == Marker[0]) return ValueTask.FromResult(false);
            if (!ViewRecord.TryParse(payload, out ViewRecord record))
            {
                // Throwing would stop the group's apply loop for good; every member skips the same entry.
                System.Diagnostics.Trace.TraceError($"coordinator group: log entry {entry.Index} is not a view record; skipped");
                return ValueTask.FromResult(false);
            }
            engine.Apply(record);
            _current = engine.Record;
            return ValueTask.FromResult(++_sinceSnapshot % SnapshotEvery == 0);
        }

        protected override async ValueTask PersistAsync(IAsyncBinaryWriter writer, CancellationToken token)
        {
            byte[] bytes = _current.ToBytes();
            await writer.WriteAsync(bytes, null, token);
        }

        protected override async ValueTask RestoreAsync(FileInfo snapshotFile, CancellationToken token)
        {
            byte[] bytes = await File.ReadAllBytesAsync(snapshotFile.FullName, token);
            if (!ViewRecord.TryParse(new ReadOnlySequence<byte>(bytes), out ViewRecord record))
                throw new InvalidDataException($"{snapshotFile.FullName} is not a view snapshot");
            engine.Apply(record with { BaseNumber = -1 });
            _current = engine.Record;
        }
    }

    /// <summary>The group's initial member list, from <c>--peers</c>: Raft addresses as <c>HOST:PORT</c> text.</summary>
    private sealed class MemberList : InMemoryClusterConfigurationStorage<EndPoint>
    {
        protected override void Encode(EndPoint address, ref BufferWriterSlim<byte> writer)
        {
            byte[] text = Encoding.UTF8.GetBytes(address.ToString() ?? "");
            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(length, text.Length);
            writer.Write(length);
            writer.Write(text);
        }

        protected override EndPoint Decode(ref SequenceReader reader)
        {
            Span<byte> length = stackalloc byte[4];
            reader.Read(length);
            byte[] text = new byte[BinaryPrimitives.ReadInt32LittleEndian(length)];
            reader.Read(text);
            return IPEndPoint.Parse(Encoding.UTF8.GetString(text));
        }
    }
}

/// <summary>Settings of this process's member of the coordinator group.</summary>
public sealed record CoordinatorGroupOptions
{
    /// <summary>This member's RESP address, as servers and clients reach it (followers name the leader by it).</summary>
    public required string Address { get; init; }

    /// <summary>Where this member listens for the group's Raft traffic.</summary>
    public required IPEndPoint RaftListen { get; init; }

    /// <summary>This member's Raft address as the others reach it, when it differs from <see cref="RaftListen"/> (a wildcard listen).</summary>
    public IPEndPoint? RaftAdvertised { get; init; }

    /// <summary>Every member, this one included; one entry (or none) is a group of one.</summary>
    public IReadOnlyList<CoordinatorPeer> Peers { get; init; } = [];

    /// <summary>Where the log and its snapshots are kept. Starting again on the same directory keeps the view history.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>
    /// The lower bound of the randomized election timeout (the upper bound is twice it): how long followers wait
    /// for the leader before electing another. Default 150 ms.
    /// </summary>
    public TimeSpan ElectionTimeout { get; init; } = TimeSpan.FromMilliseconds(150);

    /// <summary>
    /// How long a Raft request to another member may take. Default: the election timeout, so a leader cut off
    /// from its followers steps down about when they elect another.
    /// </summary>
    public TimeSpan? RequestTimeout { get; init; }
}

/// <summary>A member of the coordinator group as the others are told of it.</summary>
/// <param name="Address">Its RESP address, <c>HOST:PORT</c>.</param>
/// <param name="RaftEndPoint">Its Raft address.</param>
public sealed record CoordinatorPeer(string Address, IPEndPoint RaftEndPoint);
