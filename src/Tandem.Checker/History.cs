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
    /// <summary>
    /// Add the input (a decimal, <c>"1"</c> for INCR, negative for DECRBY) to the integer value (missing counts as 0); output
    /// is the new value in decimal, or <c>"error"</c> when the value is not an integer or the sum would overflow (the
    /// state is then unchanged). The key's deadline, if any, is kept.
    /// </summary>
    Incr,
    /// <summary>
    /// SET with options (<see cref="HistoryOp.Options"/>: any of <c>NX</c>, <c>XX</c>, <c>GET</c>, and <c>EX</c> for a deadline
    /// too far away to pass during the history, or <c>KEEPTTL</c>). Output: with GET the old value (<c>""</c> when missing;
    /// GETSET is Set with GET), else <c>"1"</c> if it set and <c>"0"</c> if NX or XX refused.
    /// </summary>
    Set,
    /// <summary>Remove the key and return its value (GETDEL); output is the old value (<c>""</c> when missing).</summary>
    GetDel,
    /// <summary>
    /// Give the key a deadline too far away to pass during the history (EXPIRE with a large number), with the condition in
    /// <see cref="HistoryOp.Options"/> (<c>""</c>, <c>NX</c> or <c>XX</c>); output <c>"1"</c> if set, else <c>"0"</c>.
    /// </summary>
    Expire,
    /// <summary>Remove the key's deadline; output <c>"1"</c> if it had one, else <c>"0"</c>.</summary>
    Persist,
    /// <summary>Read the time to live (TTL or PTTL); output <c>"-2"</c> when missing, <c>"-1"</c> without a deadline, else any number from 0.</summary>
    Ttl,
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
/// <param name="Options">The options of a <see cref="OpKind.Set"/> or <see cref="OpKind.Expire"/>, as space-separated words; <c>""</c> otherwise.</param>
public sealed record HistoryOp(int Process, OpKind Kind, string Key, string Input, string? Output, long Call, long Return, Outcome Outcome, string Options = "");
