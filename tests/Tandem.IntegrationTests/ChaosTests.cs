using System.Globalization;
using System.Text.RegularExpressions;

namespace Tandem.IntegrationTests;

/// <summary>
/// A CI-sized fault campaign: <c>tandem chaos</c> as a user runs it (a group of three coordinators and three servers
/// as real processes; kills, pauses, partitions, loss, delay, replacements, sync-kills, cuts and stalls of servers,
/// and at the same time kills, pauses and partitions of the group's leader, kills of a minority and of every member;
/// big values, short-lived sessions), three fixed seeds of 25 s. Each must end with a linearizable history, no lost
/// or duplicated append and a cluster that recovers, with coordinator faults among the ones applied.
/// </summary>
public partial class ChaosTests
{
    [Theory]
    [InlineData(101)]
    [InlineData(202)]
    [InlineData(303)]
    public async Task ChaosCampaign_IsLinearizable_LosesNothing_Recovers(int seed)
    {
        (int exitCode, string stdout, string stderr) = await RunChaosAsync(seed, "25s");
        string context = $"seed {seed}, exit {exitCode}\nstdout:\n{stdout}\nstderr:\n{stderr}";

        Match summary = SummaryPattern().Match(stdout);
        Assert.True(summary.Success, $"no summary line; {context}");
        int Number(string name) => int.Parse(summary.Groups[name].Value, CultureInfo.InvariantCulture);

        Assert.True(exitCode == 0, context);
        Assert.Equal("Linearizable", summary.Groups["verdict"].Value);
        Assert.Equal(0, Number("lost"));
        Assert.Equal(0, Number("duplicated"));
        Assert.True(Number("ops") > 2000, $"too few operations for a meaningful check; {context}");
        Assert.True(FaultNames.Sum(Number) > 0, $"no fault was injected; {context}");
        Assert.True(CoordinatorFaultNames.Sum(Number) > 0, $"no coordinator fault was injected; {context}");
        Assert.DoesNotContain("FAILED", stdout);
    }

    [Fact]
    public async Task ChaosSchedule_SameSeed_SameFaults()
    {
        (int first, string a, _) = await RunAsync(["chaos", "--seed", "9", "--duration", "60s", "--dry-run"], TimeSpan.FromSeconds(60));
        (int second, string b, _) = await RunAsync(["chaos", "--seed", "9", "--duration", "60s", "--dry-run"], TimeSpan.FromSeconds(60));
        (_, string other, _) = await RunAsync(["chaos", "--seed", "8", "--duration", "60s", "--dry-run"], TimeSpan.FromSeconds(60));
        Assert.Equal(0, first);
        Assert.Equal(0, second);
        Assert.Equal(a, b);
        Assert.NotEqual(a, other);
        Assert.Contains("kill", a);
        Assert.Contains("partition", a);
        foreach (string kind in new[] { "replace", "synckill", "cut", "stall" }.Concat(CoordinatorFaultNames)) Assert.Contains($": {kind} ", a);
        Assert.Contains("big-value keys", a);
        Assert.Contains("coordinators: a group of 3; faults left out: none", a);
    }

    [Fact]
    public async Task ChaosSchedule_Without_LeavesThoseKindsOut_GroupOfOneHasNoMinority()
    {
        (int code, string plan, string error) = await RunAsync(["chaos", "--seed", "7", "--duration", "120s", "--dry-run", "--coordinators", "1",
            "--without", "callkill,cpart,kill"], TimeSpan.FromSeconds(60));
        Assert.True(code == 0, error);
        Assert.Contains("coordinators: a group of 1; faults left out: kill,cpart,callkill", plan);
        foreach (string kind in new[] { "callkill", "cpart", "kill", "cminority" }) Assert.DoesNotContain($": {kind} ", plan);
        Assert.Contains(": ckill ", plan);
        Assert.Contains(": cpause ", plan);

        (int refused, _, string why) = await RunAsync(["chaos", "--seed", "7", "--dry-run", "--without", "ckill,nosuch"], TimeSpan.FromSeconds(60));
        Assert.NotEqual(0, refused);
        Assert.Contains("'nosuch' is not a fault kind", why);
    }

    private static readonly string[] FaultNames = ["kill", "pause", "partition", "lossy", "delay", "replace", "synckill", "cut", "stall"];

    private static readonly string[] CoordinatorFaultNames = ["ckill", "cpause", "cpart", "cminority", "callkill"];

    private static Task<(int ExitCode, string Stdout, string Stderr)> RunChaosAsync(int seed, string duration) =>
        RunAsync(["chaos", "--seed", seed.ToString(CultureInfo.InvariantCulture), "--duration", duration], TimeSpan.FromMinutes(4));

    private static Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string[] args, TimeSpan limit) =>
        TandemProcess.RunAsync(limit, null, args);

    [GeneratedRegex(@"^chaos seed=\d+ duration=\S+ ops=(?<ops>\d+) ok=\d+ unknown=\d+ failed=\d+ faults: kill=(?<kill>\d+) pause=(?<pause>\d+) partition=(?<partition>\d+) lossy=(?<lossy>\d+) delay=(?<delay>\d+) replace=(?<replace>\d+) synckill=(?<synckill>\d+) cut=(?<cut>\d+) stall=(?<stall>\d+) ckill=(?<ckill>\d+) cpause=(?<cpause>\d+) cpart=(?<cpart>\d+) cminority=(?<cminority>\d+) callkill=(?<callkill>\d+) noleader=\d+\.\ds liveness=\S+ lost=(?<lost>\d+) duplicated=(?<duplicated>\d+) (unread=\d+ )?(expired=\d+ )?verdict=(?<verdict>\w+)$", RegexOptions.Multiline)]
    private static partial Regex SummaryPattern();
}
