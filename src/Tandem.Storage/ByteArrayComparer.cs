using System.IO.Hashing;

namespace Tandem.Storage;

/// <summary>Compares keys by content, so binary keys work as Redis users expect. The hash is seeded per
/// process so that a client cannot choose keys that all collide.</summary>
public sealed class ByteArrayComparer : IEqualityComparer<byte[]>
{
    private static readonly long Seed = Random.Shared.NextInt64();

    /// <summary>The shared instance.</summary>
    public static ByteArrayComparer Instance { get; } = new();

    /// <inheritdoc />
    public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

    /// <inheritdoc />
    public int GetHashCode(byte[] obj) => (int)XxHash3.HashToUInt64(obj, Seed);
}
