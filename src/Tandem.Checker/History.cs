namespace Tandem.Checker;

/// <summary>The kind of a key-value operation in a history.</summary>
public enum OpKind
{
    /// <summary>Read the value; output is the value read (<c>""</c> when missing).</summary>
    Get,
    /// <summary>Set the value to the input; output is ignored.</summary>
    Put,
    /// <summary>Store the decimal FNV-1a 32-bit hash of old value + input; output is the old value.</summary>
    PutHash,
    /// <summary>Append the input; output is the new length in UTF-8 bytes, as a decimal string.</summary>
    Append,
    /// <summary>Remove the key; output is <c>"1"</c> if it was present, else <c>"0"</c>.</summary>
    Delete,
}

/// <summary>What the client knows about whether an operation took effect.</summary>
public enum Outcome
{
    /// <summary>The operation completed and its output is known.</summary>
    Ok,
    /// <summary>
    /// Timeout, lost connection or error after sending: the operation may or may not have taken effect,
    /// at any time after its call. Its output and return time are ignored.
    /// </summary>
    Unknown,
    /// <summary>The operation definitely did not take effect; it is dropped before checking.</summary>
    Failed,
}

/// <summary>One operation of a concurrent history, as observed by a client.</summary>
/// <param name="Process">The client (process, thread, connection) that issued it; used for display only.</param>
/// <param name="Kind">The operation.</param>
/// <param name="Key">The key it touches. Keys are checked independently.</param>
/// <param name="Input">The value argument (Put, PutHash, Append); ignored for Get and Delete.</param>
/// <param name="Output">
/// What the operation returned: Get the value read (<c>""</c> for missing), PutHash the old value, Append the new
/// length as a decimal, Delete <c>"1"</c>/<c>"0"</c>, Put ignored. <c>null</c> on an <see cref="Outcome.Ok"/>
/// operation means "not observed": the operation must still take effect inside its interval, but its output is not checked.
/// </param>
/// <param name="Call">Monotonic timestamp at which the call was issued (e.g. <see cref="System.Diagnostics.Stopwatch"/> ticks).</param>
/// <param name="Return">Monotonic timestamp at which the reply arrived; at least <paramref name="Call"/>. Ignored for <see cref="Outcome.Unknown"/>.</param>
/// <param name="Outcome">Whether the operation completed, may have taken effect, or definitely did not.</param>
public sealed record HistoryOp(int Process, OpKind Kind, string Key, string Input, string? Output, long Call, long Return, Outcome Outcome);
