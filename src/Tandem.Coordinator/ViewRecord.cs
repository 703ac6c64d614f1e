using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Tandem.Protocol;

namespace Tandem.Coordinator;

/// <summary>
/// The durable part of the view service, as one entry of the coordinator group's log: the current view,
/// whether its primary has acknowledged it, and the newest acknowledged view. Every entry is the whole state
/// after one change (a new view, an ack, a new history), so applying the log in order is replacing the state.
/// Each change also names the state it was decided from (<paramref name="BaseNumber"/>, <paramref name="BaseAcked"/>):
/// a record whose base is not the state it meets is not applied, on any member (every member applies the same
/// log from the same start, so they agree), so a proposal that outlived its leader's term cannot take effect
/// on top of a later decision. Who pinged when is not in it: that is the leader's soft state.
/// </summary>
/// <param name="View">The current view.</param>
/// <param name="Acked">Whether <paramref name="View"/>'s primary has acknowledged it.</param>
/// <param name="LastAcked">The newest acknowledged view (<see cref="View.Empty"/> in a history where none was).</param>
/// <param name="BaseNumber">The view number this change was decided from; -1 for a whole state (a snapshot).</param>
/// <param name="BaseAcked">Whether that view was acknowledged when this change was decided.</param>
public readonly record struct ViewRecord(View View, bool Acked, View LastAcked, long BaseNumber = -1, bool BaseAcked = false)
{
    private const byte Version = 2;

    /// <summary>The state before any view: view 0, nothing acknowledged.</summary>
    public static ViewRecord Initial { get; } = new(View.Empty, false, View.Empty);

    /// <summary>Writes the record: a version byte, the view, the ack flag, the last acknowledged view.</summary>
    public void WriteTo(IBufferWriter<byte> writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        Span<byte> head = writer.GetSpan(1);
        head[0] = Version;
        writer.Advance(1);
        WriteView(writer, View);
        Span<byte> flag = writer.GetSpan(1);
        flag[0] = Acked ? (byte)1 : (byte)0;
        writer.Advance(1);
        WriteView(writer, LastAcked);
        Span<byte> based = writer.GetSpan(9);
        BinaryPrimitives.WriteInt64LittleEndian(based, BaseNumber);
        based[8] = BaseAcked ? (byte)1 : (byte)0;
        writer.Advance(9);
    }

    /// <summary>The record's bytes.</summary>
    public byte[] ToBytes()
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        WriteTo(buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads a record written by <see cref="WriteTo"/>; false when the bytes are not one.</summary>
    public static bool TryParse(ReadOnlySequence<byte> bytes, out ViewRecord record)
    {
        record = Initial;
        var reader = new SequenceReader<byte>(bytes);
        if (!reader.TryRead(out byte version) || version != Version) return false;
        if (!TryReadView(ref reader, out View view) || !reader.TryRead(out byte acked) || acked > 1) return false;
        if (!TryReadView(ref reader, out View lastAcked)) return false;
        if (!reader.TryReadLittleEndian(out long baseNumber) || baseNumber < -1 || !reader.TryRead(out byte baseAcked) || baseAcked > 1 || !reader.End)
            return false;
        record = new ViewRecord(view, acked == 1, lastAcked, baseNumber, baseAcked == 1);
        return true;
    }

    private static void WriteView(IBufferWriter<byte> writer, View view)
    {
        Span<byte> number = writer.GetSpan(8);
        BinaryPrimitives.WriteInt64LittleEndian(number, view.Number);
        writer.Advance(8);
        WriteString(writer, view.Primary);
        WriteString(writer, view.Backup);
    }

    private static void WriteString(IBufferWriter<byte> writer, string text)
    {
        int length = Encoding.UTF8.GetByteCount(text);
        Span<byte> span = writer.GetSpan(4 + length);
        BinaryPrimitives.WriteInt32LittleEndian(span, length);
        Encoding.UTF8.GetBytes(text, span[4..]);
        writer.Advance(4 + length);
    }

    private static bool TryReadView(ref SequenceReader<byte> reader, out View view)
    {
        view = View.Empty;
        if (!reader.TryReadLittleEndian(out long number) || number < 0) return false;
        if (!TryReadString(ref reader, out string primary) || !TryReadString(ref reader, out string backup)) return false;
        view = new View(number, primary, backup);
        return true;
    }

    private static bool TryReadString(ref SequenceReader<byte> reader, out string text)
    {
        text = "";
        if (!reader.TryReadLittleEndian(out int length) || length < 0 || length > 1024 || reader.Remaining < length) return false;
        byte[] bytes = new byte[length];
        if (!reader.TryCopyTo(bytes)) return false;
        reader.Advance(length);
        text = Encoding.UTF8.GetString(bytes);
        return true;
    }
}

/// <summary>
/// Where the view service commits its durable changes: the coordinator group's replicated log. The leader's
/// engine proposes one record at a time; every member applies committed records through
/// <see cref="ViewService.Apply"/>, in log order.
/// </summary>
public interface IViewLog
{
    /// <summary>
    /// Commits <paramref name="record"/>. True once it is committed by a majority and applied on this member;
    /// false when this member stopped leading first (the record may still commit later, in log order).
    /// </summary>
    Task<bool> CommitAsync(ViewRecord record);
}
