using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Globalization;
using HdrHistogram;

namespace Tandem.Bench;

/// <summary>One test line of <c>redis-benchmark --csv</c> (latencies in ms, as it prints them).</summary>
internal sealed record BenchmarkRow(string Test, double Rps, double AvgMs, double P50Ms, double P95Ms, double P99Ms);

internal sealed record LatencyResult(double MeanUs, double P99Us, double P50Us, int Count);

internal sealed record TransferResult(long Keys, int ValueBytes, double TotalSeconds, double TransferSeconds, double WritesPerSecond,
    double LongestGapMs, long WriteErrors, string? FirstError, double LoadRate, string? ViewChange,
    double WritesPerSecondInTransfer);

internal sealed record FailoverResult(double Milliseconds, string Errors);

internal static class Workloads
{
    public const int KeyBytes = 16;

    public static void Log(string message) => Console.Error.WriteLine($"bench [{DateTime.Now:HH:mm:ss}] {message}");

    // ---- redis-benchmark -------------------------------------------------------------------------------------

    /// <summary>Runs <c>redis-benchmark -p PORT ARGS --csv</c>; returns its rows by test name (SET, GET).</summary>
    public static Dictionary<string, BenchmarkRow> RedisBenchmark(int port, string[] args, int requests)
    {
        string[] full = ["-p", port.ToString(), .. args, "--csv"];
        // Bounded: at least 2,500 requests per second per test, plus a start-up allowance.
        var timeout = TimeSpan.FromSeconds(30 + 2.0 * requests / 2500);
        (int code, string stdout, string stderr) = Children.Run("redis-benchmark", full, timeout);
        var rows = new Dictionary<string, BenchmarkRow>(StringComparer.OrdinalIgnoreCase);
        foreach (string line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] f = line.Split(',').Select(x => x.Trim('"')).ToArray();
            if (f.Length < 7 || f[0] == "test") continue;
            static double D(string s) => double.Parse(s, CultureInfo.InvariantCulture);
            if (!double.TryParse(f[1], NumberStyles.Float, CultureInfo.InvariantCulture, out _)) continue;
            rows[f[0]] = new BenchmarkRow(f[0], D(f[1]), D(f[2]), D(f[4]), D(f[5]), D(f[6]));
        }
        if (code != 0 || rows.Count == 0)
            throw new BenchException($"redis-benchmark {string.Join(' ', full)} exited {code} with no CSV rows: {Trim(stderr + stdout)}");
        return rows;
    }

    private static string Trim(string s)
    {
        s = s.Replace('\n', ' ').Trim();
        return s.Length > 300 ? s[..300] + "..." : s;
    }

    // ---- one connection, one request at a time ----------------------------------------------------------------

    /// <summary>
    /// One connection, one command at a time: <c>SET</c> (3-byte value, as redis-benchmark's default), or with
    /// <paramref name="withWait"/> <c>SET</c> and <c>WAIT 1 0</c> written together and both replies awaited (the
    /// quickest a client can have a write on a Redis replica before it goes on). Mean and percentiles from an
    /// HdrHistogram of Stopwatch ticks.
    /// </summary>
    public static LatencyResult OneAtATime(int port, int iterations, bool withWait)
    {
        using var c = RespConnection.Connect(port, TimeSpan.FromSeconds(10));
        byte[] frame = withWait
            ? [.. RespConnection.Encode("SET", "bench:lat", "xyz"), .. RespConnection.Encode("WAIT", "1", "0")]
            : RespConnection.Encode("SET", "bench:lat", "xyz");
        void Once()
        {
            c.Send(frame);
            Reply r = c.Read();
            if (!r.IsOk) throw new BenchException($"SET on port {port} answered {r}");
            if (withWait)
            {
                Reply w = c.Read();
                if (w.Type != ':' || w.Integer < 1) throw new BenchException($"WAIT 1 0 on port {port} answered {w} (is the replica connected?)");
            }
        }
        for (int i = 0; i < Math.Max(200, iterations / 10); i++) Once();
        var histogram = new LongHistogram(TimeStamp.Seconds(10), 3);
        long total = 0;
        var deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 300;
        int done = 0;
        for (; done < iterations; done++)
        {
            long start = Stopwatch.GetTimestamp();
            Once();
            long ticks = Stopwatch.GetTimestamp() - start;
            histogram.RecordValue(ticks);
            total += ticks;
            if (start > deadline) throw new BenchException($"one-at-a-time loop on port {port} took over 300 s");
        }
        double perUs = Stopwatch.Frequency / 1e6;
        return new LatencyResult(total / (double)done / perUs, histogram.GetValueAtPercentile(99) / perUs, histogram.GetValueAtPercentile(50) / perUs, done);
    }

    // ---- pipelined loading ----------------------------------------------------------------------------------

    /// <summary>16-byte key: a prefix letter and 15 decimal digits.</summary>
    private static void Key(Span<byte> key, char prefix, long i)
    {
        key[0] = (byte)prefix;
        Utf8Formatter.TryFormat(i, key[1..], out _, new StandardFormat('D', KeyBytes - 1));
    }

    /// <summary>
    /// SETs keys <paramref name="prefix"/>000..0 to N-1 with <paramref name="valueBytes"/>-byte values, over
    /// <paramref name="connections"/> connections, each writing batches of <paramref name="batch"/> SETs and then
    /// reading their replies. A batch with an error reply (TRYAGAIN, say) is written again (SET is idempotent).
    /// Returns the rate in SETs per second.
    /// </summary>
    public static double Load(int port, char prefix, long count, int valueBytes, int connections = 2, int batch = 1000, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60 + count / 5000.0));
        byte[] value = new byte[valueBytes];
        Array.Fill(value, (byte)'v');
        var errors = new List<Exception>();
        var sw = Stopwatch.StartNew();
        var threads = Enumerable.Range(0, connections).Select(t => new Thread(() =>
        {
            try
            {
                int target = port;
                var c = RespConnection.Connect(target, TimeSpan.FromSeconds(30));
                var writer = new ArrayBufferWriter<byte>(batch * (valueBytes + 64));
                Span<byte> key = stackalloc byte[KeyBytes];
                long from = count * t / connections, to = count * (t + 1) / connections;
                for (long start = from; start < to; start += batch)
                {
                    long end = Math.Min(to, start + batch);
                    writer.Clear();
                    for (long i = start; i < end; i++)
                    {
                        Key(key, prefix, i);
                        RespConnection.AppendSet(writer, key, value);
                    }
                    for (int attempt = 0; ; attempt++)
                    {
                        string? error = null;
                        try
                        {
                            c.Send(writer.WrittenSpan);
                            for (long i = start; i < end; i++)
                            {
                                Reply r = c.Read();
                                if (!r.IsOk) error ??= r.ToString();
                            }
                        }
                        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
                        {
                            error = e.Message;
                        }
                        if (error is null) break;
                        if (attempt > 50 || DateTime.UtcNow > deadline) throw new BenchException($"loading port {target}: {error}");
                        // A Tandem server that is no longer primary names the one that is: follow it.
                        if ((error.StartsWith("-NOTPRIMARY", StringComparison.Ordinal) || error.StartsWith("-READONLY", StringComparison.Ordinal)) && error.Contains("primary: ", StringComparison.Ordinal)
                            && int.TryParse(error[(error.LastIndexOf(':') + 1)..].Trim(), out int next))
                        {
                            Log($"loading: {error.Split(';')[0]}; following the primary to port {next}");
                            target = next;
                        }
                        Thread.Sleep(50);
                        c.Dispose();
                        c = RespConnection.ConnectRetrying(target, TimeSpan.FromSeconds(30));
                    }
                    if (DateTime.UtcNow > deadline) throw new BenchException($"loading {count} keys into port {port} timed out");
                }
                c.Dispose();
            }
            catch (Exception e)
            {
                lock (errors) errors.Add(e);
            }
        }) { IsBackground = true }).ToList();
        threads.ForEach(th => th.Start());
        threads.ForEach(th => th.Join());
        if (errors.Count > 0) throw errors[0] is BenchException ? errors[0] : new BenchException($"loading port {port}: {errors[0].Message}");
        return count / sw.Elapsed.TotalSeconds;
    }

    // ---- resident memory per key ----------------------------------------------------------------------------

    /// <summary>RSS once it has stayed within 1% (and 1 MiB) for 2 s, sampled every 200 ms; at most 60 s.</summary>
    public static (long Bytes, bool Stable) StableRss(int pid)
    {
        var samples = new List<(DateTime At, long Rss)>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            samples.Add((DateTime.UtcNow, Children.Rss(pid)));
            var window = samples.Where(s => s.At >= samples[^1].At.AddSeconds(-2)).ToList();
            if (samples[0].At <= samples[^1].At.AddSeconds(-2))
            {
                long min = window.Min(s => s.Rss), max = window.Max(s => s.Rss);
                if (max - min <= Math.Max(1 << 20, max / 100)) return (samples[^1].Rss, true);
            }
            if (DateTime.UtcNow > deadline) return (samples[^1].Rss, false);
            Thread.Sleep(200);
        }
    }

    /// <summary>Bytes of RSS per key for <paramref name="keys"/> 16-byte keys with 100-byte values.</summary>
    public static (double PerKey, string Note) MemoryPerKey(SystemUnderTest system, long keys)
    {
        int port = system.Port, pid = system.MeasuredPid;
        string epoch = system.Epoch;
        Load(port, 'w', 20_000, 100); // warm the write path (JIT, connection buffers) outside the measurement
        (long before, bool s1) = StableRss(pid);
        double rate = Load(port, 'm', keys, 100);
        (long after, bool s2) = StableRss(pid);
        if (system.Epoch != epoch) throw new BenchException($"the primary changed during the measurement ({epoch} -> {system.Epoch}): RSS of the wrong process");
        string note = $"RSS {before / 1048576.0:0} -> {after / 1048576.0:0} MiB, loaded at {rate:N0} SET/s{(s1 && s2 ? "" : ", RSS not stable after 60 s")}";
        Log($"{system.Name}: memory: {note}");
        return ((after - before) / (double)keys, note);
    }

    // ---- state transfer ------------------------------------------------------------------------------------

    /// <summary>
    /// Loads the primary with <paramref name="keys"/> keys of 256-byte values, starts a pipelined writer (batches of
    /// 16 SETs) against it, SIGKILLs the backup and starts a fresh empty server. Measures from that server's start
    /// until the coordinator's view names it backup and is acknowledged (a primary acknowledges only once the
    /// backup holds the whole state); also from the first view naming it until then (the transfer itself).
    /// </summary>
    public static TransferResult StateTransfer(TandemCluster cluster, long keys, int valueBytes = 256)
    {
        TandemStatus first = cluster.Status();
        Log($"Tandem: state transfer: loading {keys:N0} keys x {valueBytes} B into the primary");
        double loadRate = Load(cluster.Port, 's', keys, valueBytes, connections: 2);
        // Take primary and backup as they are now (a view change during the load is reported, not hidden).
        TandemStatus settled = cluster.WaitFor(s => s.Backup != "" && s.SyncedWith(s.Backup), TimeSpan.FromSeconds(120), "a synced backup after the load");
        string? viewChange = settled.View == first.View ? null : $"the view changed during the load: {first} -> {settled}";
        if (viewChange is not null) Log($"Tandem: state transfer: {viewChange}");
        int primary = cluster.Port;
        int oldBackup = cluster.BackupPort;
        Log($"Tandem: state transfer: loaded at {loadRate:N0} SET/s; starting the writer");

        var oks = new List<long>(1 << 20);
        long errors = 0;
        string? firstError = null;
        bool stop = false;
        var writer = new Thread(() =>
        {
            const int depth = 16;
            var frame = new ArrayBufferWriter<byte>(depth * 128);
            byte[] value = new byte[32];
            Array.Fill(value, (byte)'x');
            Span<byte> key = stackalloc byte[KeyBytes];
            RespConnection? c = null;
            long n = 0;
            while (!Volatile.Read(ref stop))
            {
                try
                {
                    c ??= RespConnection.Connect(primary, TimeSpan.FromSeconds(30));
                    frame.Clear();
                    for (int i = 0; i < depth; i++)
                    {
                        Key(key, 'x', n++ % 1_000_000);
                        RespConnection.AppendSet(frame, key, value);
                    }
                    c.Send(frame.WrittenSpan);
                    for (int i = 0; i < depth; i++)
                    {
                        Reply r = c.Read();
                        long now = Stopwatch.GetTimestamp();
                        if (r.IsOk)
                        {
                            lock (oks) oks.Add(now);
                        }
                        else
                        {
                            Interlocked.Increment(ref errors);
                            firstError ??= r.ToString();
                        }
                    }
                }
                catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException)
                {
                    Interlocked.Increment(ref errors);
                    firstError ??= e.Message;
                    c?.Dispose();
                    c = null;
                    Thread.Sleep(10);
                }
            }
            c?.Dispose();
        }) { IsBackground = true };
        writer.Start();
        Thread.Sleep(1000);

        long tKill = Stopwatch.GetTimestamp();
        cluster.Kill(oldBackup);
        long t0 = Stopwatch.GetTimestamp();
        int fresh = cluster.StartServer();
        string freshAddress = TandemCluster.Address(fresh);
        long? tNamed = null;
        double bytes = keys * (double)(KeyBytes + valueBytes);
        var timeout = TimeSpan.FromSeconds(120 + bytes / 5e6); // a floor of 5 MB/s
        try
        {
            cluster.WaitFor(s =>
            {
                if (tNamed is null && s.Backup == freshAddress) tNamed = Stopwatch.GetTimestamp();
                return s.SyncedWith(freshAddress);
            }, timeout, $"the fresh server {freshAddress} to become a synced backup", pollMs: 10);
        }
        finally
        {
            Volatile.Write(ref stop, true);
        }
        long t1 = Stopwatch.GetTimestamp();
        writer.Join(TimeSpan.FromSeconds(30));

        double Seconds(long ticks) => ticks / (double)Stopwatch.Frequency;
        long[] stamps;
        lock (oks) stamps = [.. oks];
        long served = stamps.Count(t => t >= t0 && t <= t1);
        long tPhase = tNamed ?? t0;
        long servedInPhase = stamps.Count(t => t >= tPhase && t <= t1);
        long longestGap = 0, last = stamps.LastOrDefault(t => t < tKill, tKill);
        foreach (long t in stamps.Where(t => t >= tKill && t <= t1))
        {
            longestGap = Math.Max(longestGap, t - last);
            last = t;
        }
        longestGap = Math.Max(longestGap, t1 - last);
        return new TransferResult(keys, valueBytes, Seconds(t1 - t0), Seconds(t1 - (tNamed ?? t0)), served / Seconds(t1 - t0),
            Seconds(longestGap) * 1000, errors, firstError, loadRate, viewChange, servedInPhase / Math.Max(1e-9, Seconds(t1 - tPhase)));
    }

    // ---- failover ----------------------------------------------------------------------------------------------

    /// <summary>
    /// A client writes in a loop, one SET at a time, to whichever server answers +OK (on NOTPRIMARY, another error,
    /// a refused or broken connection, it tries the other server). After a second of writes the primary is
    /// SIGKILLed; returns the time from the kill to the first write the other server accepts.
    /// </summary>
    public static FailoverResult Failover(TandemCluster cluster)
    {
        int primary = cluster.Port, backup = cluster.BackupPort;
        int[] servers = [primary, backup];
        long killedAt = long.MaxValue, firstOkAfter = 0, oksBefore = 0;
        bool stop = false;
        var errorCounts = new Dictionary<string, int>();
        var client = new Thread(() =>
        {
            int target = 0;
            RespConnection? c = null;
            byte[] value = new byte[32];
            Array.Fill(value, (byte)'f');
            var frame = new ArrayBufferWriter<byte>(128);
            long n = 0;
            void Count(string what)
            {
                lock (errorCounts) errorCounts[what] = errorCounts.GetValueOrDefault(what) + 1;
            }
            while (!Volatile.Read(ref stop))
            {
                try
                {
                    c ??= RespConnection.Connect(servers[target], TimeSpan.FromSeconds(1));
                    c.ReceiveTimeout = TimeSpan.FromSeconds(3);
                    frame.Clear();
                    RespConnection.AppendSet(frame, "bench:failover"u8, value);
                    n++;
                    c.Send(frame.WrittenSpan);
                    Reply r = c.Read();
                    long now = Stopwatch.GetTimestamp();
                    if (r.IsOk)
                    {
                        if (now <= Volatile.Read(ref killedAt)) Interlocked.Increment(ref oksBefore);
                        else if (servers[target] != primary && Interlocked.Read(ref firstOkAfter) == 0) Interlocked.Exchange(ref firstOkAfter, now);
                        continue;
                    }
                    Count(r.Text?.Split(' ')[0] ?? r.ToString());
                }
                catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException)
                {
                    Count(e is System.Net.Sockets.SocketException se ? se.SocketErrorCode.ToString() : e.GetType().Name);
                }
                c?.Dispose();
                c = null;
                target = 1 - target;
                Thread.Sleep(1);
            }
            c?.Dispose();
        }) { IsBackground = true };
        client.Start();
        try
        {
            var warm = DateTime.UtcNow.AddSeconds(30);
            Thread.Sleep(1000);
            while (Interlocked.Read(ref oksBefore) < 100)
            {
                if (DateTime.UtcNow > warm) throw new BenchException("failover: the client could not write before the kill");
                Thread.Sleep(50);
            }
            Process victim = cluster.ServerProcess(primary);
            Volatile.Write(ref killedAt, Stopwatch.GetTimestamp());
            Children.Kill(victim);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (Interlocked.Read(ref firstOkAfter) == 0)
            {
                if (DateTime.UtcNow > deadline) throw new BenchException("failover: no write accepted within 30 s of the kill");
                Thread.Sleep(5);
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            client.Join(TimeSpan.FromSeconds(10));
        }
        string errors;
        lock (errorCounts) errors = string.Join(", ", errorCounts.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} x{kv.Value}"));
        return new FailoverResult((firstOkAfter - killedAt) * 1000.0 / Stopwatch.Frequency, errors);
    }
}
