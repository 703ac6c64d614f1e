using System.Buffers;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.Server;

/// <summary>
/// <c>REPL.APPLY view from session first-seq [code key value client-id request-seq acked-through]...</c>: writes
/// forwarded from the primary to its backup, numbered from <see cref="FirstSeq"/>. Written straight into the
/// replication stream's buffer (no copy of the keys and values but that one), parsed from a command the same way.
/// An empty batch carries no writes: its acknowledgement confirms the reads sent before it.
/// </summary>
internal readonly struct ApplyBatch
{
    /// <summary>Fields per forwarded operation: code key value client-id request-seq acked-through.</summary>
    public const int OpFields = 6;

    /// <summary>Fields before the first operation: the name, view, from, session and first-seq.</summary>
    public const int HeaderFields = 5;

    public ApplyBatch(long view, string from, string session, long firstSeq, IReadOnlyList<Operation> ops)
    {
        View = view;
        From = from;
        Session = session;
        FirstSeq = firstSeq;
        Ops = ops;
    }

    public long View { get; }
    public string From { get; }
    public string Session { get; }
    public long FirstSeq { get; }
    public IReadOnlyList<Operation> Ops { get; }

    /// <summary>Bytes the batch holds on the wire, roughly (for the outbox's bound).</summary>
    public static long SizeOf(in Operation op) => op.Key.Length + op.Value.Length + 64;

    /// <summary>Writes the whole frame.</summary>
    public void WriteTo(IBufferWriter<byte> w)
    {
        RespWriter.WriteArrayHeader(w, HeaderFields + Ops.Count * OpFields);
        RespWriter.WriteBulk(w, "REPL.APPLY"u8);
        RespWriter.WriteBulk(w, View);
        RespWriter.WriteBulk(w, From);
        RespWriter.WriteBulk(w, Session);
        RespWriter.WriteBulk(w, FirstSeq);
        for (int i = 0; i < Ops.Count; i++)
        {
            Operation op = Ops[i];
            Span<byte> code = [(byte)('0' + (int)op.Code)];
            RespWriter.WriteBulk(w, code);
            RespWriter.WriteBulk(w, op.Key);
            RespWriter.WriteBulk(w, op.Value);
            RespWriter.WriteBulk(w, op.ClientId);
            RespWriter.WriteBulk(w, op.RequestSeq);
            RespWriter.WriteBulk(w, op.AckedThrough);
        }
    }

    /// <summary>Reads the operations of a <c>REPL.APPLY</c> command whose header the caller has checked.</summary>
    /// <exception cref="FormatException">The operations are malformed.</exception>
    public static List<Operation> ParseOps(RespCommand cmd)
    {
        ArgumentNullException.ThrowIfNull(cmd);
        if ((cmd.Count - HeaderFields) % OpFields != 0) throw new FormatException("batch is not a whole number of operations");
        var ops = new List<Operation>((cmd.Count - HeaderFields) / OpFields);
        for (int i = HeaderFields; i < cmd.Count; i += OpFields)
        {
            byte[] code = cmd[i];
            if (code.Length != 1 || code[0] is < (byte)'1' or > (byte)'0' + (byte)OpCode.Register) throw new FormatException("bad operation code");
            ops.Add(new Operation((OpCode)(code[0] - '0'), cmd[i + 1], cmd[i + 2], Long(cmd, i + 3), Long(cmd, i + 4), Long(cmd, i + 5)));
        }
        return ops;
    }

    private static long Long(RespCommand cmd, int i) =>
        cmd.TryLong(i, out long v) ? v : throw new FormatException($"argument {i} is not an integer");

    /// <inheritdoc />
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"REPL.APPLY view {View} from {From} session {Session} writes {FirstSeq}..{FirstSeq + Ops.Count - 1}");
}
