using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Tandem.Client;
using Tandem.Protocol;
using Tandem.Testing;
using static Tandem.IntegrationTests.Scenario;

namespace Tandem.IntegrationTests;

/// <summary>
/// Hostile clients against a real <c>tandem server</c> process: its resident memory (VmRSS) and CPU time
/// (/proc/PID/stat) must stay within the bounds docs/security.md states, with generous margins, and other clients
/// must be served meanwhile. Deadlines are generous: the machine may be loaded.
/// </summary>
public class ResourceBoundTests
{
    private const long MiB = 1024 * 1024;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task ServerProcess_HostileClients_MemoryAndCpuStayBounded_OthersServed()
    {
        int[] ports = ProcessTests.FreePorts(2);
        using var group = CoordinatorSet.Allocate(1);
        string coordinator = group.Peers;
        var endPoint = new IPEndPoint(IPAddress.Loopback, ports[1]);
        TandemProcess coord = group.Start(0);
        TandemProcess server = TandemProcess.Start("server", "--listen", $"127.0.0.1:{ports[1]}", "--coordinator", coordinator,
            "--frame-timeout", "3s");
        try
        {
            await using var client = new TandemClient(new TandemClientOptions { Coordinator = coordinator, OperationTimeout = Long, AttemptTimeout = Patience });
            await client.PutAsync("big", new string('v', (int)MiB), Timeout(Long));
            await client.PutAsync("small", "s", Timeout(Long));
            long baseline = Rss(server);

            // 1. An endless array: cut at the frame limit (33 MiB by default), never buffered whole.
            // (1,048,576 elements of 1 KiB: 1 GiB, far past the limit.)
            byte[] element = Encoding.ASCII.GetBytes("$1016\r\n" + new string('a', 1016) + "\r\n");
            long sent = await SendEndlessAsync(endPoint, "*1048576\r\n", element);
            Assert.True(sent < 128 * MiB, $"the server took {sent / MiB} MiB of an endless array");
            TestContext.Current.TestOutputHelper?.WriteLine($"endless array: {sent / MiB} MiB sent before the cut; baseline {baseline / MiB} MiB");
            Assert.Equal("s", await client.GetAsync("small", Timeout(Long)));
            AssertRss(server, baseline, 192, "after an endless array");

            // 2. A 1 GiB bulk length: refused before anything is allocated for it.
            sent = await SendEndlessAsync(endPoint, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741824\r\n", new byte[64 * 1024]);
            Assert.True(sent < 64 * MiB, $"the server took {sent / MiB} MiB of a 1 GiB value");
            TestContext.Current.TestOutputHelper?.WriteLine($"1 GiB bulk length: {sent / 1024} KiB sent before the cut");
            AssertRss(server, baseline, 192, "after a 1 GiB bulk length");

            // 3. 7,000 pipelined GETs of a 1 MiB value from a client that never reads: 7 GiB if answered into memory.
            using Socket never = await ConnectAsync(endPoint);
            never.ReceiveBufferSize = 64 * 1024;
            await never.SendAsync(Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", 7000))));
            TimeSpan cpu = await CpuOverAsync(server, TimeSpan.FromSeconds(5), () => AssertRss(server, baseline, 1024 + 64, "with a client that never reads"));
            Assert.Equal("s", await client.GetAsync("small", Timeout(Long)));
            Assert.True(cpu < TimeSpan.FromSeconds(2), $"the server spent {cpu.TotalMilliseconds:0} ms of CPU in 5 s holding replies");
            TestContext.Current.TestOutputHelper?.WriteLine($"never-reading client: {cpu.TotalMilliseconds:0} ms of server CPU in 5 s");
            AssertRss(server, baseline, 1024 + 64, "with a client that never reads");

            // 4. One byte a second: closed by the frame timeout (3 s), at almost no CPU.
            using Socket slow = await ConnectAsync(endPoint);
            byte[] frame = "*2\r\n$4\r\nECHO\r\n$100\r\n"u8.ToArray();
            TimeSpan before = Cpu(server);
            var clock = Stopwatch.StartNew();
            bool cut = false;
            try
            {
                for (int i = 0; i < frame.Length && !cut; i++)
                {
                    await slow.SendAsync(frame.AsMemory(i, 1), SocketFlags.None, TestContext.Current.CancellationToken);
                    await Task.Delay(1000, TestContext.Current.CancellationToken);
                    cut = slow.Poll(0, SelectMode.SelectRead); // readable: the error, or EOF
                }
            }
            catch (SocketException)
            {
                cut = true;
            }
            Assert.True(cut, "a client sending a byte a second kept its connection for the whole frame");
            TestContext.Current.TestOutputHelper?.WriteLine($"byte a second: cut after {clock.Elapsed.TotalSeconds:0.0} s, {(Cpu(server) - before).TotalMilliseconds:0} ms of server CPU");
            Assert.True(Cpu(server) - before < clock.Elapsed / 4, $"the server spent {(Cpu(server) - before).TotalMilliseconds:0} ms of CPU on a slow sender in {clock.Elapsed.TotalSeconds:0} s");
            Assert.Equal("s", await client.GetAsync("small", Timeout(Long)));
        }
        finally
        {
            server.Kill();
            coord.Kill();
        }
    }

    [Fact]
    public async Task HugeValueAtTheConfiguredLimit_IsWrittenReadPutHashedAndTransferredToANewBackup()
    {
        // 40 MiB: past the 16 MiB the client and the backup used to read with.
        const int size = 40 * 1024 * 1024;
        int[] ports = ProcessTests.FreePorts(3);
        using var group = CoordinatorSet.Allocate(1);
        string coordinator = group.Peers;
        string[] flags = ["--max-value-bytes", size.ToString(CultureInfo.InvariantCulture)];
        var processes = new List<TandemProcess> { group.Start(0) };
        try
        {
            processes.Add(TandemProcess.Start(["server", "--listen", $"127.0.0.1:{ports[1]}", "--coordinator", coordinator, .. flags]));
            await using var client = new TandemClient(new TandemClientOptions { Coordinator = coordinator, OperationTimeout = Long, AttemptTimeout = Patience });
            string value = new('h', size);
            await client.PutAsync("huge", value, Timeout(Long));
            Assert.Equal(value, await client.GetAsync("huge", Timeout(Long)));
            await client.PutAsync("other", value, Timeout(Long));
            // The client's last write: its saved reply (the old value, 40 MiB) stays in the duplicate table, and so
            // in the snapshot the new backup receives.
            Assert.Equal(value, await client.PutHashAsync("other", "x", Timeout(Long)));

            (int exit, string stdout, _) = await RunAsync("redis-cli", "-p", ports[1].ToString(CultureInfo.InvariantCulture), "GET", "huge");
            Assert.Equal(0, exit);
            Assert.Equal(value, stdout.TrimEnd('\n'));

            // A new backup receives the value and the saved 40 MiB reply, then takes over.
            processes.Add(TandemProcess.Start(["server", "--listen", $"127.0.0.1:{ports[2]}", "--coordinator", coordinator, .. flags]));
            await Wait.UntilAsync(() => BackupSynced(coordinator, $"127.0.0.1:{ports[2]}"), Long, "the new backup to receive the state");
            processes[1].Kill();
            Assert.Equal(value, await client.GetAsync("huge", Timeout(Long)));
            TestContext.Current.TestOutputHelper?.WriteLine($"40 MiB value: new primary resident {Rss(processes[2]) / MiB} MiB");
            Assert.True(Rss(processes[2]) < 2048 * MiB, $"the new primary holds {Rss(processes[2]) / MiB} MiB");
        }
        finally
        {
            foreach (TandemProcess p in processes) p.Kill();
        }
    }

    private static bool BackupSynced(string coordinator, string backup)
    {
        try
        {
            string json = SendAsync(coordinator, Commands.VsStatus).GetAwaiter().GetResult().Text;
            return json.Contains($"\"backup\":\"{backup}\"", StringComparison.Ordinal) && json.Contains("\"acked\":true", StringComparison.Ordinal);
        }
        catch (Exception)
        {
            return false;
        }
    }

    /// <summary>Sends <paramref name="head"/> then <paramref name="tail"/> over and over until the server cuts the connection.</summary>
    private static async Task<long> SendEndlessAsync(IPEndPoint endPoint, string head, byte[] tail)
    {
        using Socket s = await ConnectAsync(endPoint);
        long sent = 0;
        try
        {
            sent += await s.SendAsync(Encoding.ASCII.GetBytes(head));
            using var cts = new CancellationTokenSource(Long);
            while (sent < 1024 * MiB) sent += await s.SendAsync(tail, SocketFlags.None, cts.Token);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            // Reset: the server closed the connection; or it stopped reading and the sender stayed paused.
        }
        return sent;
    }

    private static async Task<Socket> ConnectAsync(IPEndPoint ep)
    {
        var s = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await s.ConnectAsync(ep);
        return s;
    }

    private static async Task<TimeSpan> CpuOverAsync(TandemProcess p, TimeSpan span, Action check)
    {
        TimeSpan start = Cpu(p);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < span)
        {
            check();
            await Task.Delay(250, TestContext.Current.CancellationToken);
        }
        return Cpu(p) - start;
    }

    private static void AssertRss(TandemProcess p, long baseline, long boundMiB, string when)
    {
        long rss = Rss(p);
        TestContext.Current.TestOutputHelper?.WriteLine($"{when}: resident {rss / MiB} MiB, {(rss - baseline) / MiB} MiB over the baseline");
        Assert.True(rss - baseline < boundMiB * MiB, $"{when}: resident memory grew by {(rss - baseline) / MiB} MiB (bound {boundMiB} MiB)");
    }

    /// <summary>Resident memory of the child, from /proc/PID/status.</summary>
    private static long Rss(TandemProcess p)
    {
        string line = File.ReadLines($"/proc/{p.Id}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>User plus system CPU time of the child, from /proc/PID/stat (clock ticks of 10 ms).</summary>
    private static TimeSpan Cpu(TandemProcess p)
    {
        string stat = File.ReadAllText($"/proc/{p.Id}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args) info.ArgumentList.Add(a);
        using Process p = Process.Start(info)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync(Timeout(Long));
        return (p.ExitCode, await stdout, await stderr);
    }
}
