using System.Buffers;
using System.Text;
using Tandem.Protocol;

namespace Tandem.UnitTests;

public class RespReaderUnitTests
{
    private static ReadOnlySequence<byte> Bytes(string s) => new(Encoding.ASCII.GetBytes(s));

    [Fact]
    public void TryReadCommand_CompleteArray_ParsesAllArgumentsAndConsumesFrame()
    {
        var buffer = Bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*1\r\n$4\r\nPING\r\n");
        Assert.True(RespReader.TryReadCommand(ref buffer, RespLimits.Default, out RespCommand? cmd));
        Assert.Equal("SET k value", cmd!.ToString());
        Assert.True(RespReader.TryReadCommand(ref buffer, RespLimits.Default, out cmd));
        Assert.Equal("PING", cmd!.Name);
        Assert.Equal(0, buffer.Length);
    }

    [Theory]
    [InlineData("*2\r\n$3\r\nGET\r\n")]
    [InlineData("*2\r\n$3\r\nGET\r\n$5\r\nab")]
    [InlineData("*2\r")]
    [InlineData("$")]
    public void TryReadCommand_PartialFrame_ConsumesNothing(string partial)
    {
        var buffer = Bytes(partial);
        Assert.False(RespReader.TryReadCommand(ref buffer, RespLimits.Default, out _));
        Assert.Equal(partial.Length, buffer.Length);
    }

    [Fact]
    public void TryReadCommand_SplitAcrossSegments_Parses()
    {
        byte[] all = Encoding.ASCII.GetBytes("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
        for (int cut = 1; cut < all.Length; cut++)
        {
            var buffer = Segmented(all[..cut], all[cut..]);
            Assert.True(RespReader.TryReadCommand(ref buffer, RespLimits.Default, out RespCommand? cmd));
            Assert.Equal("GET key", cmd!.ToString());
        }
    }

    /// <summary>
    /// A length line read whole in one segment (the one-pass path) is decided exactly as when it is split across
    /// two segments (the general path): the same value, or the same error.
    /// </summary>
    [Theory]
    [InlineData("3")]
    [InlineData("0")]
    [InlineData("007")]
    [InlineData("-0")]
    [InlineData("-1")]
    [InlineData("-2")]
    [InlineData("+3")]
    [InlineData("")]
    [InlineData("3 ")]
    [InlineData("3a")]
    [InlineData("123456789012345678")]
    [InlineData("1234567890123456789")]
    [InlineData("9223372036854775807")]
    [InlineData("9223372036854775808")]
    [InlineData("-9223372036854775808")]
    [InlineData("99999999999999999999999")]
    public void LengthLine_ReadInOnePiece_IsDecidedAsWhenSplit(string length)
    {
        string Outcome(ReadOnlySequence<byte> input, bool asValue)
        {
            try
            {
                if (asValue) return RespReader.TryReadValue(ref input, RespLimits.Default, out RespValue? v) ? v!.ToString() : "incomplete";
                return RespReader.TryReadCommand(ref input, RespLimits.Default, out RespCommand? c) ? c!.ToString() : "incomplete";
            }
            catch (RespProtocolException e)
            {
                return "error: " + e.Message;
            }
        }
        foreach ((string frame, bool asValue) in new[] { ($"*1\r\n${length}\r\nabc\r\n", false), ($":{length}\r\n", true), ($"*{length}\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", false) })
        {
            byte[] all = Encoding.ASCII.GetBytes(frame);
            string whole = Outcome(new ReadOnlySequence<byte>(all), asValue);
            for (int cut = 1; cut < all.Length; cut++)
                Assert.Equal(whole, Outcome(Segmented(all[..cut], all[cut..]), asValue));
        }
    }

    [Fact]
    public void TryReadCommand_InlineCommand_SplitsOnSpaces()
    {
        var buffer = Bytes("SET  a   b\r\n");
        Assert.True(RespReader.TryReadCommand(ref buffer, RespLimits.Default, out RespCommand? cmd));
        Assert.Equal(["SET", "a", "b"], cmd!.Args.Select(Encoding.ASCII.GetString));
    }

    [Theory]
    [InlineData("*2\r\n$3\r\nGET\r\n$abc\r\n", "invalid length")]
    [InlineData("*0\r\n", "at least one")]
    [InlineData("*-5\r\n", "negative")]
    [InlineData("*1\r\n:5\r\n", "expected '$'")]
    [InlineData("*1\r\n$-1\r\n", "null bulk")]
    [InlineData("*1\r\n$3\r\nabcXY", "CRLF")]
    [InlineData("*1\r\n$1073741824\r\n", "longer than")]
    [InlineData("*99999999999\r\n", "longer than")]
    [InlineData("*1\n", "length line")]
    public void TryReadCommand_Malformed_ThrowsProtocolError(string input, string message)
    {
        var buffer = Bytes(input);
        var e = Assert.Throws<RespProtocolException>(() => RespReader.TryReadCommand(ref buffer, RespLimits.Default, out _));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void TryReadCommand_EndlessLengthLine_IsRejectedBeforeItEnds()
    {
        var buffer = Bytes("*" + new string('1', 100));
        Assert.Throws<RespProtocolException>(() => RespReader.TryReadCommand(ref buffer, RespLimits.Default, out _));
    }

    [Fact]
    public void TryReadCommand_InlineLongerThanLimit_Throws()
    {
        var buffer = Bytes(new string('a', 200));
        var limits = new RespLimits { MaxInlineLength = 100 };
        Assert.Throws<RespProtocolException>(() => RespReader.TryReadCommand(ref buffer, limits, out _));
    }

    [Fact]
    public void TryReadValue_EveryReplyType_RoundTripsThroughWriter()
    {
        RespValue original = RespValue.Array([
            RespValue.Simple("OK"), RespValue.Error("ERR bad"), RespValue.Int(-42), RespValue.Bulk("héllo"),
            RespValue.NullBulk, RespValue.Array(null), RespValue.Array([RespValue.Int(1)]),
        ]);
        var writer = new ArrayBufferWriter<byte>();
        RespWriter.WriteValue(writer, original);
        var buffer = new ReadOnlySequence<byte>(writer.WrittenMemory);
        Assert.True(RespReader.TryReadValue(ref buffer, RespLimits.Default, out RespValue? parsed));
        Assert.Equal(original.ToString(), parsed!.ToString());
        Assert.True(parsed.Items![4].IsNull);
        Assert.Equal("ERR", parsed.Items[1].ErrorCode);
    }

    [Fact]
    public void WriteError_WithNewlines_StaysOneLine()
    {
        var writer = new ArrayBufferWriter<byte>();
        RespWriter.WriteError(writer, "ERR a\r\nb");
        Assert.Equal("-ERR a  b\r\n", Encoding.ASCII.GetString(writer.WrittenSpan));
    }

    [Theory]
    [InlineData("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n")]
    [InlineData("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n")]
    [InlineData("SET  a   b\r\n")]
    [InlineData("*2\r\n$3\r\nGET\r\n$abc\r\n")]
    [InlineData("*2\r\n$3\r\nGET\r\n:5\r\n")]
    [InlineData("*1\r\n$3\r\nabcXY")]
    public void TryReadCommand_WithScanState_ByteByByte_SameOutcomeAsWhole(string frame)
    {
        byte[] all = Encoding.ASCII.GetBytes(frame);
        string Outcome(Func<ReadOnlySequence<byte>, (bool Ok, RespCommand? Cmd, long Left)> read, byte[] bytes)
        {
            try
            {
                (bool ok, RespCommand? cmd, long left) = read(new ReadOnlySequence<byte>(bytes));
                return ok ? $"{cmd} ({left} left)" : "incomplete";
            }
            catch (RespProtocolException e)
            {
                return "error: " + e.Message;
            }
        }

        string whole = Outcome(b =>
        {
            bool ok = RespReader.TryReadCommand(ref b, RespLimits.Default, out RespCommand? c);
            return (ok, c, b.Length);
        }, all);
        var state = new RespScanState();
        string last = "incomplete";
        for (int n = 1; n <= all.Length && last == "incomplete"; n++)
            last = Outcome(b =>
            {
                bool ok = RespReader.TryReadCommand(ref b, RespLimits.Default, ref state, out RespCommand? c);
                return (ok, c, b.Length);
            }, all[..n]);
        Assert.Equal(whole, last);
    }

    [Fact]
    public async Task TryReadCommand_WithScanState_ResumesAPendingArray_LinearInTheInput()
    {
        // A 1 MiB array of one-byte strings through a pipe in 1.8 KB pieces, read after each piece as a server does.
        // Without the state every read re-scans the array from its start (quadratic: about 290 times 1 MiB).
        int count = 1024 * 1024 / 7;
        byte[] frame = Encoding.ASCII.GetBytes($"*{count}\r\n" + string.Concat(Enumerable.Repeat("$1\r\na\r\n", count)));
        var limits = new RespLimits { MaxArrayLength = count };

        async Task<(TimeSpan Cpu, int Reads)> ParseAsync(int piece, bool resume)
        {
            var pipe = new System.IO.Pipelines.Pipe(new System.IO.Pipelines.PipeOptions(pauseWriterThreshold: 0));
            var state = new RespScanState();
            int reads = 0;
            RespCommand? command = null;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int at = 0; at < frame.Length && command is null; at += piece)
            {
                await pipe.Writer.WriteAsync(frame.AsMemory(at, Math.Min(piece, frame.Length - at)), TestContext.Current.CancellationToken);
                System.IO.Pipelines.ReadResult result = await pipe.Reader.ReadAsync(TestContext.Current.CancellationToken);
                ReadOnlySequence<byte> buffer = result.Buffer;
                reads++;
                if (!resume) state = default;
                RespReader.TryReadCommand(ref buffer, limits, ref state, out command);
                pipe.Reader.AdvanceTo(buffer.Start, buffer.End);
            }
            Assert.Equal(count, command!.Count);
            return (clock.Elapsed, reads);
        }

        (TimeSpan whole, _) = await ParseAsync(frame.Length, resume: true);
        (TimeSpan pieces, int reads) = await ParseAsync(1800, resume: true);
        Assert.True(reads > 500);
        Assert.True(pieces < whole * 5 + TimeSpan.FromMilliseconds(300),
            $"{reads} reads took {pieces.TotalMilliseconds:0} ms, one read {whole.TotalMilliseconds:0} ms");
    }

    private static ReadOnlySequence<byte> Segmented(byte[] first, byte[] second)
    {
        var a = new Segment(first);
        Segment b = a.Append(second);
        return new ReadOnlySequence<byte>(a, 0, b, second.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] memory) => Memory = memory;

        public Segment Append(byte[] memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}

public class RespReaderAggregateLengthTests
{
    [Theory]
    [InlineData("%9223372036854775807\r\n")]
    [InlineData("~9223372036854775807\r\n")]
    [InlineData("%4611686018427387904\r\n")]
    public void AHugeMapOrSetCount_IsAProtocolError_NotAnOverflow(string frame)
    {
        // The parser fuzzer found "%9223372036854775807": doubling the map's count overflowed to a negative capacity.
        var seq = new System.Buffers.ReadOnlySequence<byte>(System.Text.Encoding.ASCII.GetBytes(frame));
        Assert.Throws<Tandem.Protocol.RespProtocolException>(() => Tandem.Protocol.RespReader.TryReadValue(ref seq, Tandem.Protocol.RespLimits.Default, out _));
    }
}
