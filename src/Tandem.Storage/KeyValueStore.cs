using System.IO.Hashing;

namespace Tandem.Storage;

/// <summary>
/// The keys and values, compactly: one array per key, <c>[key length, 1 to 5 bytes][key][value]</c>, in an
/// open-addressing hash table (linear probing, backward-shift deletion) that hashes the key part only, seeded
/// per process so that a client cannot choose keys that all collide. A key costs its bytes, one array header and
/// 1.3 to 2.7 table slots of 12 bytes. Entries are never changed in place, so a snapshot is a copy of the
/// references, and an entry's identity tells whether its key was written since (<c>WATCH</c>).
/// </summary>
/// <remarks>
/// Keys may carry a deadline (Unix milliseconds): <see cref="SetDeadline"/>. The store itself never reads a
/// clock: <see cref="RemoveExpired"/> removes the keys whose deadline has come at the time it is given, which is
/// part of the replicated write being applied, so every copy removes the same keys at the same point.
/// The table keeps Redis's <c>SCAN</c> guarantee: <see cref="Scan"/> visits home slots in reverse-binary order,
/// so a key present for a whole iteration is returned at least once, even across a resize.
/// </remarks>
public sealed class KeyValueStore
{
    private const int MinCapacity = 16;

    /// <summary>
    /// Slots of the old table moved per write while a resize is in progress: at least two per write are needed
    /// to finish before the new table is itself due to grow or shrink; sixteen finish in 1/16 of the writes.
    /// </summary>
    private const int MovesPerWrite = 16;

    private static readonly ulong Seed = (ulong)Random.Shared.NextInt64();

    private Table _table;
    /// <summary>The table being drained into <see cref="_table"/> by a resize in progress, or null.</summary>
    private Table? _draining;
    /// <summary>Slots of <see cref="_draining"/> moved so far, from slot 0 up.</summary>
    private int _drained;
    private int _count;

    private readonly Dictionary<byte[], long> _deadlines = new(KeyComparer.Instance);
    private readonly Dictionary<byte[], long>.AlternateLookup<ReadOnlySpan<byte>> _deadlineOf;
    private readonly SortedSet<(long Deadline, byte[] Key)> _byDeadline = new(DeadlineOrder.Instance);

    /// <summary>An empty store.</summary>
    public KeyValueStore() : this(0) { }

    /// <summary>An empty store with room for <paramref name="capacity"/> keys (a snapshot being received).</summary>
    public KeyValueStore(int capacity)
    {
        int slots = MinCapacity;
        while (slots < 1 << 30 && slots * 3L / 4 < capacity) slots <<= 1;
        _table = new Table(slots);
        _deadlineOf = _deadlines.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    /// <summary>A store holding <paramref name="entries"/> (as <see cref="Entries"/> gave them, or <see cref="MakeEntry"/> made them).</summary>
    public static KeyValueStore FromEntries(IReadOnlyCollection<byte[]> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var store = new KeyValueStore(entries.Count);
        foreach (byte[] entry in entries) store.Put(entry);
        return store;
    }

    /// <summary>Number of keys.</summary>
    public int Count => _count;

    /// <summary>Whether a resize is moving entries to a new table, a few per write (tests look).</summary>
    internal bool Resizing => _draining is not null;

    /// <summary>Number of keys with a deadline.</summary>
    public int VolatileCount => _deadlines.Count;

    /// <summary>The earliest deadline of any key, or <see cref="long.MaxValue"/> when no key has one.</summary>
    public long NextDeadline => _byDeadline.Count == 0 ? long.MaxValue : _byDeadline.Min.Deadline;

    /// <summary>
    /// Adds <paramref name="entry"/> (laid out as <see cref="MakeEntry"/> does), replacing the entry of its key.
    /// The key's deadline, if any, stays.
    /// </summary>
    public void Put(byte[] entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (_draining is not null) DrainSome();
        ReadOnlySpan<byte> key = KeyOf(entry);
        uint hash = Hash(key);
        int at = _table.Find(key, hash);
        if (at >= 0)
        {
            _table.Slots[at] = entry;
            return;
        }
        if (FindDraining(key, hash) is var was and >= 0)
        {
            // Not moved yet: the new entry goes to the new table, and the old one is left behind as moved.
            _draining!.Slots[was] = Table.Moved;
            _table.Insert(entry, hash);
            return;
        }
        if ((_count + 1) * 4L > _table.Slots.Length * 3L) StartResize(_table.Slots.Length * 2);
        _table.Insert(entry, hash);
        _count++;
    }

    /// <summary>The value of <paramref name="key"/>, or false if it is not set.</summary>
    public bool TryGet(ReadOnlySpan<byte> key, out ReadOnlyMemory<byte> value)
    {
        if (EntryOf(key) is { } entry)
        {
            value = ValueOf(entry);
            return true;
        }
        value = default;
        return false;
    }

    /// <summary>The entry of <paramref name="key"/> (its identity changes with every write of the key), or null.</summary>
    public byte[]? EntryOf(ReadOnlySpan<byte> key)
    {
        uint hash = Hash(key);
        int at = _table.Find(key, hash);
        if (at >= 0) return _table.Slots[at];
        if (FindDraining(key, hash) is var was and >= 0) return _draining!.Slots[was];
        return null;
    }

    /// <summary>True if <paramref name="key"/> is set.</summary>
    public bool Contains(ReadOnlySpan<byte> key) => EntryOf(key) is not null;

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/> and clears its deadline unless <paramref name="keepDeadline"/>.</summary>
    public void Set(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, bool keepDeadline = false)
    {
        if (!keepDeadline) Persist(key);
        Put(MakeEntry(key, value));
    }

    /// <summary>Removes <paramref name="key"/> and its deadline; true if it was set.</summary>
    public bool Remove(ReadOnlySpan<byte> key)
    {
        if (_draining is not null) DrainSome();
        uint hash = Hash(key);
        int at = _table.Find(key, hash);
        if (at >= 0) _table.RemoveAt(at);
        else if (FindDraining(key, hash) is var was and >= 0) _draining!.Slots[was] = Table.Moved;
        else return false;
        Persist(key);
        _count--;
        if (_draining is null && _table.Slots.Length > MinCapacity && _count * 10L < _table.Slots.Length) StartResize(_table.Slots.Length / 2);
        return true;
    }

    /// <summary>Removes every key.</summary>
    public void Clear()
    {
        _table = new Table(MinCapacity);
        _draining = null;
        _drained = 0;
        _count = 0;
        _deadlines.Clear();
        _byDeadline.Clear();
    }

    /// <summary>The deadline of <paramref name="key"/> in Unix milliseconds, or 0 when it has none (or is not set).</summary>
    public long DeadlineOf(ReadOnlySpan<byte> key) => _deadlineOf.TryGetValue(key, out long deadline) ? deadline : 0;

    /// <summary>Gives the set key <paramref name="key"/> the deadline <paramref name="deadline"/> (Unix milliseconds, &gt; 0).</summary>
    public void SetDeadline(ReadOnlySpan<byte> key, long deadline)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(deadline);
        if (!Contains(key)) throw new InvalidOperationException("a deadline for a key that is not set");
        Persist(key);
        byte[] copy = key.ToArray();
        _deadlines[copy] = deadline;
        _byDeadline.Add((deadline, copy));
    }

    /// <summary>Clears the deadline of <paramref name="key"/>; true if it had one.</summary>
    public bool Persist(ReadOnlySpan<byte> key)
    {
        if (_deadlines.Count == 0 || !_deadlineOf.Remove(key, out byte[]? stored, out long deadline)) return false;
        _byDeadline.Remove((deadline, stored));
        return true;
    }

    /// <summary>Removes every key whose deadline is at or before <paramref name="now"/>; returns how many.</summary>
    public int RemoveExpired(long now)
    {
        int removed = 0;
        while (_byDeadline.Count > 0 && _byDeadline.Min.Deadline <= now)
        {
            byte[] key = _byDeadline.Min.Key;
            Remove(key);
            removed++;
        }
        return removed;
    }

    /// <summary>Every key with a deadline, and the deadline.</summary>
    public (byte[] Key, long Deadline)[] Deadlines() => [.. _deadlines.Select(d => (d.Key, d.Value))];

    /// <summary>Every entry, by reference (a point-in-time copy of the table, not of the bytes).</summary>
    public byte[][] Entries()
    {
        var all = new byte[_count][];
        int n = 0;
        foreach (byte[]? entry in _table.Slots)
            if (entry is not null) all[n++] = entry;
        if (_draining is { } old)
        {
            foreach (byte[]? entry in old.Slots)
                if (entry is not null && !ReferenceEquals(entry, Table.Moved)) all[n++] = entry;
        }
        return all;
    }

    /// <summary>
    /// One step of a <c>SCAN</c> from <paramref name="cursor"/>: adds to <paramref name="into"/> the entries of
    /// about <paramref name="count"/> home slots' worth of keys and returns the next cursor (0 when done).
    /// </summary>
    /// <remarks>
    /// During a resize every key is in one of two tables. As Redis does while it rehashes, the cursor runs over
    /// the smaller table's home slots, and each step also visits the slots of the larger table that share the
    /// step's low bits: a key moved between steps is visited in the same step in either table.
    /// </remarks>
    public ulong Scan(ulong cursor, int count, List<byte[]> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        if (_count == 0) return 0;
        Table small = _table, large = _table;
        if (_draining is { } old)
        {
            if (old.Slots.Length < _table.Slots.Length) small = old;
            else large = old;
        }
        ulong mask = (ulong)small.Mask;
        int visits = Math.Max(count, 1) * 10;
        int wanted = into.Count + Math.Max(count, 1);
        do
        {
            int home = (int)(cursor & mask);
            small.AddHome(home, into);
            if (large != small)
            {
                for (int h = home; h <= large.Mask; h += small.Mask + 1) large.AddHome(h, into);
            }
            // Redis's reverse-binary increment: the high bits of the slot index count first, so the slots already
            // visited stay visited when the table doubles or halves.
            cursor |= ~mask;
            cursor = ReverseBits(cursor);
            cursor++;
            cursor = ReverseBits(cursor);
        }
        while (cursor != 0 && into.Count < wanted && --visits > 0);
        return cursor;
    }

    /// <summary>A key chosen at random (<paramref name="random"/> picks the slot), or null when the store is empty.</summary>
    public byte[]? RandomEntry(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (_count == 0) return null;
        if (_draining is { } old && random.Next(old.Slots.Length) >= _drained)
        {
            // During a resize, the table not drained yet in about the share of the keys it still holds.
            return old.AnyFrom(_drained + random.Next(old.Slots.Length - _drained)) ?? _table.AnyFrom(random.Next(_table.Slots.Length));
        }
        return _table.AnyFrom(random.Next(_table.Slots.Length)) ?? _draining?.AnyFrom(random.Next(_draining.Slots.Length));
    }

    private static ulong ReverseBits(ulong v)
    {
        v = ((v >> 1) & 0x5555555555555555UL) | ((v & 0x5555555555555555UL) << 1);
        v = ((v >> 2) & 0x3333333333333333UL) | ((v & 0x3333333333333333UL) << 2);
        v = ((v >> 4) & 0x0F0F0F0F0F0F0F0FUL) | ((v & 0x0F0F0F0F0F0F0F0FUL) << 4);
        return System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v);
    }

    private static uint Hash(ReadOnlySpan<byte> key) => (uint)XxHash3.HashToUInt64(key, (long)Seed);

    /// <summary>
    /// Starts moving every key to a table of <paramref name="capacity"/> slots. The move is spread over the
    /// writes that follow (<see cref="MovesPerWrite"/> old slots each), so no write pays for the whole table: a
    /// store of millions of keys would otherwise stop for most of a second, long enough for the coordinator to
    /// take its server for dead.
    /// </summary>
    private void StartResize(int capacity)
    {
        while (_draining is not null) DrainSome();
        _draining = _table;
        _drained = 0;
        _table = new Table(capacity);
    }

    private void DrainSome()
    {
        Table old = _draining!;
        int end = Math.Min(old.Slots.Length, _drained + MovesPerWrite);
        for (int i = _drained; i < end; i++)
        {
            // The old table keeps a marker where a key was, so that the probe sequences of the keys not moved yet
            // (which may run through that slot) stay whole.
            // (An empty slot stays empty: it ends probe sequences, and a table of markers only would have no end.)
            if (old.Slots[i] is not { } entry || ReferenceEquals(entry, Table.Moved)) continue;
            _table.Insert(entry, old.Hashes[i]);
            old.Slots[i] = Table.Moved;
        }
        _drained = end;
        if (end == old.Slots.Length) _draining = null;
    }

    /// <summary>Where <paramref name="key"/> is in the table being drained (not moved yet), or -1 (or no resize).</summary>
    private int FindDraining(ReadOnlySpan<byte> key, uint hash) => _draining?.Find(key, hash) ?? -1;

    /// <summary>
    /// One open-addressing table: linear probing on the key's hash, the hashes kept beside the entries (a resize
    /// never hashes again), backward-shift deletion in the current table, no tombstones but a table being
    /// drained.
    /// </summary>
    private sealed class Table
    {
        /// <summary>Marks, in a table being drained, a slot whose key is now in the new table (or was removed).</summary>
        public static readonly byte[] Moved = [0];

        public Table(int capacity)
        {
            Slots = new byte[]?[capacity];
            Hashes = new uint[capacity];
            Mask = capacity - 1;
        }

        public byte[]?[] Slots { get; }
        public uint[] Hashes { get; }
        public int Mask { get; }

        public int Find(ReadOnlySpan<byte> key, uint hash)
        {
            byte[]?[] slots = Slots;
            for (int at = (int)(hash & (uint)Mask); slots[at] is { } entry; at = (at + 1) & Mask)
            {
                if (Hashes[at] == hash && !ReferenceEquals(entry, Moved) && KeyOf(entry).SequenceEqual(key)) return at;
            }
            return -1;
        }

        public void Insert(byte[] entry, uint hash)
        {
            int at = (int)(hash & (uint)Mask);
            while (Slots[at] is not null) at = (at + 1) & Mask;
            Slots[at] = entry;
            Hashes[at] = hash;
        }

        /// <summary>Adds the entries whose home slot is <paramref name="home"/>.</summary>
        public void AddHome(int home, List<byte[]> into)
        {
            for (int at = home; Slots[at] is { } entry; at = (at + 1) & Mask)
            {
                if ((Hashes[at] & Mask) == home && !ReferenceEquals(entry, Moved)) into.Add(entry);
            }
        }

        /// <summary>The first entry at or after <paramref name="start"/>, cyclically, or null.</summary>
        public byte[]? AnyFrom(int start)
        {
            for (int i = 0; i < Slots.Length; i++)
            {
                if (Slots[(start + i) & Mask] is { } entry && !ReferenceEquals(entry, Moved)) return entry;
            }
            return null;
        }

        // Backward-shift deletion: moves later keys of the cluster into the hole when their home allows, so that
        // every key stays reachable from its home slot with no tombstones. Only in the current table: the one being
        // drained must keep every probe sequence as it was.
        public void RemoveAt(int hole)
        {
            int at = hole;
            while (true)
            {
                at = (at + 1) & Mask;
                if (Slots[at] is null) break;
                int home = (int)(Hashes[at] & (uint)Mask);
                // The key at `at` may move to `hole` unless its home lies cyclically in (hole, at].
                bool homeBetween = hole <= at ? home > hole && home <= at : home > hole || home <= at;
                if (homeBetween) continue;
                Slots[hole] = Slots[at];
                Hashes[hole] = Hashes[at];
                hole = at;
            }
            Slots[hole] = null;
            Hashes[hole] = 0;
        }
    }

    /// <summary>Builds the entry of <paramref name="key"/> and <paramref name="value"/>.</summary>
    public static byte[] MakeEntry(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        int header = HeaderLength(key.Length);
        byte[] entry = GC.AllocateUninitializedArray<byte>(header + key.Length + value.Length);
        uint n = (uint)key.Length;
        int at = 0;
        while (n >= 0x80)
        {
            entry[at++] = (byte)(n | 0x80);
            n >>= 7;
        }
        entry[at] = (byte)n;
        key.CopyTo(entry.AsSpan(header));
        value.CopyTo(entry.AsSpan(header + key.Length));
        return entry;
    }

    /// <summary>True when <paramref name="entry"/> is laid out as an entry (a key length that fits, then the key).</summary>
    public static bool IsEntry(byte[] entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        long length = 0;
        for (int at = 0, shift = 0; at < entry.Length && at < 5; at++, shift += 7)
        {
            length |= (long)(entry[at] & 0x7F) << shift;
            if ((entry[at] & 0x80) == 0) return length <= entry.Length - at - 1;
        }
        return false;
    }

    /// <summary>The key part of an entry.</summary>
    public static ReadOnlySpan<byte> KeyOf(byte[] entry)
    {
        (int header, int length) = ReadHeader(entry);
        return entry.AsSpan(header, length);
    }

    /// <summary>The value part of an entry.</summary>
    public static ReadOnlyMemory<byte> ValueOf(byte[] entry)
    {
        (int header, int length) = ReadHeader(entry);
        return entry.AsMemory(header + length);
    }

    private static int HeaderLength(int keyLength)
    {
        int n = 1;
        for (uint v = (uint)keyLength; v >= 0x80; v >>= 7) n++;
        return n;
    }

    private static (int Header, int KeyLength) ReadHeader(byte[] entry)
    {
        uint length = 0;
        int shift = 0, at = 0;
        byte b;
        do
        {
            b = entry[at++];
            length |= (uint)(b & 0x7F) << shift;
            shift += 7;
        }
        while ((b & 0x80) != 0);
        return (at, (int)length);
    }

    /// <summary>Compares keys by content, and finds them by a span.</summary>
    private sealed class KeyComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static KeyComparer Instance { get; } = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] key) => (int)Hash(key);

        public bool Equals(ReadOnlySpan<byte> key, byte[] other) => key.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> key) => (int)Hash(key);

        public byte[] Create(ReadOnlySpan<byte> key) => key.ToArray();
    }

    /// <summary>Orders deadlines by time, then key bytes.</summary>
    private sealed class DeadlineOrder : IComparer<(long Deadline, byte[] Key)>
    {
        public static DeadlineOrder Instance { get; } = new();

        public int Compare((long Deadline, byte[] Key) x, (long Deadline, byte[] Key) y)
        {
            int c = x.Deadline.CompareTo(y.Deadline);
            return c != 0 ? c : x.Key.AsSpan().SequenceCompareTo(y.Key);
        }
    }
}
