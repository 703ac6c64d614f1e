using Tandem.Protocol;
using Tandem.Storage;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>Exactly-once when the duplicate table has to forget sessions (design-notes section 10).</summary>
public class SessionTests
{
    private static readonly DuplicateTableOptions SmallTable = new() { MaxClients = 8 };

    [Fact]
    public async Task RetryAfterItsSessionWasEvicted_IsRefused_NotAppliedTwice()
    {
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { Duplicates = SmallTable });
        (TestServer s1, _) = await cluster.StartPrimaryAndBackupAsync(Patience);

        RespValue first = await SendAsync(s1.Address, "XREQ", "777", "1", "0", "APPEND", "once", "x");
        Assert.Equal(1, first.Integer);
        for (int c = 0; c < 20; c++)
            Assert.False((await SendAsync(s1.Address, "XREQ", (1000 + c).ToString(), "1", "0", "SET", $"k{c}", "v")).IsError);

        RespValue retried = await SendAsync(s1.Address, "XREQ", "777", "1", "0", "APPEND", "once", "x");
        Assert.True(retried.IsError, $"the retry of an evicted session was answered {retried}");
        Assert.Equal(ErrorCodes.NoSession, retried.ErrorCode);
        Assert.Equal("x", (await SendAsync(s1.Address, "GET", "once")).Text);
    }
}
