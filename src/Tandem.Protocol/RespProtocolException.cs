namespace Tandem.Protocol;

/// <summary>Thrown by <see cref="RespReader"/> for input that is not valid RESP or breaks a <see cref="RespLimits"/> bound.
/// The connection that sent it cannot be resynchronised and should be closed after an error reply.</summary>
public sealed class RespProtocolException(string message) : Exception(message);
