using Tandem.Protocol;

namespace Tandem.UnitTests;

public class CommandSyntaxTests
{
    [Fact]
    public void Parse_GivesRedisDocsArguments_TokensOptionsAlternativesAndRepeats()
    {
        IReadOnlyList<CommandSyntax.Argument> args = CommandSyntax.Parse("key value [NX | XX] [EX seconds | KEEPTTL] (field value)...");
        Assert.Equal(["key", "string", "oneof", "oneof", "block"], args.Select(a => a.Type));
        Assert.True(args[2].Optional);
        Assert.Equal(["NX", "XX"], args[2].Arguments.Select(a => a.Token));
        Assert.Equal(("seconds", "integer", "EX"), (args[3].Arguments[0].Name, args[3].Arguments[0].Type, args[3].Arguments[0].Token));
        Assert.Equal("pure-token", args[3].Arguments[1].Type);
        Assert.True(args[4].Multiple);
        Assert.False(args[4].Optional);
        Assert.Equal("double", CommandSyntax.Parse("key increment:double")[1].Type);
    }

    [Theory]
    [InlineData("key [NX")]
    [InlineData("key ]")]
    [InlineData("key ()")]
    public void Parse_RefusesMalformedSyntax(string syntax) => Assert.Throws<FormatException>(() => CommandSyntax.Parse(syntax));

    [Fact]
    public void Describe_RefusesASyntaxThatDoesNotParse_WhenTheTableIsBuilt()
    {
        var table = new CommandTable<int>().Add("X", 2, CommandFlags.None, 0);
        Assert.Throws<FormatException>(() => table.Describe("X", "x", "key [oops"));
        Assert.Throws<ArgumentException>(() => table.Describe("Y", "y", "key"));
    }
}
