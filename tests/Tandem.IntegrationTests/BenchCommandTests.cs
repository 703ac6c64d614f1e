using System.Globalization;
using System.Text.Json;
using Tandem.Client;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary><c>tandem bench</c> as users run it, against an in-process cluster.</summary>
public class BenchCommandTests
{
    /// <summary>Time for a bench process on a loaded machine: its start, connecting, the run and the drain.</summary>
    private static readonly TimeSpan BenchLimit = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Bench_AgainstThePrimary_MeasuresEveryRequest_AndWritesValuesOfTheGivenSize()
    {
        // One server: no failover can turn the bench's requests into NOTPRIMARY errors on a slow machine.
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { DeadPings = 50 });
        TestServer primary = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(primary, Patience);

        // A fixed number of requests: exactly that many are measured.
        (int code, string stdout, string stderr) = await TandemProcess.RunAsync(BenchLimit, null,
            "bench", "--host", primary.Address, "--requests", "500", "--clients", "3", "--pipeline", "4", "--keyspace", "1", "--reads", "0",
            "--value-size", "37", "--json");
        Assert.True(code == 0, $"exit {code}: {stderr}");
        using (JsonDocument counted = JsonDocument.Parse(stdout))
        {
            Assert.Equal(500, counted.RootElement.GetProperty("requests").GetInt64());
            Assert.Equal(0, counted.RootElement.GetProperty("errors").GetInt64());
        }

        // A duration, pipelined, half reads.
        (code, stdout, stderr) = await TandemProcess.RunAsync(BenchLimit, null,
            "bench", "--host", primary.Address, "--duration", "2s", "--clients", "4", "--pipeline", "8", "--keyspace", "8",
            "--value-size", "37", "--json");
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Single(stdout.Trim().Split('\n'));
        using JsonDocument result = JsonDocument.Parse(stdout);
        JsonElement root = result.RootElement;
        Assert.Equal(primary.Address, root.GetProperty("host").GetString());
        Assert.Equal(4, root.GetProperty("clients").GetInt32());
        Assert.Equal(8, root.GetProperty("pipeline").GetInt32());
        Assert.Equal(8, root.GetProperty("keyspace").GetInt64());
        Assert.Equal(37, root.GetProperty("valueSize").GetInt32());
        Assert.Equal(50, root.GetProperty("reads").GetInt32());
        Assert.True(root.GetProperty("durationSeconds").GetDouble() >= 1.9, stdout);
        Assert.True(root.GetProperty("requests").GetInt64() > 0, stdout);
        Assert.Equal(0, root.GetProperty("errors").GetInt64());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("firstError").ValueKind);
        Assert.True(root.GetProperty("opsPerSec").GetDouble() > 0, stdout);
        JsonElement latency = root.GetProperty("latencyUs");
        double p50 = latency.GetProperty("p50").GetDouble(), p90 = latency.GetProperty("p90").GetDouble();
        double p99 = latency.GetProperty("p99").GetDouble(), p999 = latency.GetProperty("p999").GetDouble();
        double max = latency.GetProperty("max").GetDouble(), mean = latency.GetProperty("mean").GetDouble();
        Assert.True(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max, stdout);
        Assert.True(mean > 0 && mean <= max, stdout);

        // What the bench wrote is in the store, read through the cluster: every key of the keyspace, 37 bytes each
        // (thousands of SETs over 8 keys leave none unwritten).
        await using TandemClient client = cluster.CreateClient();
        for (int i = 0; i < 8; i++)
        {
            string key = "key:" + i.ToString("D12", CultureInfo.InvariantCulture);
            Assert.Equal(new string('x', 37), await client.GetAsync(key, Timeout()));
        }

        // A server that refuses every request (the coordinator does not serve GET and SET): exit 1, the error said.
        (code, stdout, stderr) = await TandemProcess.RunAsync(BenchLimit, null,
            "bench", "--host", cluster.CoordinatorAddress, "--requests", "50", "--clients", "2", "--json");
        Assert.Equal(1, code);
        using JsonDocument refused = JsonDocument.Parse(stdout);
        Assert.Equal(50, refused.RootElement.GetProperty("requests").GetInt64());
        Assert.Equal(50, refused.RootElement.GetProperty("errors").GetInt64());
        Assert.False(string.IsNullOrEmpty(refused.RootElement.GetProperty("firstError").GetString()));
        Assert.Contains("every request failed", stderr);
    }

    [Fact]
    public async Task Bench_WithBadFlags_ExitsTwo_AndWithNoServer_ExitsOneWithOneLine()
    {
        string[][] bad =
        [
            ["bench", "--clients", "0"],
            ["bench", "--pipeline", "many"],
            ["bench", "--reads", "101"],
            ["bench", "--duration", "5"],
            ["bench", "--duration", "2s", "--requests", "10"],
            ["bench", "--host", "nohost"],
            ["bench", "--no-such-flag"],
        ];
        foreach (string[] args in bad)
        {
            (int code, _, string stderr) = await TandemProcess.RunAsync(BenchLimit, null, args);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}: {stderr}");
            Assert.Contains("tandem bench --help", stderr);
        }

        int port = ProcessTests.FreePorts(1)[0];
        (int exit, string stdout, string error) = await TandemProcess.RunAsync(BenchLimit, null,
            "bench", "--host", $"127.0.0.1:{port}", "--duration", "1s", "--json");
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Contains($"cannot connect to 127.0.0.1:{port}", error);
    }
}
