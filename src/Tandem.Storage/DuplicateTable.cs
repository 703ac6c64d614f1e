using Tandem.Protocol;

namespace Tandem.Storage;

/// <summary>Bounds on the duplicate table's memory.</summary>
public sealed record DuplicateTableOptions
{
    private readonly int _maxClients = 100_000;
    private readonly int _maxInFlightPerClient = 1024;
    private readonly long _maxBytes = 256L * 1024 * 1024;

    /// <summary>
    /// Most client sessions kept; beyond it the sessions with the lowest client ids are dropped (down to about
    /// 90%) and their later retries are refused. Default 100,000.
    /// </summary>
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

    /// <summary>
    /// Most bytes of saved replies (with a small fixed cost per reply and per session) kept; beyond it sessions
    /// are dropped as for <see cref="MaxClients"/>. A saved PUTHASH reply holds a whole old value. Default 256 MiB.
    /// </summary>
    public long MaxBytes
    {
        get => _maxBytes;
        init => _maxBytes = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxBytes));
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
    /// <summary>
    /// No session, and the id is at or below <see cref="DuplicateTable.Floor"/>: the session may have been dropped
    /// with the reply of this very request, so it must not be applied; refuse (RIFL's expired lease).
    /// </summary>
    SessionExpired,
}

/// <summary>A reply kept for a retried request, and the sequence number of the write that produced it.</summary>
public readonly record struct SavedReply(RespValue Reply, long LogSeq);

/// <summary>
/// The duplicate table (after RIFL): per client, the replies of requests above the acked-through mark the
/// client advances with every request. It is part of the replicated state: it changes only by applying
/// writes in sequence order and travels in snapshots, so the primary and the backup always agree.
/// When it must forget sessions it drops the lowest client ids and raises <see cref="Floor"/> over them;
/// a request from an absent session at or below the floor is refused rather than applied again.
/// </summary>
public sealed class DuplicateTable(DuplicateTableOptions? options = null)
{
    /// <summary>Bytes counted for a session besides its replies (dictionary entries, the session object).</summary>
    public const int SessionOverheadBytes = 128;

    /// <summary>Bytes counted for a saved reply besides its payload.</summary>
    public const int ReplyOverheadBytes = 64;

    /// <summary>
    /// Largest client id a request may carry (2^62 - 1). Ids are issued above every id seen, so a request with
    /// an id near the top could otherwise use up the id space; this leaves at least 2^62 ids to issue.
    /// </summary>
    public const long MaxRequestClientId = (1L << 62) - 1;

    private readonly DuplicateTableOptions _options = options ?? new DuplicateTableOptions();
    private readonly Dictionary<long, ClientSession> _clients = new();

    /// <summary>One client's saved replies.</summary>
    public sealed class ClientSession
    {
        /// <summary>Every request at or below this number has been answered and acknowledged by the client.</summary>
        public long AckedThrough { get; internal set; }
        /// <summary>Replies of requests above <see cref="AckedThrough"/>, by request number.</summary>
        public Dictionary<long, SavedReply> Replies { get; } = new();
        /// <summary>Bytes this session counts against <see cref="DuplicateTableOptions.MaxBytes"/>.</summary>
        public long Bytes { get; internal set; } = SessionOverheadBytes;
    }

    /// <summary>Number of client sessions held.</summary>
    public int ClientCount => _clients.Count;

    /// <summary>Bytes held, as counted against <see cref="DuplicateTableOptions.MaxBytes"/>.</summary>
    public long Bytes { get; private set; }

    /// <summary>Every absent session with an id at or below this may have been dropped (0: none was).</summary>
    public long Floor { get; private set; }

    /// <summary>The largest client id issued by <see cref="Register"/> or seen in an applied request.</summary>
    public long HighestId { get; private set; }

    /// <summary>Sessions by client id (read-only use: snapshots and tests).</summary>
    public IReadOnlyDictionary<long, ClientSession> Clients => _clients;

    /// <summary>Bytes counted for <paramref name="reply"/>.</summary>
    public static long ReplyBytes(RespValue reply) => ReplyOverheadBytes + Payload(reply);

    private static long Payload(RespValue r) =>
        (r.Bytes?.Length ?? 0) + (r.Items is { } items ? items.Sum(i => ReplyOverheadBytes + Payload(i)) : 0);

    /// <summary>Classifies a request without changing anything.</summary>
    public DuplicateCheck Check(long clientId, long requestSeq, long ackedThrough, out SavedReply saved)
    {
        saved = default;
        if (!_clients.TryGetValue(clientId, out ClientSession? session))
            return clientId <= Floor ? DuplicateCheck.SessionExpired : DuplicateCheck.New;
        if (session.Replies.TryGetValue(requestSeq, out saved)) return DuplicateCheck.Duplicate;
        if (requestSeq <= session.AckedThrough) return DuplicateCheck.AlreadyAcknowledged;
        if (requestSeq - Math.Max(session.AckedThrough, ackedThrough) > _options.MaxInFlightPerClient) return DuplicateCheck.WindowFull;
        return DuplicateCheck.New;
    }

    /// <summary>
    /// Issues a client id no request has used: one above both <see cref="HighestId"/> and <see cref="Floor"/>.
    /// Returns 0 when the id space is used up. Applied as a write, so both copies issue the same ids.
    /// </summary>
    public long Register()
    {
        long top = Math.Max(HighestId, Floor);
        if (top == long.MaxValue) return 0;
        HighestId = top + 1;
        return HighestId;
    }

    /// <summary>
    /// Records the reply of an applied request and drops the replies the client has acknowledged; then, if the
    /// table is over a bound, drops sessions.
    /// </summary>
    public void Record(long clientId, long requestSeq, long ackedThrough, RespValue reply, long logSeq)
    {
        if (!_clients.TryGetValue(clientId, out ClientSession? session))
        {
            session = new ClientSession();
            _clients[clientId] = session;
            Bytes += session.Bytes;
        }
        if (clientId > HighestId) HighestId = clientId;
        long delta = 0;
        if (ackedThrough > session.AckedThrough)
        {
            session.AckedThrough = ackedThrough;
            foreach (long s in session.Replies.Keys.Where(s => s <= ackedThrough).ToList())
            {
                delta -= ReplyBytes(session.Replies[s].Reply);
                session.Replies.Remove(s);
            }
        }
        if (session.Replies.TryGetValue(requestSeq, out SavedReply replaced)) delta -= ReplyBytes(replaced.Reply);
        session.Replies[requestSeq] = new SavedReply(reply, logSeq);
        delta += ReplyBytes(reply);
        session.Bytes += delta;
        Bytes += delta;
        if (_clients.Count > _options.MaxClients || Bytes > _options.MaxBytes) Evict();
    }

    /// <summary>Adds a session from a snapshot, or merges a further part of one already added.</summary>
    public void Restore(long clientId, ClientSession session)
    {
        if (_clients.Remove(clientId, out ClientSession? earlier))
        {
            Bytes -= earlier.Bytes;
            foreach ((long seq, SavedReply r) in session.Replies) earlier.Replies[seq] = r;
            earlier.AckedThrough = Math.Max(earlier.AckedThrough, session.AckedThrough);
            session = earlier;
        }
        session.Bytes = SessionOverheadBytes + session.Replies.Values.Sum(r => ReplyBytes(r.Reply));
        _clients[clientId] = session;
        Bytes += session.Bytes;
    }

    /// <summary>Sets <see cref="Floor"/> and <see cref="HighestId"/> from a snapshot.</summary>
    public void RestoreMarks(long floor, long highestId)
    {
        Floor = floor;
        HighestId = highestId;
    }

    /// <summary>Creates an empty session to be filled from a snapshot.</summary>
    public static ClientSession NewSession(long ackedThrough) => new() { AckedThrough = ackedThrough };

    /// <summary>A deep copy, for snapshots.</summary>
    public DuplicateTable Clone()
    {
        var copy = new DuplicateTable(_options) { Floor = Floor, HighestId = HighestId, Bytes = Bytes };
        foreach ((long id, ClientSession s) in _clients)
        {
            ClientSession c = NewSession(s.AckedThrough);
            c.Bytes = s.Bytes;
            foreach ((long seq, SavedReply r) in s.Replies) c.Replies[seq] = r;
            copy._clients[id] = c;
        }
        return copy;
    }

    // Drops the lowest ids down to about 90% of the bound that was passed, so the O(n log n) work is paid
    // rarely. The order depends only on the table's content, so both copies drop the same sessions; dropping
    // the lowest ids keeps every remaining session above the floor.
    private void Evict()
    {
        int countTarget = _clients.Count > _options.MaxClients ? _options.MaxClients - Math.Max(1, _options.MaxClients / 10) : _options.MaxClients;
        long bytesTarget = Bytes > _options.MaxBytes ? _options.MaxBytes - _options.MaxBytes / 10 : _options.MaxBytes;
        long[] ids = [.. _clients.Keys];
        Array.Sort(ids);
        foreach (long id in ids)
        {
            if (_clients.Count <= countTarget && Bytes <= bytesTarget) break;
            _clients.Remove(id, out ClientSession? dropped);
            Bytes -= dropped!.Bytes;
            Floor = Math.Max(Floor, id);
        }
    }
}
