using System.Net;
using Tandem.Client;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Testing;

namespace Tandem.IntegrationTests;

/// <summary>Helpers shared by the scenario tests.</summary>
internal static class Scenario
{
    /// <summary>A deadline generous enough for a loaded 2-core machine.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    public static CancellationToken Timeout(TimeSpan? t = null) => new CancellationTokenSource(t ?? Patience).Token;

    public static async Task<RespValue> SendAsync(string address, params string[] args)
    {
        await using RespClientConnection conn = await RespClientConnection.ConnectAsync(address, Timeout());
        return await conn.SendAsync(Timeout(), args);
    }

    public static async Task CheckAsync(TandemClient client, string key, string expected) =>
        Assert.Equal(expected, await client.GetAsync(key, Timeout()));
}
