using System.Text;
using Tandem.Storage;

namespace Tandem.UnitTests;

/// <summary>The store's table, through its resizes: spread over writes, and every key readable, once, throughout.</summary>
public class KeyValueStoreTests
{
    private static byte[] K(int i) => Encoding.ASCII.GetBytes($"key:{i}");

    private static byte[] V(int i, int version = 0) => Encoding.ASCII.GetBytes($"value:{i}:{version}");

    /// <summary>
    /// Fills a store (keys from <paramref name="from"/> up) until a resize starts with at least
    /// <paramref name="atLeast"/> keys; returns how many keys it holds then.
    /// </summary>
    private static int FillUntilResizing(KeyValueStore store, int from = 0, int atLeast = 5000)
    {
        for (int i = from; ; i++)
        {
            bool before = store.Resizing;
            store.Set(K(i), V(i));
            if (store.Resizing && !before && i + 1 >= atLeast) return i + 1;
        }
    }

    [Fact]
    public void Growth_IsSpreadOverTheWritesThatFollow_AndEveryKeyStaysReadable()
    {
        var store = new KeyValueStore();
        int n = FillUntilResizing(store); // a table of thousands of slots: its move takes many writes
        int writes = 0;
        while (store.Resizing)
        {
            store.Set(K(n), V(n));
            n++;
            writes++;
            for (int i = 0; i < n; i += 7) Assert.True(store.TryGet(K(i), out ReadOnlyMemory<byte> v) && v.Span.SequenceEqual(V(i)), $"key {i} unreadable during the resize");
        }
        Assert.True(writes > 1, "the resize finished within one write");
        Assert.Equal(n, store.Count);
        for (int i = 0; i < n; i++) Assert.True(store.Contains(K(i)));
    }

    [Fact]
    public void DuringAResize_OverwritesAndRemovesOfKeysNotMovedYet_LeaveOneCopy()
    {
        var store = new KeyValueStore();
        int n = FillUntilResizing(store);
        // Keys written first sit low in the old table; the last ones written are likely not moved yet.
        for (int i = n - 1; i >= n - 40; i--) store.Set(K(i), V(i, 1));
        for (int i = n - 41; i >= n - 60; i--) Assert.True(store.Remove(K(i)));
        Assert.True(store.Resizing, "the resize was over before the test could look at it");
        byte[][] entries = store.Entries();
        Assert.Equal(store.Count, entries.Length);
        Assert.Equal(n - 20, store.Count);
        Assert.Equal(entries.Length, entries.Select(e => Encoding.ASCII.GetString(KeyValueStore.KeyOf(e))).Distinct().Count());
        for (int i = n - 1; i >= n - 40; i--) Assert.True(store.TryGet(K(i), out ReadOnlyMemory<byte> v) && v.Span.SequenceEqual(V(i, 1)));
        for (int i = n - 41; i >= n - 60; i--) Assert.False(store.Contains(K(i)));
        while (store.Resizing) store.Set(K(n), V(n++));
        Assert.Equal(store.Count, store.Entries().Length);
        Assert.Equal(store.Count, store.Entries().Select(e => Encoding.ASCII.GetString(KeyValueStore.KeyOf(e))).Distinct().Count());
    }

    [Fact]
    public void Scan_AcrossAResizeThatStartsAndEndsMidIteration_ReturnsEveryKeyPresentThroughout()
    {
        var store = new KeyValueStore();
        int n = FillUntilResizing(store); // the scan starts as a resize does, and goes on after it ends
        var seen = new HashSet<string>();
        var batch = new List<byte[]>();
        ulong cursor = 0;
        bool sawResize = false;
        int next = 100_000;
        do
        {
            batch.Clear();
            cursor = store.Scan(cursor, 10, batch);
            foreach (byte[] e in batch) seen.Add(Encoding.ASCII.GetString(KeyValueStore.KeyOf(e)));
            store.Set(K(next), V(next)); // new keys may or may not be returned
            next++;
            sawResize |= store.Resizing;
        }
        while (cursor != 0);
        Assert.True(sawResize, "no resize happened during the scan");
        for (int i = 0; i < n; i++) Assert.Contains($"key:{i}", seen);
    }

    [Fact]
    public void Shrink_IsSpreadOverWrites_AndMatchesADictionary_ThroughRandomWrites()
    {
        var store = new KeyValueStore();
        var model = new Dictionary<int, int>();
        var random = new Random(5);
        bool shrank = false;
        for (int step = 0; step < 60_000; step++)
        {
            // Grow to about 8,000 keys, then remove most of them, twice.
            bool removing = step % 30_000 > 15_000;
            int k = random.Next(10_000);
            if (removing || random.Next(4) == 0)
            {
                Assert.Equal(model.Remove(k), store.Remove(K(k)));
            }
            else
            {
                int version = random.Next(1000);
                store.Set(K(k), V(k, version));
                model[k] = version;
            }
            shrank |= removing && store.Resizing;
            if (step % 997 == 0)
            {
                Assert.Equal(model.Count, store.Count);
                foreach ((int key, int version) in model) Assert.True(store.TryGet(K(key), out ReadOnlyMemory<byte> v) && v.Span.SequenceEqual(V(key, version)));
                Assert.Equal(model.Count, store.Entries().Length);
                if (model.Count > 0) Assert.NotNull(store.RandomEntry(random));
            }
        }
        Assert.True(shrank, "no shrink happened");
    }
}
