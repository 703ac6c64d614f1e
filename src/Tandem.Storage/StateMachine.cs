using Tandem.Protocol;

namespace Tandem.Storage;

/// <summary>
/// The replicated state: the store, the duplicate table and the sequence number of the last applied write.
/// Not thread-safe: the server's sequencer owns it. Applying the same writes in the same order from the
/// same snapshot gives the same state and the same replies on every copy.
/// </summary>
public sealed class StateMachine(DuplicateTableOptions? duplicateOptions = null)
{
    private Dictionary<byte[], byte[]> _store = new(ByteArrayComparer.Instance);
    private readonly DuplicateTableOptions? _duplicateOptions = duplicateOptions;

    /// <summary>The duplicate table.</summary>
    public DuplicateTable Duplicates { get; private set; } = new(duplicateOptions);

    /// <summary>Sequence number of the last applied write (0 before any).</summary>
    public long LastApplied { get; private set; }

    /// <summary>Number of keys.</summary>
    public int Count => _store.Count;

    /// <summary>The value of <paramref name="key"/>, or null if it is not set.</summary>
    public byte[]? Get(byte[] key) => _store.GetValueOrDefault(key);

    /// <summary>Applies <paramref name="op"/> as write number <paramref name="seq"/>, which must be the next one.</summary>
    public RespValue Apply(in Operation op, long seq)
    {
        if (seq != LastApplied + 1) throw new InvalidOperationException($"write {seq} applied after {LastApplied}: gap or repeat");
        RespValue reply = ApplyToStore(op);
        LastApplied = seq;
        if (op.IsTracked) Duplicates.Record(op.ClientId, op.RequestSeq, op.AckedThrough, reply, seq);
        return reply;
    }

    private RespValue ApplyToStore(in Operation op)
    {
        switch (op.Code)
        {
            case OpCode.Set:
                _store[op.Key] = op.Value;
                return RespValue.Ok;
            case OpCode.PutHash:
            {
                byte[] old = _store.GetValueOrDefault(op.Key) ?? [];
                _store[op.Key] = Fnv1a.PutHashValue(old, op.Value);
                return RespValue.Bulk(old);
            }
            case OpCode.Append:
            {
                byte[] old = _store.GetValueOrDefault(op.Key) ?? [];
                byte[] joined = [.. old, .. op.Value];
                _store[op.Key] = joined;
                return RespValue.Int(joined.Length);
            }
            case OpCode.Delete:
                return RespValue.Int(_store.Remove(op.Key) ? 1 : 0);
            case OpCode.Register:
            {
                long id = Duplicates.Register();
                return id != 0 ? RespValue.Int(id) : RespValue.Error($"{ErrorCodes.Err} no client ids are left");
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op.Code, "unknown operation");
        }
    }

    /// <summary>
    /// A point-in-time copy at <see cref="LastApplied"/>. Values are immutable arrays, so copying the entries
    /// (references only) is enough; later writes replace arrays, never change them.
    /// </summary>
    public Snapshot CreateSnapshot() => new(LastApplied, _store.ToArray(), Duplicates.Clone());

    /// <summary>Replaces the whole state with <paramref name="snapshot"/>.</summary>
    public void Install(Snapshot snapshot)
    {
        var store = new Dictionary<byte[], byte[]>(snapshot.Entries.Count, ByteArrayComparer.Instance);
        foreach ((byte[] k, byte[] v) in snapshot.Entries) store[k] = v;
        _store = store;
        Duplicates = snapshot.Duplicates;
        LastApplied = snapshot.LastApplied;
    }

    /// <summary>Empties the state (a server that must not keep stale data).</summary>
    public void Reset() => Install(new Snapshot(0, [], new DuplicateTable(_duplicateOptions)));
}

/// <summary>The whole replicated state at one sequence number.</summary>
public sealed record Snapshot(long LastApplied, IReadOnlyList<KeyValuePair<byte[], byte[]>> Entries, DuplicateTable Duplicates);
