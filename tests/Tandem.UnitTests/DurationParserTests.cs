using Tandem.Client;

namespace Tandem.UnitTests;

public class DurationParserTests
{
    [Theory]
    [InlineData("0", 0)]
    [InlineData("500ms", 500)]
    [InlineData("0ms", 0)]
    [InlineData("2s", 2000)]
    [InlineData("1.5s", 1500)]
    [InlineData("1m", 60_000)]
    [InlineData("1h", 3_600_000)]
    public void TryParse_WithUnit_Accepts(string text, double milliseconds)
    {
        Assert.True(DurationParser.TryParse(text, out TimeSpan value));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), value);
        Assert.Equal(value, DurationParser.Parse(text));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("5")]
    [InlineData("0.5")]
    [InlineData("ms")]
    [InlineData("s")]
    [InlineData("-1s")]
    [InlineData("1 s")]
    [InlineData(" 1s")]
    [InlineData("1.s")]
    [InlineData("1S")]
    [InlineData("1x")]
    [InlineData("1e3ms")]
    [InlineData("99999999999999999h")]
    public void TryParse_WithoutValidUnit_Refuses(string? text)
    {
        Assert.False(DurationParser.TryParse(text, out _));
    }

    [Fact]
    public void Parse_Invalid_ThrowsFormatExceptionNamingTheInput()
    {
        var e = Assert.Throws<FormatException>(() => DurationParser.Parse("10"));
        Assert.Contains("'10'", e.Message);
    }

    [Theory]
    [InlineData(0, "0")]
    [InlineData(250, "250ms")]
    [InlineData(1500, "1.5s")]
    [InlineData(10_000, "10s")]
    [InlineData(60_000, "1m")]
    [InlineData(90_000, "1.5m")]
    [InlineData(7_200_000, "2h")]
    public void Format_UsesTheLargestExactUnit_AndRoundTrips(double milliseconds, string expected)
    {
        TimeSpan value = TimeSpan.FromMilliseconds(milliseconds);
        Assert.Equal(expected, DurationParser.Format(value));
        Assert.Equal(value, DurationParser.Parse(expected));
    }
}
