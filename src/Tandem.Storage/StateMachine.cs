using Tandem.Protocol;

namespace Tandem.Storage;

/// <summary>
/// The replicated state: the store, the duplicate table and the sequence number of the last applied write.
/// Not thread-safe: the server's sequencer owns it. Applying the same writes in the same order from the
/// same snapshot gives the same state and the same replies on every copy.
/// </summary>
public sealed class StateMachine(DuplicateTableOptions? duplicateOptions = null)
{
    private KeyValueStore _store = new();
    private readonly DuplicateTableOptions? _duplicateOptions = duplicateOptions;

    /// <summary>The duplicate table.</summary>
    public DuplicateTable Duplicates { get; private set; } = new(duplicateOptions);

    /// <summary>Sequence number of the last applied write (0 before any).</summary>
    public long LastApplied { get; private set; }

    /// <summary>Number of keys.</summary>
    public int Count => _store.Count;

    /// <summary>A copy of the value of <paramref name="key"/>, or null if it is not set.</summary>
    public byte[]? Get(byte[] key) => _store.TryGet(key, out ReadOnlyMemory<byte> value) ? value.ToArray() : null;

    /// <summary>The value of <paramref name="key"/>, not copied (it is never changed), or false if it is not set.</summary>
    public bool TryGet(ReadOnlySpan<byte> key, out ReadOnlyMemory<byte> value) => _store.TryGet(key, out value);

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
                _store.Set(op.Key, op.Value);
                return RespValue.Ok;
            case OpCode.PutHash:
            {
                byte[] old = _store.TryGet(op.Key, out ReadOnlyMemory<byte> current) ? current.ToArray() : [];
                _store.Set(op.Key, Fnv1a.PutHashValue(old, op.Value));
                return RespValue.Bulk(old);
            }
            case OpCode.Append:
            {
                _store.TryGet(op.Key, out ReadOnlyMemory<byte> old);
                int length = old.Length + op.Value.Length;
                byte[] joined = GC.AllocateUninitializedArray<byte>(length);
                old.Span.CopyTo(joined);
                op.Value.CopyTo(joined.AsSpan(old.Length));
                _store.Set(op.Key, joined);
                return RespValue.Int(length);
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
    /// A point-in-time copy at <see cref="LastApplied"/>. Entries are immutable arrays, so copying the references
    /// is enough; later writes replace entries, never change them.
    /// </summary>
    public Snapshot CreateSnapshot() => new(LastApplied, _store.Entries(), Duplicates.Clone());

    /// <summary>Replaces the whole state with <paramref name="snapshot"/>.</summary>
    public void Install(Snapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        Install(KeyValueStore.FromEntries(snapshot.Entries), snapshot.Duplicates, snapshot.LastApplied);
    }

    /// <summary>Replaces the whole state with a store built elsewhere (a snapshot received chunk by chunk).</summary>
    public void Install(KeyValueStore store, DuplicateTable duplicates, long lastApplied)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        Duplicates = duplicates ?? throw new ArgumentNullException(nameof(duplicates));
        LastApplied = lastApplied;
    }

    /// <summary>Empties the state (a server that must not keep stale data).</summary>
    public void Reset() => Install(new Snapshot(0, [], new DuplicateTable(_duplicateOptions)));
}

/// <summary>
/// The whole replicated state at one sequence number: the store's entries (see <see cref="KeyValueStore.KeyOf"/>
/// and <see cref="KeyValueStore.ValueOf"/>), the duplicate table and the last write's number.
/// </summary>
public sealed record Snapshot(long LastApplied, IReadOnlyList<byte[]> Entries, DuplicateTable Duplicates);
