using System.Buffers;
using System.Buffers.Binary;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.Server;

/// <summary>
/// <c>REPL.APPLY view from session first-seq max-value-bytes [fields arg...]...</c>: writes forwarded from the
/// primary to its backup, numbered from <see cref="FirstSeq"/>, each the data command the primary applied
/// (<see cref="Operation"/>) with the time it applied it at. The backup applies them with the primary's value
/// limit, so both decide the same. Written straight into the replication stream's buffer (no copy of the
/// arguments but that one), parsed from a command the same way. An empty batch carries no writes: its
/// acknowledgement confirms the reads sent before it.
/// </summary>
/// <remarks>
/// An operation's <c>fields</c> are one binary argument of <see cref="FieldBytes"/> bytes, little-endian: the time
/// (Unix ms), client id, request number and acked-through mark (8 bytes each), then the count of the arguments
/// that follow (4 bytes). One fixed-size argument instead of five decimal ones halves what the backup parses per
/// write, which is most of its work (docs/benchmarks.md).
/// </remarks>
internal readonly struct ApplyBatch
{
    /// <summary>Arguments of a forwarded operation before the command's own: its fields.</summary>
    public const int OpFields = 1;

    /// <summary>Bytes of an operation's fields: now, client-id, request-seq, acked-through (8 each), argc (4).</summary>
    public const int FieldBytes = 36;

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
        int count = HeaderFields;
        for (int i = 0; i < Ops.Count; i++) count += OpFields + Ops[i].Args.Length;
        RespWriter.WriteArrayHeader(w, count);
        RespWriter.WriteBulk(w, "REPL.APPLY"u8);
        RespWriter.WriteBulk(w, View);
        RespWriter.WriteBulk(w, From);
        RespWriter.WriteBulk(w, Session);
        RespWriter.WriteBulk(w, FirstSeq);
        RespWriter.WriteBulk(w, MaxValueBytes);
        Span<byte> fields = stackalloc byte[FieldBytes];
        for (int i = 0; i < Ops.Count; i++)
        {
            Operation op = Ops[i];
            WriteFields(fields, op);
            RespWriter.WriteBulk(w, fields);
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
            ReadOnlySpan<byte> fields = cmd[i];
            if (fields.Length != FieldBytes) throw new FormatException($"operation fields of {fields.Length} bytes, not {FieldBytes}");
            int argc = BinaryPrimitives.ReadInt32LittleEndian(fields[32..]);
            if (argc < 1 || argc > cmd.Count - i - OpFields) throw new FormatException("bad argument count");
            byte[][] args = cmd.Args[(i + OpFields)..(i + OpFields + argc)];
            ops.Add(new Operation(args, BinaryPrimitives.ReadInt64LittleEndian(fields), BinaryPrimitives.ReadInt64LittleEndian(fields[8..]),
                BinaryPrimitives.ReadInt64LittleEndian(fields[16..]), BinaryPrimitives.ReadInt64LittleEndian(fields[24..])));
            i += OpFields + argc;
        }
        return ops;
    }

    /// <summary>Lays out the fields of <paramref name="op"/> (<see cref="FieldBytes"/> bytes) as the backup reads them.</summary>
    public static void WriteFields(Span<byte> fields, in Operation op)
    {
        BinaryPrimitives.WriteInt64LittleEndian(fields, op.Now);
        BinaryPrimitives.WriteInt64LittleEndian(fields[8..], op.ClientId);
        BinaryPrimitives.WriteInt64LittleEndian(fields[16..], op.RequestSeq);
        BinaryPrimitives.WriteInt64LittleEndian(fields[24..], op.AckedThrough);
        BinaryPrimitives.WriteInt32LittleEndian(fields[32..], op.Args.Length);
    }

    /// <summary>The primary's value limit in a <c>REPL.APPLY</c> command.</summary>
    public static long MaxValueBytesOf(RespCommand cmd) => Long(cmd, HeaderFields - 1);

    private static long Long(RespCommand cmd, int i) =>
        cmd.TryLong(i, out long v) ? v : throw new FormatException($"argument {i} is not an integer");

    /// <inheritdoc />
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"REPL.APPLY view {View} from {From} session {Session} writes {FirstSeq}..{FirstSeq + Ops.Count - 1}");
}
