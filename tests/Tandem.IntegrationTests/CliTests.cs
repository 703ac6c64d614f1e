using System.Text.Json;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>The <c>tandem</c> command line as users run it, against an in-process cluster.</summary>
public class CliTests
{
    [Fact]
    public async Task ClientCommands_PrintResultsAndExitZero()
    {
        await using TestCluster cluster = await TestCluster.StartAsync();
        TestServer s1 = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(s1, Patience);
        string c = cluster.CoordinatorAddress;

        Assert.Equal((0, "\n"), Out(await TandemProcess.RunAsync(null, "get", "nope", "--coordinator", c)));
        Assert.Equal(0, (await TandemProcess.RunAsync(null, "put", "k", "1", "--coordinator", c)).ExitCode);
        Assert.Equal((0, "1\n"), Out(await TandemProcess.RunAsync(null, "get", "k", "--coordinator", c)));
        Assert.Equal((0, "1\n"), Out(await TandemProcess.RunAsync(null, "puthash", "k", "x", "--coordinator", c)));
        Assert.Equal((0, KeyValueScenarioTests.Fnv("1", "x") + "\n"), Out(await TandemProcess.RunAsync(null, "get", "k", "--coordinator", c)));
        var env = new Dictionary<string, string> { ["TANDEM_COORDINATOR"] = c };
        Assert.Equal((0, "3\n"), Out(await TandemProcess.RunAsync(env, "append", "a", "abc")));
        Assert.Equal((0, "1\n"), Out(await TandemProcess.RunAsync(env, "del", "a")));

        (int code, string json, _) = await TandemProcess.RunAsync(env, "status", "--json");
        Assert.Equal(0, code);
        using JsonDocument status = JsonDocument.Parse(json);
        Assert.Equal(cluster.View.Number, status.RootElement.GetProperty("view").GetInt64());
        Assert.Equal(s1.Address, status.RootElement.GetProperty("primary").GetString());
        Assert.Equal("", status.RootElement.GetProperty("backup").GetString());
        Assert.Equal(JsonValueKind.Array, status.RootElement.GetProperty("servers").ValueKind);
    }

    [Fact]
    public async Task ClientCommand_WithNoReachableCluster_TimesOutWithOneLineAndNonZeroExit()
    {
        int port = ProcessTests.FreePorts(1)[0];
        (int code, string stdout, string stderr) = await TandemProcess.RunAsync(null, "get", "k", "--coordinator", $"127.0.0.1:{port}", "--timeout", "500ms");
        Assert.NotEqual(0, code);
        Assert.Equal("", stdout);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains("timed out", stderr);
    }

    [Fact]
    public async Task BadFlags_AreUsageErrors()
    {
        Assert.Equal(2, (await TandemProcess.RunAsync(null, "get", "k", "--timeout", "5")).ExitCode);
        Assert.Equal(2, (await TandemProcess.RunAsync(null, "get", "k", "--coordinator", "nohost")).ExitCode);
        Assert.Equal(2, (await TandemProcess.RunAsync(null, "server", "--listen", "127.0.0.1:1")).ExitCode);
        // A number flag given text is a usage error, not a crash of the validator that checks its range.
        foreach (string[] args in new[] { new[] { "chaos", "--clients", "many" }, ["coordinator", "--dead-pings", "x"], ["dev", "--servers", "two"] })
        {
            (int code, _, string stderr) = await TandemProcess.RunAsync(null, args);
            Assert.Equal(2, code);
            Assert.Contains("Cannot parse", stderr, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task Dev_WithThreeCoordinators_RunsAGroup_AndServes()
    {
        int port = FreeBlock();
        TandemProcess dev = TandemProcess.Start("dev", "--coordinators", "3", "--servers", "2", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            string group = string.Join(',', Enumerable.Range(port, 3).Select(p => $"127.0.0.1:{p}"));
            var env = new Dictionary<string, string> { ["TANDEM_COORDINATOR"] = group };
            Assert.Equal(0, (await TandemProcess.RunAsync(env, "put", "k", "v", "--timeout", "60s")).ExitCode);
            Assert.Equal((0, "v\n"), Out(await TandemProcess.RunAsync(env, "get", "k")));
            (int code, string json, _) = await TandemProcess.RunAsync(env, "status", "--json");
            Assert.Equal(0, code);
            using JsonDocument status = JsonDocument.Parse(json);
            JsonElement[] members = status.RootElement.GetProperty("coordinators").EnumerateArray().ToArray();
            Assert.Equal(Enumerable.Range(port, 3).Select(p => $"127.0.0.1:{p}"), members.Select(m => m.GetProperty("address").GetString()));
            Assert.Single(members, m => m.GetProperty("role").GetString() == "leader");
            Assert.All(members, m => Assert.True(m.GetProperty("term").GetInt64() >= 1));
            // The servers take the ports after the group's.
            Assert.Contains(status.RootElement.GetProperty("primary").GetString(), new[] { $"127.0.0.1:{port + 3}", $"127.0.0.1:{port + 4}" });
        }
        finally
        {
            dev.Kill();
        }
    }

    /// <summary>A port P with P..P+4 and P+10000..P+10002 free (the dev group's RESP and Raft ports, its servers).</summary>
    private static int FreeBlock()
    {
        var random = new Random();
        while (true)
        {
            int port = random.Next(20000, 50000);
            if (Enumerable.Range(port, 5).Concat(Enumerable.Range(port + 10000, 3)).All(CoordinatorSet.IsFree)) return port;
        }
    }

    private static (int, string) Out((int ExitCode, string Stdout, string Stderr) r) => (r.ExitCode, r.Stdout);
}
