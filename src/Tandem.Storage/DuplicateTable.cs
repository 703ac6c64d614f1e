using Tandem.Protocol;

namespace Tandem.Storage;

/// <summary>Bounds on the duplicate table's memory.</summary>
public sealed record DuplicateTableOptions
{
    private readonly int _maxClients = 100_000;
    private readonly int _maxInFlightPerClient = 1024;

    /// <summary>Most client sessions kept; beyond it the least recently used session is dropped. Default 100,000.</summary>
    public int MaxClients
    {
        get => _maxClients;
        init => _maxClients = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxClients));
    }

    /// <summary>Most requests one client may have above its acked-through mark. Default 1024.</summary>
    public int MaxInFlightPerClient
    {
        get => _maxInFlightPerClient;
        init => _maxInFlightPerClient = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxInFlightPerClient));
    }
}

/// <summary>What the duplicate table says about an incoming exactly-once request.</summary>
public enum DuplicateCheck
{
    /// <summary>Never seen: apply it.</summary>
    New,
    /// <summary>Already applied: answer the stored reply (once its write is committed).</summary>
    Duplicate,
    /// <summary>At or below the client's acked-through mark: the client already has the reply; refuse.</summary>
    AlreadyAcknowledged,
    /// <summary>The client has too many requests above its acked-through mark; refuse until it catches up.</summary>
    WindowFull,
}

/// <summary>A reply kept for a retried request, and the sequence number of the write that produced it.</summary>
public readonly record struct SavedReply(RespValue Reply, long LogSeq);

/// <summary>
/// The duplicate table (after RIFL): per client, the replies of requests above the acked-through mark the
/// client advances with every request. It is part of the replicated state: it changes only by applying
/// writes in sequence order and travels in snapshots, so the primary and the backup always agree.
/// </summary>
public sealed class DuplicateTable(DuplicateTableOptions? options = null)
{
    private readonly DuplicateTableOptions _options = options ?? new DuplicateTableOptions();
    private readonly Dictionary<long, ClientSession> _clients = new();

    /// <summary>One client's saved replies.</summary>
    public sealed class ClientSession
    {
        /// <summary>Every request at or below this number has been answered and acknowledged by the client.</summary>
        public long AckedThrough { get; internal set; }
        /// <summary>Sequence number of the last write by this client (for least-recently-used eviction).</summary>
        public long LastUsed { get; internal set; }
        /// <summary>Replies of requests above <see cref="AckedThrough"/>, by request number.</summary>
        public Dictionary<long, SavedReply> Replies { get; } = new();
    }

    /// <summary>Number of client sessions held.</summary>
    public int ClientCount => _clients.Count;

    /// <summary>Sessions by client id (read-only use: snapshots and tests).</summary>
    public IReadOnlyDictionary<long, ClientSession> Clients => _clients;

    /// <summary>Classifies a request without changing anything.</summary>
    public DuplicateCheck Check(long clientId, long requestSeq, long ackedThrough, out SavedReply saved)
    {
        saved = default;
        if (!_clients.TryGetValue(clientId, out ClientSession? session))
            return DuplicateCheck.New;
        if (session.Replies.TryGetValue(requestSeq, out saved)) return DuplicateCheck.Duplicate;
        if (requestSeq <= session.AckedThrough) return DuplicateCheck.AlreadyAcknowledged;
        if (requestSeq - Math.Max(session.AckedThrough, ackedThrough) > _options.MaxInFlightPerClient) return DuplicateCheck.WindowFull;
        return DuplicateCheck.New;
    }

    /// <summary>Records the reply of an applied request and drops the replies the client has acknowledged.</summary>
    public void Record(long clientId, long requestSeq, long ackedThrough, RespValue reply, long logSeq)
    {
        if (!_clients.TryGetValue(clientId, out ClientSession? session))
        {
            session = new ClientSession();
            _clients[clientId] = session;
        }
        if (ackedThrough > session.AckedThrough)
        {
            session.AckedThrough = ackedThrough;
            session.Replies.Keys.Where(s => s <= ackedThrough).ToList().ForEach(s => session.Replies.Remove(s));
        }
        session.Replies[requestSeq] = new SavedReply(reply, logSeq);
        session.LastUsed = logSeq;
        if (_clients.Count > _options.MaxClients) EvictLeastRecentlyUsed();
    }

    /// <summary>Adds a session from a snapshot.</summary>
    public void Restore(long clientId, ClientSession session) => _clients[clientId] = session;

    /// <summary>Creates an empty session to be filled from a snapshot.</summary>
    public static ClientSession NewSession(long ackedThrough, long lastUsed) => new() { AckedThrough = ackedThrough, LastUsed = lastUsed };

    /// <summary>Removes every session.</summary>
    public void Clear() => _clients.Clear();

    /// <summary>A deep copy, for snapshots.</summary>
    public DuplicateTable Clone()
    {
        var copy = new DuplicateTable(_options);
        foreach ((long id, ClientSession s) in _clients)
        {
            ClientSession c = NewSession(s.AckedThrough, s.LastUsed);
            foreach ((long seq, SavedReply r) in s.Replies) c.Replies[seq] = r;
            copy._clients[id] = c;
        }
        return copy;
    }

    // Evicts a tenth of the sessions at once so the O(n) scan is paid rarely. Deterministic (by LastUsed,
    // then id), so both replicas evict the same sessions.
    private void EvictLeastRecentlyUsed()
    {
        int toEvict = Math.Max(1, _options.MaxClients / 10);
        foreach (long id in _clients.OrderBy(c => c.Value.LastUsed).ThenBy(c => c.Key).Take(toEvict).Select(c => c.Key).ToList())
            _clients.Remove(id);
    }
}
