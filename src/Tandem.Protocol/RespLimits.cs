namespace Tandem.Protocol;

/// <summary>Bounds the RESP reader enforces so that no input can make a node allocate without limit.</summary>
public sealed record RespLimits
{
    /// <summary>Largest bulk string accepted, in bytes (a key or a value). Default 16 MiB.</summary>
    public int MaxBulkLength { get; init; } = 16 * 1024 * 1024;

    /// <summary>Most elements accepted in one command array. Default 1,048,576.</summary>
    public int MaxArrayLength { get; init; } = 1024 * 1024;

    /// <summary>Longest inline command line (no leading <c>*</c>), in bytes. Default 64 KiB.</summary>
    public int MaxInlineLength { get; init; } = 64 * 1024;

    /// <summary>Defaults suitable for a public-facing node.</summary>
    public static RespLimits Default { get; } = new();
}
