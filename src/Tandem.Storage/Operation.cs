namespace Tandem.Storage;

/// <summary>The writes the state machine knows. Values are stable: they travel in forwarded batches.</summary>
public enum OpCode : byte
{
    /// <summary>Set the value.</summary>
    Set = 1,
    /// <summary>Store fnv1a32(old + value) in decimal; reply the old value.</summary>
    PutHash = 2,
    /// <summary>Append to the value; reply the new length.</summary>
    Append = 3,
    /// <summary>Remove the key; reply 1 if it existed, else 0.</summary>
    Delete = 4,
    /// <summary>Issue a new client id for exactly-once requests (key and value empty); reply the id.</summary>
    Register = 5,
}

/// <summary>
/// One write, exactly as it is sequenced on the primary and re-applied on the backup. Applying it is
/// deterministic, so both copies compute the same reply and the same new state.
/// <paramref name="ClientId"/> is 0 for a write without exactly-once tracking (a plain RESP client).
/// </summary>
public readonly record struct Operation(OpCode Code, byte[] Key, byte[] Value, long ClientId = 0, long RequestSeq = 0, long AckedThrough = 0)
{
    /// <summary>True when the write carries a client id and request number.</summary>
    public bool IsTracked => ClientId != 0;
}
