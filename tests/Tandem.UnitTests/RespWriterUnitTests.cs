using System.Buffers;
using System.Text;
using Tandem.Protocol;

namespace Tandem.UnitTests;

public class RespWriterUnitTests
{
    private static string Write(RespValue v, int protocol)
    {
        var buffer = new ArrayBufferWriter<byte>();
        RespWriter.WriteValue(buffer, v, protocol);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string Write2(RespValue v)
    {
        var buffer = new ArrayBufferWriter<byte>();
        RespWriter.WriteValue(buffer, v);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static TheoryData<string, string, string> Cases() => new()
    {
        // name, RESP2 bytes, RESP3 bytes
        { "ok", "+OK\r\n", "+OK\r\n" },
        { "error", "-ERR bad\r\n", "-ERR bad\r\n" },
        { "integer", ":-42\r\n", ":-42\r\n" },
        { "bulk", "$3\r\nabc\r\n", "$3\r\nabc\r\n" },
        { "empty bulk", "$0\r\n\r\n", "$0\r\n\r\n" },
        { "null bulk", "$-1\r\n", "_\r\n" },
        { "null array", "*-1\r\n", "_\r\n" },
        { "array", "*2\r\n:1\r\n$-1\r\n", "*2\r\n:1\r\n_\r\n" },
        { "null", "$-1\r\n", "_\r\n" },
        { "map", "*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n*0\r\n", "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n*0\r\n" },
        { "empty map", "*0\r\n", "%0\r\n" },
        { "set", "*2\r\n+x\r\n+y\r\n", "~2\r\n+x\r\n+y\r\n" },
        { "push", "*2\r\n$7\r\nmessage\r\n$-1\r\n", ">2\r\n$7\r\nmessage\r\n_\r\n" },
        { "double", "$3\r\n1.5\r\n", ",1.5\r\n" },
        { "double inf", "$4\r\n-inf\r\n", ",-inf\r\n" },
        { "true", ":1\r\n", "#t\r\n" },
        { "false", ":0\r\n", "#f\r\n" },
        { "verbatim", "$5\r\nhello\r\n", "=9\r\ntxt:hello\r\n" },
        { "nested map", "*2\r\n$1\r\nk\r\n*2\r\n$1\r\nx\r\n$3\r\n0.1\r\n", "%1\r\n$1\r\nk\r\n%1\r\n$1\r\nx\r\n,0.1\r\n" },
    };

    private static RespValue Value(string name) => name switch
    {
        "ok" => RespValue.Ok,
        "error" => RespValue.Error("ERR bad"),
        "integer" => RespValue.Int(-42),
        "bulk" => RespValue.Bulk("abc"),
        "empty bulk" => RespValue.Bulk(""),
        "null bulk" => RespValue.NullBulk,
        "null array" => RespValue.Array(null),
        "array" => RespValue.Array([RespValue.Int(1), RespValue.NullBulk]),
        "null" => RespValue.Null,
        "map" => RespValue.Map([RespValue.Bulk("a"), RespValue.Int(1), RespValue.Bulk("b"), RespValue.Array([])]),
        "empty map" => RespValue.Map([]),
        "set" => RespValue.Set([RespValue.Simple("x"), RespValue.Simple("y")]),
        "push" => RespValue.Push([RespValue.Bulk("message"), RespValue.Null]),
        "double" => RespValue.FromDouble(1.5),
        "double inf" => RespValue.FromDouble(double.NegativeInfinity),
        "true" => RespValue.Boolean(true),
        "false" => RespValue.Boolean(false),
        "verbatim" => RespValue.Verbatim("hello"),
        "nested map" => RespValue.Map([RespValue.Bulk("k"), RespValue.Map([RespValue.Bulk("x"), RespValue.FromDouble(0.1)])]),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void WriteValue_EachType_InBothProtocols(string name, string resp2, string resp3)
    {
        Assert.Equal(resp2, Write(Value(name), 2));
        Assert.Equal(resp3, Write(Value(name), 3));
        Assert.Equal(resp2, Write2(Value(name))); // the RESP2 overload writes exactly the same bytes
    }

    [Fact]
    public void WriteValue_Resp2Bytes_AreTheSameAsBeforeResp3()
    {
        // A value of every RESP2 type, written as every RESP2 connection always got it.
        RespValue all = RespValue.Array([RespValue.Simple("PONG"), RespValue.Error("ERR x\r\ny"), RespValue.Int(7),
            RespValue.Bulk(new ReadOnlyMemory<byte>("slice"u8.ToArray())), RespValue.NullBulk, RespValue.Array(null), RespValue.Array([])]);
        Assert.Equal("*7\r\n+PONG\r\n-ERR x  y\r\n:7\r\n$5\r\nslice\r\n$-1\r\n*-1\r\n*0\r\n", Write2(all));
    }

    [Theory]
    [InlineData(1.5, "1.5")]
    [InlineData(0.1, "0.1")]
    [InlineData(-3.0, "-3")]
    [InlineData(1e20, "1e+20")]
    [InlineData(double.PositiveInfinity, "inf")]
    [InlineData(double.NaN, "nan")]
    public void FormatDouble_ShortestRoundTrip_AsRedis72(double d, string text) => Assert.Equal(text, RespWriter.FormatDouble(d));

    [Fact]
    public void Map_OddNumberOfItems_Throws() =>
        Assert.Throws<ArgumentException>(() => RespValue.Map([RespValue.Bulk("key without value")]));

    [Fact]
    public void RespValue_NewKinds_ReportThemselves()
    {
        Assert.True(RespValue.Null.IsNull);
        Assert.Equal("hello", RespValue.Verbatim("hello").VerbatimText);
        Assert.Equal("txt", RespValue.Verbatim("hello").VerbatimFormat);
        Assert.Equal("1.5", RespValue.FromDouble(1.5).Text);
        Assert.Equal("{\"a\": :1}", RespValue.Map([RespValue.Bulk("a"), RespValue.Int(1)]).ToString());
    }

    [Fact]
    public void WriteAggregateHeader_MapCountsEntriesInResp3AndItemsInResp2()
    {
        var two = new ArrayBufferWriter<byte>();
        RespWriter.WriteAggregateHeader(two, RespKind.Map, 3, 2);
        var three = new ArrayBufferWriter<byte>();
        RespWriter.WriteAggregateHeader(three, RespKind.Map, 3, 3);
        Assert.Equal("*6\r\n", Encoding.ASCII.GetString(two.WrittenSpan));
        Assert.Equal("%3\r\n", Encoding.ASCII.GetString(three.WrittenSpan));
    }
}

public class RespReaderResp3UnitTests
{
    [Theory]
    [InlineData("%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n~1\r\n#t\r\n")]
    [InlineData(">2\r\n$7\r\nmessage\r\n_\r\n")]
    [InlineData("=9\r\ntxt:hello\r\n")]
    [InlineData(",1.5\r\n")]
    [InlineData(",-inf\r\n")]
    [InlineData("#f\r\n")]
    public void TryReadValue_Resp3_ReadsWhatTheWriterWrites(string bytes)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(bytes));
        Assert.True(RespReader.TryReadValue(ref buffer, RespLimits.Default, out RespValue? value));
        Assert.Equal(0, buffer.Length);
        var written = new ArrayBufferWriter<byte>();
        RespWriter.WriteValue(written, value!, 3);
        Assert.Equal(bytes, Encoding.ASCII.GetString(written.WrittenSpan));
    }

    [Fact]
    public void TryReadValue_Resp3Partial_ConsumesNothing()
    {
        var buffer = new ReadOnlySequence<byte>("%2\r\n$1\r\na\r\n:1\r\n"u8.ToArray());
        Assert.False(RespReader.TryReadValue(ref buffer, RespLimits.Default, out _));
    }
}
