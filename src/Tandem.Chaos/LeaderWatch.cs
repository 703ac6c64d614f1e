using System.Diagnostics;

namespace Tandem.Chaos;

/// <summary>
/// Watches the coordinator group during a campaign: asks every member <c>VS.MEMBER</c> about ten times a second,
/// logs each change of leader, and measures the longest stretch during which no member led (by
/// <see cref="Cluster.LeaderOf"/>: killed, paused, electing, or a deposed leader not yet aware of it).
/// </summary>
internal sealed class LeaderWatch(Cluster cluster, Action<string> log)
{
    private static readonly TimeSpan Every = TimeSpan.FromMilliseconds(100);
    private long _longestTicks;

    /// <summary>The longest time without a leader seen so far (0 if a leader was always seen).</summary>
    public TimeSpan LongestWithoutLeader => TimeSpan.FromTicks(Interlocked.Read(ref _longestTicks));

    /// <summary>Watches until <paramref name="stop"/>; a stretch without a leader still going on then counts too.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var clock = Stopwatch.StartNew();
        TimeSpan lastLed = clock.Elapsed;
        int leader = -2; // nothing seen yet
        while (!stop.IsCancellationRequested)
        {
            MemberState?[] states;
            try
            {
                states = await cluster.MembersAsync(TimeSpan.FromMilliseconds(300), stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            int now = Cluster.LeaderOf(states);
            if (now >= 0) lastLed = clock.Elapsed;
            else Record(clock.Elapsed - lastLed);
            if (now != leader)
            {
                log(now >= 0 ? $"coordinator leader {cluster.Coordinators[now].Name} (term {states[now]!.Value.Term}, view {states[now]!.Value.View})" : "coordinator group: no leader");
                leader = now;
            }
            try
            {
                await Task.Delay(Every, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        if (leader < 0) Record(clock.Elapsed - lastLed);
    }

    private void Record(TimeSpan without)
    {
        long ticks = without.Ticks;
        long seen;
        while (ticks > (seen = Interlocked.Read(ref _longestTicks)) && Interlocked.CompareExchange(ref _longestTicks, ticks, seen) != seen)
        {
        }
    }
}
