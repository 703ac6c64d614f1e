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
    /// </summary>
    private sealed class SnapshotBuilder(string session, long lastApplied, int keys, long clock, DuplicateTableOptions options)
    {
        public long Clock { get; } = clock;
        public string Session { get; } = session;
        public long LastApplied { get; } = lastApplied;
        public KeyValueStore Store { get; } = new(keys);
        public DuplicateTable Duplicates { get; } = new(options);
    }

    /// <summary>
    /// Handles <c>REPL.SNAPSHOT</c> and <c>REPL.APPLY</c>. Both carry <c>view from session</c> first; they are
    /// accepted only from the primary of this server's current view, with this server as its backup.
    /// </summary>
    public RespValue HandleReplication(RespCommand cmd)
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
                    reply = cmd.Name == Commands.ReplApply ? ApplyBatchLocked(cmd, session) : SnapshotLocked(cmd, session);
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

    private RespValue SnapshotLocked(RespCommand cmd, string session)
    {
        string part = cmd.Text(4).ToUpperInvariant();
        if (part == "OPEN") return RespValue.Ok; // fencing passed: the primary may take its snapshot now
        // A primary whose link broke asks how far this backup got in the session, to send only the rest; nil: this
        // backup does not hold the session (it never installed it, or installed a newer one), send a snapshot.
        if (part == "RESUME") return _backupSession == session ? RespValue.Int(_state.LastApplied) : RespValue.NullBulk;
        if (part == "BEGIN")
        {
            // The live state stays a valid copy (it holds every committed write) until END swaps in the new
            // one, so a transfer that breaks halfway leaves this backup promotable.
            _backupSession = null;
            // BEGIN last-applied [key-count [clock]]: the count only sizes the store; the clock is the history's
            // time (StateMachine.Clock), which the backup carries on from.
            long keys = cmd.Count > 6 ? ParseLong(cmd, 6) : 0;
            long clock = cmd.Count > 7 ? ParseLong(cmd, 7) : 0;
            _incoming = new SnapshotBuilder(session, ParseLong(cmd, 5), (int)Math.Clamp(keys, 0, 1 << 22), clock, _options.Duplicates);
            return RespValue.Ok;
        }
        if (_incoming?.Session != session)
            return RespValue.Error($"{ErrorCodes.StaleView} no snapshot {session} in progress");
        switch (part)
        {
            case "DATA":
                // key value [key value]...
                for (int i = 5; i + 1 < cmd.Count; i += 2) _incoming.Store.Set(cmd[i], cmd[i + 1]);
                return RespValue.Ok;
            case "ENTRIES":
                // The primary's store entries as they are laid out in memory: each argument becomes an entry here.
                for (int i = 5; i < cmd.Count; i++)
                {
                    if (!KeyValueStore.IsEntry(cmd[i])) throw new FormatException($"argument {i} is not a store entry");
                    _incoming.Store.Put(cmd[i]);
                }
                return RespValue.Ok;
            case "EXPIRES":
                // key deadline [key deadline]...: the entries they belong to came first.
                if ((cmd.Count - 5) % 2 != 0) throw new FormatException("EXPIRES needs key and deadline pairs");
                for (int i = 5; i < cmd.Count; i += 2)
                {
                    long deadline = ParseLong(cmd, i + 1);
                    if (deadline <= 0 || !_incoming.Store.Contains(cmd[i])) throw new FormatException($"deadline {i} is not for a key of the snapshot");
                    _incoming.Store.SetDeadline(cmd[i], deadline);
                }
                return RespValue.Ok;
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
                    _incoming.Duplicates.Restore(client, s);
                }
                return RespValue.Ok;
            case "END":
                // The counts guard against a snapshot that lost a chunk on the way.
                if (ParseLong(cmd, 5) != _incoming.Store.Count || ParseLong(cmd, 6) != _incoming.Duplicates.ClientCount
                    || (cmd.Count > 9 && ParseLong(cmd, 9) != _incoming.Store.VolatileCount))
                {
                    _incoming = null;
                    return RespValue.Error($"{ErrorCodes.Err} snapshot {session} is incomplete");
                }
                _incoming.Duplicates.RestoreMarks(floor: ParseLong(cmd, 7), highestId: ParseLong(cmd, 8));
                _state.Install(_incoming.Store, _incoming.Duplicates, _incoming.LastApplied, _incoming.Clock);
                _incoming = null;
                _backupSession = session;
                _initialized = true;
                _heldView = _view.Number;
                _log.LogInformation("{Me}: installed snapshot of view {View} at write {Seq} ({Keys} keys)",
                    Me, _view.Number, _state.LastApplied, _state.Count);
                return RespValue.Int(_state.LastApplied);
            default:
                return RespValue.Error($"{ErrorCodes.Err} unknown snapshot part '{part}'");
        }
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
