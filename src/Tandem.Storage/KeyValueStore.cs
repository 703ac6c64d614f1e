using System.IO.Hashing;

namespace Tandem.Storage;

/// <summary>
/// The keys and values, compactly: one array per key, <c>[key length, 1 to 5 bytes][key][value]</c>, in a hash
/// set that hashes and compares the key part only (seeded per process, so a client cannot choose keys that all
/// collide). A key costs its bytes, one array header and one set slot: about 40 bytes beyond the key and value,
/// against about 100 for a dictionary of two arrays (docs/benchmarks.md). Entries are never changed in place,
/// so a snapshot is a copy of the references.
/// </summary>
public sealed class KeyValueStore
{
    private readonly HashSet<byte[]> _entries;
    private readonly HashSet<byte[]>.AlternateLookup<ReadOnlySpan<byte>> _byKey;

    /// <summary>An empty store.</summary>
    public KeyValueStore() : this(0) { }

    /// <summary>An empty store with room for <paramref name="capacity"/> keys (a snapshot being received).</summary>
    public KeyValueStore(int capacity)
    {
        _entries = new HashSet<byte[]>(capacity, EntryComparer.Instance);
        _byKey = _entries.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    /// <summary>A store holding <paramref name="entries"/> (as <see cref="Entries"/> gave them, or <see cref="MakeEntry"/> made them).</summary>
    public static KeyValueStore FromEntries(IReadOnlyCollection<byte[]> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var store = new KeyValueStore(entries.Count);
        foreach (byte[] entry in entries) store.Put(entry);
        return store;
    }

    /// <summary>Adds <paramref name="entry"/> (laid out as <see cref="MakeEntry"/> does), replacing the entry of its key.</summary>
    public void Put(byte[] entry)
    {
        if (_entries.Add(entry)) return;
        _byKey.Remove(KeyOf(entry)); // the key is set: the new entry wins
        _entries.Add(entry);
    }

    /// <summary>Number of keys.</summary>
    public int Count => _entries.Count;

    /// <summary>The value of <paramref name="key"/>, or false if it is not set.</summary>
    public bool TryGet(ReadOnlySpan<byte> key, out ReadOnlyMemory<byte> value)
    {
        if (_byKey.TryGetValue(key, out byte[]? entry))
        {
            value = ValueOf(entry);
            return true;
        }
        value = default;
        return false;
    }

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/>.</summary>
    public void Set(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        byte[] entry = MakeEntry(key, value);
        _byKey.Remove(key);
        _entries.Add(entry);
    }

    /// <summary>Removes <paramref name="key"/>; true if it was set.</summary>
    public bool Remove(ReadOnlySpan<byte> key) => _byKey.Remove(key);

    /// <summary>Every entry, by reference (a point-in-time copy of the set, not of the bytes).</summary>
    public byte[][] Entries()
    {
        var all = new byte[_entries.Count][];
        _entries.CopyTo(all);
        return all;
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

    /// <summary>Hashes and compares entries by their key part, and finds them by a key alone.</summary>
    private sealed class EntryComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        private static readonly long Seed = Random.Shared.NextInt64();

        public static EntryComparer Instance { get; } = new();

        public bool Equals(byte[]? x, byte[]? y) => x is not null && y is not null && KeyOf(x).SequenceEqual(KeyOf(y));

        public int GetHashCode(byte[] entry) => GetHashCode(KeyOf(entry));

        public bool Equals(ReadOnlySpan<byte> key, byte[] entry) => key.SequenceEqual(KeyOf(entry));

        public int GetHashCode(ReadOnlySpan<byte> key) => (int)XxHash3.HashToUInt64(key, Seed);

        public byte[] Create(ReadOnlySpan<byte> key) => MakeEntry(key, []);
    }
}
