using System.Buffers;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.Server;

/// <summary>
/// <c>REPL.APPLY view from session first-seq max-value-bytes [now client-id request-seq acked-through argc arg...]...</c>:
/// writes forwarded from the primary to its backup, numbered from <see cref="FirstSeq"/>, each the data command
/// the primary applied (<see cref="Operation"/>) with the time it applied it at. The backup applies them with the
/// primary's value limit, so both decide the same. Written straight into the replication stream's buffer (no copy
/// of the arguments but that one), parsed from a command the same way. An empty batch carries no writes: its
/// acknowledgement confirms the reads sent before it.
/// </summary>
internal readonly struct ApplyBatch
{
    /// <summary>Fields of a forwarded operation before its arguments: now client-id request-seq acked-through argc.</summary>
    public const int OpFields = 5;

    /// <summary>Fields before the first operation: the name, view, from, session, first-seq and max-value-bytes.</summary>
    public const int HeaderFields = 6;

    public ApplyBatch(long view, string from, string session, long firstSeq, long maxValueBytes, IReadOnlyList<Operation> ops)
    {
        View = view;
        From = from;
        Session = session;
        FirstSeq = firstSeq;
        MaxValueBytes = maxValueBytes;
        Ops = ops;
    }

    public long View { get; }
    public string From { get; }
    public string Session { get; }
    public long FirstSeq { get; }
    public long MaxValueBytes { get; }
    public IReadOnlyList<Operation> Ops { get; }

    /// <summary>Bytes the batch holds on the wire, roughly (for the outbox's bound).</summary>
    public static long SizeOf(in Operation op) => op.Size;

    /// <summary>Writes the whole frame.</summary>
    public void WriteTo(IBufferWriter<byte> w)
    {
        int fields = HeaderFields;
        for (int i = 0; i < Ops.Count; i++) fields += OpFields + Ops[i].Args.Length;
        RespWriter.WriteArrayHeader(w, fields);
        RespWriter.WriteBulk(w, "REPL.APPLY"u8);
        RespWriter.WriteBulk(w, View);
        RespWriter.WriteBulk(w, From);
        RespWriter.WriteBulk(w, Session);
        RespWriter.WriteBulk(w, FirstSeq);
        RespWriter.WriteBulk(w, MaxValueBytes);
        for (int i = 0; i < Ops.Count; i++)
        {
            Operation op = Ops[i];
            RespWriter.WriteBulk(w, op.Now);
            RespWriter.WriteBulk(w, op.ClientId);
            RespWriter.WriteBulk(w, op.RequestSeq);
            RespWriter.WriteBulk(w, op.AckedThrough);
            RespWriter.WriteBulk(w, op.Args.Length);
            foreach (byte[] arg in op.Args) RespWriter.WriteBulk(w, arg);
        }
    }

    /// <summary>Reads the operations of a <c>REPL.APPLY</c> command whose header the caller has checked.</summary>
    /// <exception cref="FormatException">The operations are malformed.</exception>
    public static List<Operation> ParseOps(RespCommand cmd)
    {
        ArgumentNullException.ThrowIfNull(cmd);
        var ops = new List<Operation>();
        for (int i = HeaderFields; i < cmd.Count;)
        {
            if (i + OpFields > cmd.Count) throw new FormatException("operation cut short");
            long argc = Long(cmd, i + 4);
            if (argc < 1 || argc > cmd.Count - i - OpFields) throw new FormatException("bad argument count");
            byte[][] args = cmd.Args[(i + OpFields)..(i + OpFields + (int)argc)];
            ops.Add(new Operation(args, Long(cmd, i), Long(cmd, i + 1), Long(cmd, i + 2), Long(cmd, i + 3)));
            i += OpFields + (int)argc;
        }
        return ops;
    }

    /// <summary>The primary's value limit in a <c>REPL.APPLY</c> command.</summary>
    public static long MaxValueBytesOf(RespCommand cmd) => Long(cmd, HeaderFields - 1);

    private static long Long(RespCommand cmd, int i) =>
        cmd.TryLong(i, out long v) ? v : throw new FormatException($"argument {i} is not an integer");

    /// <inheritdoc />
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"REPL.APPLY view {View} from {From} session {Session} writes {FirstSeq}..{FirstSeq + Ops.Count - 1}");
}
