using System.Text;
using Microsoft.Extensions.Logging;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.Server;

// The backup's side of replication: state transfer and forwarded batches, both fenced by view.
public sealed partial class Replica
{
    private string? _backupSession;
    private SnapshotBuilder? _incoming;

    /// <summary>
    /// A snapshot being received: the store is built as its chunks arrive (sized from the count <c>BEGIN</c>
    /// gives), so that <c>END</c> only swaps it in, however many keys it holds.
    /// A transfer outlives a broken connection: the primary's next connection asks how many parts arrived
    /// (<c>RESUME</c>) and sends the rest.
    /// </summary>
    private sealed class SnapshotBuilder(string session, long lastApplied, int keys, long clock, DuplicateTableOptions options, object? connection)
    {
        public long Clock { get; } = clock;
        public string Session { get; } = session;
        public long LastApplied { get; } = lastApplied;
        public KeyValueStore Store { get; } = new(keys);
        public DuplicateTable Duplicates { get; } = new(options);

        /// <summary>
        /// The parts applied, <c>BEGIN</c> included. A connection applies its parts in order and nothing after one
        /// it lost, so these are the first <see cref="Parts"/> the primary sent.
        /// </summary>
        public long Parts { get; set; } = 1;

        /// <summary>
        /// The connection the parts come on: the one that sent <c>BEGIN</c>, then the last one that resumed. A part
        /// still arriving on an older connection is refused, so that none is counted twice.
        /// </summary>
        public object? Connection { get; set; } = connection;
    }

    /// <summary>
    /// Handles <c>REPL.SNAPSHOT</c> and <c>REPL.APPLY</c>. Both carry <c>view from session</c> first; they are
    /// accepted only from the primary of this server's current view, with this server as its backup.
    /// <paramref name="connection"/> identifies the connection the message came on (any object the transport keeps
    /// per connection); a snapshot's parts are taken from one connection at a time.
    /// </summary>
    public RespValue HandleReplication(RespCommand cmd, object? connection = null)
    {
        if (cmd.Count < 5 || !cmd.TryLong(1, out long viewNumber))
            return RespValue.Error($"{ErrorCodes.Err} wrong number of arguments for '{cmd.Name}'");
        string from = cmd.Text(2);
        string session = cmd.Text(3);
        bool refresh = false;
        RespValue reply;
        lock (_lock)
        {
            if (viewNumber != _view.Number || _view.Backup != Me || _view.Primary != from || _disposed)
            {
                refresh = viewNumber > _view.Number;
                reply = RespValue.Error($"{ErrorCodes.StaleView} {Me} is not the backup of {from} in view {viewNumber} (it knows view {_view.Number})");
            }
            else
            {
                try
                {
                    reply = cmd.Name == Commands.ReplApply ? ApplyBatchLocked(cmd, session) : SnapshotLocked(cmd, session, connection);
                }
                catch (FormatException e)
                {
                    reply = RespValue.Error($"{ErrorCodes.Err} malformed {cmd.Name}: {e.Message}");
                }
            }
        }
        if (refresh) PingRequested?.Invoke();
        return reply;
    }

    private RespValue SnapshotLocked(RespCommand cmd, string session, object? connection)
    {
        string part = cmd.Text(4).ToUpperInvariant();
        if (part == "OPEN") return RespValue.Ok; // fencing passed: the primary may take its snapshot now
        if (part == "RESUME") return ResumeLocked(session, connection);
        if (part == "BEGIN")
        {
            // The live state stays a valid copy (it holds every committed write) until END swaps in the new
            // one, so a transfer that breaks halfway leaves this backup promotable.
            _backupSession = null;
            // BEGIN last-applied [key-count [clock]]: the count only sizes the store; the clock is the history's
            // time (StateMachine.Clock), which the backup carries on from.
            long keys = cmd.Count > 6 ? ParseLong(cmd, 6) : 0;
            long clock = cmd.Count > 7 ? ParseLong(cmd, 7) : 0;
            _incoming = new SnapshotBuilder(session, ParseLong(cmd, 5), (int)Math.Clamp(keys, 0, 1 << 22), clock, _options.Duplicates, connection);
            return RespValue.Ok;
        }
        if (_incoming?.Session != session)
            return RespValue.Error($"{ErrorCodes.StaleView} no snapshot {session} in progress");
        if (_incoming.Connection != connection)
            return RespValue.Error($"{ErrorCodes.StaleView} snapshot {session} goes on on a newer connection");
        if (part == "END") return EndSnapshotLocked(cmd, session, _incoming);
        if (ApplySnapshotPartLocked(cmd, part, _incoming) is { } refused) return refused;
        _incoming.Parts++;
        return RespValue.Ok;
    }

    /// <summary>
    /// <c>RESUME</c>: a primary whose link broke asks how far this backup got in <paramref name="session"/>, to send only
    /// the rest. <c>:last-applied</c>: it installed the session's snapshot (and holds the writes streamed since);
    /// <c>*2 parts n</c>: the transfer is in progress and its first n parts arrived (this connection takes it over);
    /// nil: neither (it restarted, or began a newer transfer), and the primary sends a new snapshot.
    /// </summary>
    private RespValue ResumeLocked(string session, object? connection)
    {
        if (_backupSession == session) return RespValue.Int(_state.LastApplied);
        if (_incoming?.Session != session) return RespValue.NullBulk;
        _incoming.Connection = connection;
        return RespValue.Array([RespValue.Bulk(ResumeParts), RespValue.Int(_incoming.Parts)]);
    }

    /// <summary>The first element of <c>RESUME</c>'s answer for a transfer in progress.</summary>
    internal static readonly byte[] ResumeParts = "parts"u8.ToArray();

    /// <summary>Applies one part of a snapshot to <paramref name="incoming"/>; the error for a part it does not know, else null.</summary>
    private RespValue? ApplySnapshotPartLocked(RespCommand cmd, string part, SnapshotBuilder incoming)
    {
        switch (part)
        {
            case "DATA":
                // key value [key value]...
                for (int i = 5; i + 1 < cmd.Count; i += 2) incoming.Store.Set(cmd[i], cmd[i + 1]);
                return null;
            case "ENTRIES":
                // The primary's store entries as they are laid out in memory: each argument becomes an entry here.
                for (int i = 5; i < cmd.Count; i++)
                {
                    if (!KeyValueStore.IsEntry(cmd[i])) throw new FormatException($"argument {i} is not a store entry");
                    incoming.Store.Put(cmd[i]);
                }
                return null;
            case "EXPIRES":
                // key deadline [key deadline]...: the entries they belong to came first.
                if ((cmd.Count - 5) % 2 != 0) throw new FormatException("EXPIRES needs key and deadline pairs");
                for (int i = 5; i < cmd.Count; i += 2)
                {
                    long deadline = ParseLong(cmd, i + 1);
                    if (deadline <= 0 || !incoming.Store.Contains(cmd[i])) throw new FormatException($"deadline {i} is not for a key of the snapshot");
                    incoming.Store.SetDeadline(cmd[i], deadline);
                }
                return null;
            case "DUPS":
                // client acked-through count [request-seq log-seq reply]...
                for (int i = 5; i < cmd.Count;)
                {
                    long client = ParseLong(cmd, i), acked = ParseLong(cmd, i + 1), count = ParseLong(cmd, i + 2);
                    i += 3;
                    DuplicateTable.ClientSession s = DuplicateTable.NewSession(acked);
                    for (long n = 0; n < count; n++, i += 3)
                    {
                        if (i + 2 >= cmd.Count) throw new FormatException("DUPS entry cut short");
                        s.Replies[ParseLong(cmd, i)] = new SavedReply(DecodeReply(cmd[i + 2], _options.RespLimits), ParseLong(cmd, i + 1));
                    }
                    incoming.Duplicates.Restore(client, s);
                }
                return null;
            default:
                return RespValue.Error($"{ErrorCodes.Err} unknown snapshot part '{part}'");
        }
    }

    /// <summary><c>END</c>: checks the counts and swaps the transferred state in; this backup then holds <paramref name="session"/>.</summary>
    private RespValue EndSnapshotLocked(RespCommand cmd, string session, SnapshotBuilder incoming)
    {
        // The counts guard against a snapshot that lost a chunk on the way.
        if (ParseLong(cmd, 5) != incoming.Store.Count || ParseLong(cmd, 6) != incoming.Duplicates.ClientCount
            || (cmd.Count > 9 && ParseLong(cmd, 9) != incoming.Store.VolatileCount))
        {
            _incoming = null;
            return RespValue.Error($"{ErrorCodes.Err} snapshot {session} is incomplete");
        }
        incoming.Duplicates.RestoreMarks(floor: ParseLong(cmd, 7), highestId: ParseLong(cmd, 8));
        _state.Install(incoming.Store, incoming.Duplicates, incoming.LastApplied, incoming.Clock);
        _incoming = null;
        _backupSession = session;
        _initialized = true;
        _heldView = _view.Number;
        _log.LogInformation("{Me}: installed snapshot of view {View} at write {Seq} ({Keys} keys)",
            Me, _view.Number, _state.LastApplied, _state.Count);
        return RespValue.Int(_state.LastApplied);
    }

    private RespValue ApplyBatchLocked(RespCommand cmd, string session)
    {
        if (_backupSession != session)
            return RespValue.Error($"{ErrorCodes.StaleView} no synced session {session}");
        long first = ParseLong(cmd, 4);
        if (first != _state.LastApplied + 1)
            return RespValue.Error($"{ErrorCodes.StaleView} batch starts at {first} but the next write is {_state.LastApplied + 1}");
        List<Operation> ops = ApplyBatch.ParseOps(cmd);
        long maxValueBytes = ApplyBatch.MaxValueBytesOf(cmd);
        long seq = first;
        foreach (Operation op in ops) _state.Apply(op, seq++, maxValueBytes);
        return RespValue.Int(_state.LastApplied);
    }

    internal static byte[] Ascii(long n) => Encoding.ASCII.GetBytes(n.ToString(System.Globalization.CultureInfo.InvariantCulture));

    internal static byte[] EncodeReply(RespValue reply)
    {
        var w = new System.Buffers.ArrayBufferWriter<byte>();
        RespWriter.WriteValue(w, reply);
        return w.WrittenSpan.ToArray();
    }

    private static RespValue DecodeReply(byte[] bytes, RespLimits limits)
    {
        var seq = new System.Buffers.ReadOnlySequence<byte>(bytes);
        try
        {
            if (!RespReader.TryReadValue(ref seq, limits, out RespValue? v)) throw new FormatException("truncated saved reply");
            return v!;
        }
        catch (RespProtocolException e)
        {
            throw new FormatException("saved reply is not RESP: " + e.Message);
        }
    }

    private static long ParseLong(RespCommand cmd, int i)
    {
        if (i >= cmd.Count || !cmd.TryLong(i, out long v)) throw new FormatException($"argument {i} is not an integer");
        return v;
    }
}
