namespace Tandem.Protocol;

/// <summary>32-bit FNV-1a (offset basis 2166136261, prime 16777619), the hash PUTHASH stores.</summary>
public static class Fnv1a
{
    private const uint OffsetBasis = 2166136261;
    private const uint Prime = 16777619;

    /// <summary>Hash of <paramref name="first"/> followed by <paramref name="second"/>, as if concatenated.</summary>
    public static uint Hash(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        uint h = OffsetBasis;
        foreach (byte b in first) h = (h ^ b) * Prime;
        foreach (byte b in second) h = (h ^ b) * Prime;
        return h;
    }

    /// <summary>The value PUTHASH stores: the unsigned decimal of the hash of <c>old + value</c>, as ASCII bytes.</summary>
    public static byte[] PutHashValue(ReadOnlySpan<byte> old, ReadOnlySpan<byte> value) =>
        System.Text.Encoding.ASCII.GetBytes(Hash(old, value).ToString(System.Globalization.CultureInfo.InvariantCulture));
}
