using System.Text;
using Tandem.Protocol;

namespace Tandem.Storage;

/// <summary>
/// The replicated state: the store, the duplicate table and the sequence number of the last applied write.
/// Not thread-safe: the server's sequencer owns it. Applying the same writes in the same order from the
/// same snapshot gives the same state and the same replies on every copy.
/// </summary>
public sealed class StateMachine
{
    private KeyValueStore _store = new();
    private readonly DuplicateTableOptions? _duplicateOptions;
    private readonly DataContext _context;

    /// <summary>An empty state.</summary>
    public StateMachine(DuplicateTableOptions? duplicateOptions = null)
    {
        _duplicateOptions = duplicateOptions;
        Duplicates = new DuplicateTable(duplicateOptions);
        _context = new DataContext(_store, Duplicates);
    }

    /// <summary>The duplicate table.</summary>
    public DuplicateTable Duplicates { get; private set; }

    /// <summary>Sequence number of the last applied write (0 before any).</summary>
    public long LastApplied { get; private set; }

    /// <summary>
    /// The latest time of any applied write (Unix milliseconds). Time in the replicated history never goes back:
    /// a write is applied at the later of its own time and this one, so a key seen expired stays expired on
    /// every copy, whatever the clock of the server that applies the next write.
    /// </summary>
    public long Clock { get; private set; }

    /// <summary>Number of keys.</summary>
    public int Count => _store.Count;

    /// <summary>Number of keys with a deadline.</summary>
    public int VolatileCount => _store.VolatileCount;

    /// <summary>The earliest deadline of any key, or <see cref="long.MaxValue"/>.</summary>
    public long NextDeadline => _store.NextDeadline;

    /// <summary>A copy of the value of <paramref name="key"/>, or null if it is not set.</summary>
    public byte[]? Get(byte[] key) => _store.TryGet(key, out ReadOnlyMemory<byte> value) ? value.ToArray() : null;

    /// <summary>The value of <paramref name="key"/>, not copied (it is never changed), or false if it is not set.</summary>
    public bool TryGet(ReadOnlySpan<byte> key, out ReadOnlyMemory<byte> value) => _store.TryGet(key, out value);

    /// <summary>What <c>WATCH</c> remembers of <paramref name="key"/>: its entry (replaced by every write) and its deadline.</summary>
    public (byte[]? Entry, long Deadline) VersionOf(ReadOnlySpan<byte> key) => (_store.EntryOf(key), _store.DeadlineOf(key));

    /// <summary>
    /// Runs the read-only data command <paramref name="args"/> at time <paramref name="now"/> (at least
    /// <see cref="Clock"/>). The caller first applies an <see cref="Operation.Expired"/> write when a deadline
    /// has come by <paramref name="now"/>, so that no read sees a key that has expired.
    /// </summary>
    public RespValue Read(byte[][] args, long now)
    {
        _context.Now = Math.Max(now, Clock);
        _context.MaxValueBytes = long.MaxValue;
        return DataCommands.Run(_context, args);
    }

    /// <summary>
    /// Applies <paramref name="op"/> as write number <paramref name="seq"/>, which must be the next one.
    /// <paramref name="maxValueBytes"/> bounds the values the write may build (the primary's limit; a backup
    /// passes the limit the primary sent, so both decide the same).
    /// </summary>
    public RespValue Apply(in Operation op, long seq, long maxValueBytes = long.MaxValue)
    {
        if (seq != LastApplied + 1) throw new InvalidOperationException($"write {seq} applied after {LastApplied}: gap or repeat");
        Clock = Math.Max(Clock, op.Now);
        _store.RemoveExpired(Clock);
        _context.Now = Clock;
        _context.MaxValueBytes = maxValueBytes;
        RespValue reply = ApplyToStore(op);
        LastApplied = seq;
        if (op.IsTracked) Duplicates.Record(op.ClientId, op.RequestSeq, op.AckedThrough, reply, seq);
        return reply;
    }

    private RespValue ApplyToStore(in Operation op)
    {
        ReadOnlySpan<byte> name = op.Name;
        // Tandem's own writes start with E or X; any other name goes straight to the data commands.
        if (name.Length == 0 || (name[0] | 0x20) is not ((byte)'e' or (byte)'x')) return DataCommands.Run(_context, op.Args);
        if (Ascii.EqualsIgnoreCase(name, Operation.Expired)) return RespValue.Ok;
        if (Ascii.EqualsIgnoreCase(name, Operation.Register))
        {
            long id = Duplicates.Register();
            return id != 0 ? RespValue.Int(id) : RespValue.Error($"{ErrorCodes.Err} no client ids are left");
        }
        if (Ascii.EqualsIgnoreCase(name, Operation.Transaction))
        {
            // One unit: every command of the transaction is applied by this one write, so no copy ever holds half.
            List<byte[][]> commands = Operation.SplitTransaction(op.Args) ?? throw new FormatException("malformed transaction");
            var replies = new RespValue[commands.Count];
            for (int i = 0; i < commands.Count; i++) replies[i] = DataCommands.Run(_context, commands[i]);
            return RespValue.Array(replies);
        }
        return DataCommands.Run(_context, op.Args);
    }

    /// <summary>
    /// A point-in-time copy at <see cref="LastApplied"/>. Entries are immutable arrays, so copying the references
    /// is enough; later writes replace entries, never change them.
    /// </summary>
    public Snapshot CreateSnapshot() => new(LastApplied, _store.Entries(), Duplicates.Clone(), _store.Deadlines(), Clock);

    /// <summary>Replaces the whole state with <paramref name="snapshot"/>.</summary>
    public void Install(Snapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        KeyValueStore store = KeyValueStore.FromEntries(snapshot.Entries);
        foreach ((byte[] key, long deadline) in snapshot.Deadlines) store.SetDeadline(key, deadline);
        Install(store, snapshot.Duplicates, snapshot.LastApplied, snapshot.Clock);
    }

    /// <summary>Replaces the whole state with a store built elsewhere (a snapshot received chunk by chunk).</summary>
    public void Install(KeyValueStore store, DuplicateTable duplicates, long lastApplied, long clock)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        Duplicates = duplicates ?? throw new ArgumentNullException(nameof(duplicates));
        LastApplied = lastApplied;
        Clock = clock;
        _context.Store = store;
        _context.Duplicates = duplicates;
    }

    /// <summary>Empties the state (a server that must not keep stale data).</summary>
    public void Reset() => Install(new Snapshot(0, [], new DuplicateTable(_duplicateOptions), [], 0));
}

/// <summary>
/// The whole replicated state at one sequence number: the store's entries (see <see cref="KeyValueStore.KeyOf"/>
/// and <see cref="KeyValueStore.ValueOf"/>), the duplicate table, the last write's number, the keys' deadlines
/// and the replicated clock (<see cref="StateMachine.Clock"/>).
/// </summary>
public sealed record Snapshot(long LastApplied, IReadOnlyList<byte[]> Entries, DuplicateTable Duplicates,
    IReadOnlyList<(byte[] Key, long Deadline)> Deadlines, long Clock);
