using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Tandem.Client;
using Tandem.Protocol;
using Tandem.Testing;

// Shared by the integration tests (a CI-sized run) and bench/Tandem.Fuzz (the long runs), which links this file.
namespace Tandem.Fuzzing;

/// <summary>Settings of one <see cref="DispatchFuzzer"/> run.</summary>
public sealed record DispatchFuzzOptions
{
    /// <summary>Seed of the generator (worker i uses Seed + i).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Commands to send in all (roughly: whole batches).</summary>
    public long Commands { get; init; } = 20_000;

    /// <summary>Concurrent client connections, spread over primary, backup and coordinator.</summary>
    public int Connections { get; init; } = 5;

    /// <summary>
    /// Also send replication and coordinator commands that pass fencing (the real view and the primary's
    /// address, <c>VS.PING</c> in the servers' names). security.md documents that these can replace the
    /// backup's state or force a view change, so the run then only checks that every node still answers and
    /// that replies stay well-formed, not that the sentinel key survives.
    /// </summary>
    public bool Forge { get; init; }

    /// <summary>How long a batch may wait for its replies before the run calls it a hang.</summary>
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Where progress lines go (null: nowhere).</summary>
    public Action<string>? Progress { get; init; }
}

/// <summary>What a <see cref="DispatchFuzzer"/> run saw.</summary>
public sealed class DispatchFuzzReport
{
    /// <summary>Commands (frames) sent.</summary>
    public long Commands;
    /// <summary>Well-formed replies received.</summary>
    public long Replies;
    /// <summary>Batches of well-formed commands (every command must be answered, the connection must stay open).</summary>
    public long ValidBatches;
    /// <summary>Batches with one corrupted frame, sent then half-closed (each reply must be well-formed, then a clean close).</summary>
    public long CorruptBatches;
    /// <summary>Corrupt batches that ended with <c>-ERR Protocol error</c>.</summary>
    public long ProtocolErrors;
    /// <summary>Corrupt batches whose connection was reset rather than closed (the server stopped reading first).</summary>
    public long Resets;
    /// <summary>Replies by first word (OK, ERR, STALEVIEW, ...).</summary>
    public readonly ConcurrentDictionary<string, long> ReplyKinds = new();
    /// <summary>Broken properties; empty when the run passed.</summary>
    public readonly ConcurrentQueue<string> Findings = new();
    /// <summary>Wall time of the generating phase.</summary>
    public TimeSpan Elapsed;
    /// <summary>Managed heap after a full collection, before and after the run (bytes).</summary>
    public long HeapBefore, HeapAfter;

    /// <inheritdoc />
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"commands sent     {Commands:N0} in {Elapsed.TotalSeconds:0.0} s ({Commands / Math.Max(0.001, Elapsed.TotalSeconds):N0}/s)");
        sb.AppendLine(CultureInfo.InvariantCulture, $"replies           {Replies:N0}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"batches           {ValidBatches:N0} valid, {CorruptBatches:N0} corrupt ({ProtocolErrors:N0} ended in a protocol error); {Resets:N0} reset by a close with input unread (after a protocol error or a QUIT)");
        sb.AppendLine("reply kinds       " + string.Join(", ", ReplyKinds.OrderByDescending(p => p.Value).Select(p => $"{p.Key} {p.Value:N0}")));
        sb.AppendLine(CultureInfo.InvariantCulture, $"managed heap      {HeapBefore / 1048576.0:0.0} MiB before, {HeapAfter / 1048576.0:0.0} MiB after");
        sb.AppendLine(CultureInfo.InvariantCulture, $"findings          {Findings.Count}");
        foreach (string f in Findings.Take(20)) sb.AppendLine("  " + f);
        return sb.ToString();
    }
}

/// <summary>
/// Fuzzes command dispatch on a live in-process cluster (coordinator, primary, backup on loopback): pipelined
/// batches of generated commands (real, near-real and random names, real and random arguments) over real TCP
/// connections. Checks that every reply is one well-formed RESP value, that a batch of well-formed commands is
/// answered in full on an open connection, that a corrupt batch ends in well-formed replies and a close, that no
/// node logs an unhandled error, and afterwards that every node answers PING and the primary still holds a
/// sentinel key written before the run.
/// </summary>
public static class DispatchFuzzer
{
    private static readonly string[] Names =
    [
        "GET", "SET", "PUTHASH", "APPEND", "DEL", "XREQ", "XCLIENT", "PING", "ECHO", "INFO", "SELECT", "CLIENT", "CONFIG", "COMMAND",
        "HELLO", "QUIT", "REPL.SNAPSHOT", "REPL.APPLY", "VS.PING", "VS.VIEW", "VS.STATUS",
        "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "WAIT", "RESET", "ROLE", "TIME",
        .. Tandem.Storage.DataCommands.Table.All.Select(c => c.Name).Where(n => n is not ("FLUSHALL" or "FLUSHDB") && !DataNames.Contains(n)),
    ];

    // Written by the first list; FLUSHALL and FLUSHDB would remove the sentinel key the run checks at the end.
    private static readonly string[] DataNames = ["GET", "SET", "PUTHASH", "APPEND", "DEL"];

    /// <summary>The option words of the data commands, sent among their arguments.</summary>
    private static readonly string[] Options =
    [
        "EX", "PX", "EXAT", "PXAT", "NX", "XX", "GT", "LT", "GET", "KEEPTTL", "PERSIST", "BYTE", "BIT", "MATCH", "COUNT", "TYPE",
        "LEN", "IDX", "MINMATCHLEN", "WITHMATCHLEN", "REPLACE", "DB", "ENCODING", "REFCOUNT", "FREQ", "IDLETIME", "HELP", "*", "fz?",
    ];

    private static readonly string[] Numbers =
    [
        "0", "1", "2", "3", "-1", "7", "100", "1024", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "", " 1", "1.5", "0x1", "+1", "99999999999999999999",
    ];

    /// <summary>Runs the fuzzer on a fresh cluster and returns what it saw.</summary>
    public static async Task<DispatchFuzzReport> RunAsync(DispatchFuzzOptions options)
    {
        var report = new DispatchFuzzReport();
        var errors = new ErrorLog();
        using ILoggerFactory logs = LoggerFactory.Create(b => b.AddProvider(errors).SetMinimumLevel(LogLevel.Warning));
        await using TestCluster cluster = await TestCluster.StartAsync(new TestClusterOptions { LoggerFactory = logs });
        TestServer first = await cluster.StartServerAsync();
        await cluster.WaitForPrimaryAsync(first, TimeSpan.FromSeconds(30));
        TestServer second = await cluster.StartServerAsync();
        await cluster.WaitForSyncedPairAsync(TimeSpan.FromSeconds(30));

        string sentinelKey = "fuzz-sentinel:" + options.Seed.ToString(CultureInfo.InvariantCulture);
        string sentinelValue = "value-" + Guid.NewGuid().ToString("N");
        TandemClient client = cluster.CreateClient(TimeSpan.FromSeconds(30));
        await client.PutAsync(sentinelKey, sentinelValue);

        View view = cluster.View;
        TestServer primary = view.Primary == first.Address ? first : second;
        TestServer backup = primary == first ? second : first;
        var shared = new Shared(cluster, primary.Address, [primary.Address, backup.Address], options.Forge);
        IPEndPoint[] targets = [primary.EndPoint, backup.EndPoint, IPEndPoint.Parse(cluster.CoordinatorAddress)];

        GC.Collect();
        report.HeapBefore = GC.GetTotalMemory(forceFullCollection: true);
        var clock = Stopwatch.StartNew();
        long budget = options.Commands;
        var workers = new List<Task>();
        for (int i = 0; i < options.Connections; i++)
        {
            // Half the connections talk to the primary, the rest to the backup and the coordinator.
            IPEndPoint target = i % 2 == 0 ? targets[0] : targets[1 + (i / 2) % 2];
            var worker = new Worker(options, report, shared, target, options.Seed + i);
            workers.Add(Task.Run(() => worker.RunAsync(k => Interlocked.Add(ref budget, -k) + k > 0)));
        }
        Task progress = ReportProgressAsync(options, report, workers, clock);
        await Task.WhenAll(workers);
        await progress;
        report.Elapsed = clock.Elapsed;

        // Afterwards: every node answers, the sentinel is intact, nothing was logged as an error.
        foreach (IPEndPoint target in targets)
        {
            RespValue? pong = await RoundTripAsync(target, RespCommand.From("PING"), options.ReplyTimeout);
            if (pong?.Text != "PONG") report.Findings.Enqueue($"after the run {target} answered PING with {pong?.ToString() ?? "nothing"}");
        }
        if (!options.Forge)
        {
            if (cluster.View.Primary != primary.Address) report.Findings.Enqueue($"the view changed during the run: {cluster.View}");
            RespValue? got = await RoundTripAsync(primary.EndPoint, RespCommand.From("GET", sentinelKey), options.ReplyTimeout);
            if (got?.Text != sentinelValue) report.Findings.Enqueue($"after the run GET {sentinelKey} on the primary gave {got?.ToString() ?? "nothing"}");
            string viaClient = await client.GetAsync(sentinelKey);
            if (viaClient != sentinelValue) report.Findings.Enqueue($"after the run the client read {viaClient} for the sentinel");
        }
        foreach (string e in errors.Errors.Take(20)) report.Findings.Enqueue("logged: " + e);
        GC.Collect();
        report.HeapAfter = GC.GetTotalMemory(forceFullCollection: true);
        return report;
    }

    private static async Task ReportProgressAsync(DispatchFuzzOptions options, DispatchFuzzReport report, List<Task> workers, Stopwatch clock)
    {
        if (options.Progress is null) return;
        Task all = Task.WhenAll(workers);
        while (!all.IsCompleted)
        {
            await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(10)));
            long sent = Interlocked.Read(ref report.Commands);
            options.Progress($"{clock.Elapsed.TotalSeconds,6:0} s  {sent,12:N0} commands  {sent / Math.Max(0.001, clock.Elapsed.TotalSeconds),8:N0}/s  " +
                             $"findings {report.Findings.Count}  heap {GC.GetTotalMemory(false) / 1048576.0:0} MiB");
        }
    }

    /// <summary>Sends one command on a new connection and reads one reply (null if none came).</summary>
    public static async Task<RespValue?> RoundTripAsync(IPEndPoint target, RespCommand command, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        using var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(target, cts.Token);
            var w = new ArrayBufferWriter<byte>();
            RespWriter.WriteCommand(w, command.Args);
            await socket.SendAsync(w.WrittenMemory, SocketFlags.None, cts.Token);
            var replies = new List<RespValue>();
            await ReadRepliesAsync(socket, replies, 1, untilClose: false, cts.Token);
            return replies.Count == 1 ? replies[0] : null;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or RespProtocolException)
        {
            return null;
        }
    }

    /// <summary>
    /// Reads replies into <paramref name="replies"/> until <paramref name="count"/> arrived or (with
    /// <paramref name="untilClose"/>) until the peer closes. Returns false when the stream ended inside a reply.
    /// </summary>
    private static async Task<bool> ReadRepliesAsync(Socket socket, List<RespValue> replies, int count, bool untilClose, CancellationToken ct)
    {
        var pending = new List<byte>();
        var chunk = new byte[64 * 1024];
        while (untilClose || replies.Count < count)
        {
            int n = await socket.ReceiveAsync(chunk, SocketFlags.None, ct);
            if (n == 0) return pending.Count == 0;
            pending.AddRange(chunk.AsSpan(0, n));
            var seq = new ReadOnlySequence<byte>(pending.ToArray());
            long before = seq.Length;
            while (RespReader.TryReadValue(ref seq, RespLimits.Default, out RespValue? reply)) replies.Add(reply!);
            pending.RemoveRange(0, (int)(before - seq.Length));
        }
        return true;
    }

    /// <summary>What every worker needs to know about the cluster.</summary>
    private sealed class Shared(TestCluster cluster, string primary, string[] servers, bool forge)
    {
        public TestCluster Cluster { get; } = cluster;
        public string Primary { get; } = primary;
        public string[] Servers { get; } = servers;
        public bool Forge { get; } = forge;
    }

    private sealed class Worker(DispatchFuzzOptions options, DispatchFuzzReport report, Shared shared, IPEndPoint target, int seed)
    {
        public const int MaxBatch = 32;
        private readonly Random _rng = new(seed);
        private readonly bool _toBackup = target.Port != IPEndPoint.Parse(shared.Primary).Port && shared.Servers.Any(s => IPEndPoint.Parse(s).Port == target.Port);

        public async Task RunAsync(Func<int, bool> takeBatch)
        {
            Socket? socket = null;
            try
            {
                while (true)
                {
                    int k = 1 + _rng.Next(MaxBatch);
                    if (!takeBatch(k)) return;
                    socket ??= await ConnectAsync();
                    if (socket is null) return;
                    bool corrupt = _rng.Next(10) == 0;
                    var frames = new List<byte[]>(k);
                    for (int i = 0; i < k; i++) frames.Add(Frame());
                    string what = $"batch of {k} to {target} (seed {seed})";
                    if (corrupt)
                    {
                        int victim = _rng.Next(k);
                        frames[victim] = Corrupt(frames[victim]);
                        what += $", frame {victim} corrupt: {Show(frames[victim])}";
                    }
                    byte[] bytes = frames.SelectMany(f => f).ToArray();
                    Interlocked.Add(ref report.Commands, k);
                    var replies = new List<RespValue>();
                    using var cts = new CancellationTokenSource(options.ReplyTimeout);
                    try
                    {
                        await SendSegmentedAsync(socket, bytes, cts.Token);
                        if (corrupt)
                        {
                            // Half-close: the node must answer what it could parse and then close, whatever the bytes.
                            socket.Shutdown(SocketShutdown.Send);
                            Interlocked.Increment(ref report.CorruptBatches);
                            if (!await ReadRepliesAsync(socket, replies, 0, untilClose: true, cts.Token))
                                report.Findings.Enqueue($"{what}: the stream ended inside a reply");
                            if (replies.Count > 0 && replies[^1].IsError && replies[^1].Text.Contains("Protocol error", StringComparison.Ordinal))
                                Interlocked.Increment(ref report.ProtocolErrors);
                        }
                        else
                        {
                            Interlocked.Increment(ref report.ValidBatches);
                            // QUIT is answered, then the connection closes: nothing after it runs.
                            int quit = frames.FindIndex(IsQuit);
                            int expected = quit < 0 ? k : quit + 1;
                            if (quit >= 0)
                            {
                                if (!await ReadRepliesAsync(socket, replies, 0, untilClose: true, cts.Token) || replies.Count != expected)
                                    report.Findings.Enqueue($"{what}: {replies.Count} replies up to QUIT, {expected} expected");
                            }
                            else if (!await ReadRepliesAsync(socket, replies, k, untilClose: false, cts.Token) || replies.Count < expected)
                                report.Findings.Enqueue($"{what}: the connection closed after {replies.Count} of {k} replies; " +
                                                        $"commands around there: {string.Join(" | ", frames.Take(replies.Count + 1).Skip(Math.Max(0, replies.Count - 1)).Select(f => Show(f)))}" +
                                                        (replies.Count > 0 ? $"; last reply {replies[^1]}" : ""));
                        }
                    }
                    catch (OperationCanceledException)
                    {
                        report.Findings.Enqueue($"{what}: no reply within {options.ReplyTimeout.TotalSeconds:0} s after {replies.Count} replies (a hang)");
                    }
                    catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown)
                    {
                        // Closing a socket with unread input resets it, which may drop replies already sent: after a
                        // QUIT with commands behind it (Redis does the same), and after a protocol error.
                        if (corrupt || frames.Exists(IsQuit)) Interlocked.Increment(ref report.Resets);
                        else report.Findings.Enqueue($"{what}: connection reset after {replies.Count} of {k} replies");
                    }
                    catch (RespProtocolException e)
                    {
                        report.Findings.Enqueue($"{what}: malformed reply: {e.Message}");
                    }
                    foreach (RespValue reply in replies)
                    {
                        Interlocked.Increment(ref report.Replies);
                        string kind = reply.Kind switch
                        {
                            RespKind.Error => reply.ErrorCode,
                            RespKind.SimpleString => "+" + (reply.Text.Length <= 8 ? reply.Text : "simple"),
                            RespKind.Integer => "integer",
                            RespKind.BulkString => reply.IsNull ? "null" : "bulk",
                            _ => "array",
                        };
                        if (kind.Length > 16 || !kind.All(c => char.IsAsciiLetter(c) || "+-.".Contains(c))) kind = "other";
                        report.ReplyKinds.AddOrUpdate(kind, 1, (_, n) => n + 1);
                    }
                    if (corrupt || replies.Count < k || frames.Exists(IsQuit))
                    {
                        socket.Dispose();
                        socket = null;
                    }
                }
            }
            finally
            {
                socket?.Dispose();
            }
        }

        private static bool IsQuit(byte[] frame)
        {
            var buffer = new System.Buffers.ReadOnlySequence<byte>(frame);
            try
            {
                return RespReader.TryReadCommand(ref buffer, RespLimits.Default, out RespCommand? command)
                       && command!.Count > 0 && command.Text(0).Equals("QUIT", StringComparison.OrdinalIgnoreCase);
            }
            catch (RespProtocolException)
            {
                return false;
            }
        }

        private async Task<Socket?> ConnectAsync()
        {
            var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                using var cts = new CancellationTokenSource(options.ReplyTimeout);
                await socket.ConnectAsync(target, cts.Token);
                return socket;
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                report.Findings.Enqueue($"cannot connect to {target}: {e.Message}");
                socket.Dispose();
                return null;
            }
        }

        private async Task SendSegmentedAsync(Socket socket, byte[] bytes, CancellationToken ct)
        {
            int at = 0;
            while (at < bytes.Length)
            {
                int n = _rng.Next(4) == 0 ? 1 + _rng.Next(Math.Min(16, bytes.Length - at)) : bytes.Length - at;
                await socket.SendAsync(bytes.AsMemory(at, n), SocketFlags.None, ct);
                at += n;
                if (at < bytes.Length && _rng.Next(8) == 0) await Task.Delay(1, ct);
            }
        }

        /// <summary>One well-formed frame: mostly a command array, sometimes an inline command.</summary>
        private byte[] Frame()
        {
            List<byte[]> args = Command();
            if (_rng.Next(20) == 0 && args.Sum(a => a.Length + 1) < 4096 && args.All(a => a.Length > 0 && !a.Any(b => b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')) && args[0][0] != (byte)'*')
                return [.. args.SelectMany((a, i) => i == 0 ? a : [(byte)' ', .. a]), (byte)'\r', (byte)'\n'];
            var w = new ArrayBufferWriter<byte>();
            RespWriter.WriteCommand(w, args);
            return w.WrittenSpan.ToArray();
        }

        private List<byte[]> Command()
        {
            string name = Names[_rng.Next(Names.Length)];
            var args = new List<byte[]> { Encoding.ASCII.GetBytes(NearName(name)) };
            switch (name)
            {
                case "XREQ":
                    args.Add(Num(_rng.Next(3) == 0 ? Numbers[_rng.Next(Numbers.Length)] : _rng.Next(1, 50).ToString(CultureInfo.InvariantCulture)));
                    args.Add(Num(_rng.Next(3) == 0 ? Numbers[_rng.Next(Numbers.Length)] : _rng.Next(1, 3000).ToString(CultureInfo.InvariantCulture)));
                    args.Add(Num(_rng.Next(3) == 0 ? Numbers[_rng.Next(Numbers.Length)] : _rng.Next(0, 3).ToString(CultureInfo.InvariantCulture)));
                    if (_rng.Next(6) != 0)
                    {
                        string inner = new[] { "SET", "PUTHASH", "APPEND", "DEL", "GET", "XREQ", "PING", "INCR", "EXPIRE", "EXEC", "MSET", "SETRANGE" }[_rng.Next(12)];
                        args.Add(Encoding.ASCII.GetBytes(NearName(inner)));
                        int n = inner == "DEL" ? 1 : 2;
                        if (_rng.Next(5) == 0) n = _rng.Next(5);
                        for (int i = 0; i < n; i++) args.Add(i == 0 ? Key() : Value());
                    }
                    break;
                case "REPL.SNAPSHOT":
                case "REPL.APPLY":
                    Replication(name, args);
                    break;
                case "WAIT":
                    // A WAIT for more replicas than exist with no timeout blocks for ever, as in Redis: not a hang.
                    args.Add(Num(new[] { "0", "1", "2", "x" }[_rng.Next(4)]));
                    args.Add(Num(new[] { "1", "10", "-1", "y" }[_rng.Next(4)]));
                    break;
                case "VS.PING":
                    // Never in a real server's name: that forces a view change (security.md), which is not a bug.
                    args.Add(Encoding.ASCII.GetBytes(_rng.Next(3) == 0 ? "" : $"10.255.{_rng.Next(4)}.{_rng.Next(4)}:{_rng.Next(1, 4)}"));
                    args.Add(Num(Numbers[_rng.Next(Numbers.Length)]));
                    if (_rng.Next(5) == 0) args.RemoveAt(args.Count - 1);
                    break;
                default:
                    int count = _rng.Next(5) == 0 ? _rng.Next(10) : name is "SET" or "PUTHASH" or "APPEND" ? 2 : name is "GET" or "DEL" or "ECHO" or "SELECT" ? 1 : _rng.Next(2);
                    if (Tandem.Storage.DataCommands.Table.TryFind(Encoding.ASCII.GetBytes(name), out var data) && !DataNames.Contains(name))
                        count = Math.Abs(data.Arity) - 1 + (_rng.Next(3) == 0 ? _rng.Next(6) : 0);
                    for (int i = 0; i < count; i++)
                        args.Add(i == 0 ? Key() : _rng.Next(4) == 0 ? Encoding.ASCII.GetBytes(Options[_rng.Next(Options.Length)]) : Value());
                    break;
            }
            return args;
        }

        private void Replication(string name, List<byte[]> args)
        {
            View view = shared.Cluster.View;
            long viewNumber = view.Number + (_rng.Next(3) == 0 ? _rng.Next(-2, 3) : 0);
            string from = _rng.Next(4) == 0 ? "10.255.0.1:1" : view.Primary;
            if (!shared.Forge && _toBackup && viewNumber == view.Number && from == view.Primary)
                from = "10.255.0.2:2"; // would pass fencing: that is --forge
            args.Add(_rng.Next(10) == 0 ? Num(Numbers[_rng.Next(Numbers.Length)]) : Num(viewNumber.ToString(CultureInfo.InvariantCulture)));
            args.Add(Encoding.ASCII.GetBytes(from));
            args.Add(Encoding.ASCII.GetBytes("s" + _rng.Next(3).ToString(CultureInfo.InvariantCulture)));
            int fields = _rng.Next(12);
            if (name == "REPL.SNAPSHOT")
            {
                string part = new[] { "BEGIN", "DATA", "DUPS", "END", "RESUME", "begin", "NOPE" }[_rng.Next(7)];
                args.Add(Encoding.ASCII.GetBytes(part));
                if (part == "DUPS" && _rng.Next(2) == 0)
                {
                    // client acked-through n (seq log-seq reply)*n, the last entry perhaps cut short.
                    int n = _rng.Next(4);
                    foreach (int f in (ReadOnlySpan<int>)[_rng.Next(1, 9), _rng.Next(3), n]) args.Add(Num(f.ToString(CultureInfo.InvariantCulture)));
                    for (int e = 0; e < n; e++)
                    {
                        args.Add(Num(_rng.Next(1, 5).ToString(CultureInfo.InvariantCulture)));
                        args.Add(Num(_rng.Next(1, 5).ToString(CultureInfo.InvariantCulture)));
                        args.Add(Saved());
                    }
                    if (_rng.Next(3) == 0) args.RemoveRange(args.Count - 1 - _rng.Next(Math.Min(3, n * 3)) , 1);
                    return;
                }
                for (int i = 0; i < fields; i++)
                    args.Add(_rng.Next(6) == 0 ? Saved() : _rng.Next(2) == 0 ? Num(_rng.Next(0, 4).ToString(CultureInfo.InvariantCulture)) : Value());
            }
            else
            {
                args.Add(Num(_rng.Next(0, 5).ToString(CultureInfo.InvariantCulture)));
                args.Add(Num(_rng.Next(3) == 0 ? Numbers[_rng.Next(Numbers.Length)] : "1024")); // max-value-bytes
                int ops = _rng.Next(3);
                for (int o = 0; o < ops; o++)
                {
                    // The operation's fields (36 bytes: four numbers, then the argument count), perhaps cut or
                    // padded, perhaps with a count past the command's end; then a command.
                    byte[] opFields = new byte[_rng.Next(4) == 0 ? _rng.Next(0, 40) : 36];
                    _rng.NextBytes(opFields);
                    if (opFields.Length == 36) System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(opFields.AsSpan(32), _rng.Next(-1, 6));
                    args.Add(opFields);
                    args.Add(Encoding.ASCII.GetBytes(NearName(new[] { "SET", "DEL", "APPEND", "EXEC", "XCLIENT" }[_rng.Next(5)])));
                    args.Add(Key());
                    args.Add(Value());
                }
                if (_rng.Next(4) == 0) args.RemoveAt(args.Count - 1);
            }
        }

        /// <summary>A saved reply field (RESP-encoded), well-formed or not.</summary>
        private byte[] Saved() => _rng.Next(4) switch
        {
            0 => "+OK\r\n"u8.ToArray(),
            1 => ":5\r\n"u8.ToArray(),
            2 => Encoding.ASCII.GetBytes(new[] { "", "x", "$3\r\nab", "*1\r\n", "-ERR\r\n", "$-1\r\n" }[_rng.Next(6)]),
            _ => Value(),
        };

        private string NearName(string name)
        {
            switch (_rng.Next(20))
            {
                case 0: return name.ToLowerInvariant();
                case 1: return name.Length > 1 ? name.Remove(_rng.Next(name.Length), 1) : name;
                case 2: return name + (char)('A' + _rng.Next(26));
                case 3:
                    char[] c = name.ToCharArray();
                    c[_rng.Next(c.Length)] = (char)(_rng.Next(33, 127));
                    return new string(c);
                case 4: return _rng.Next(2) == 0 ? "" : Convert.ToHexString(Guid.NewGuid().ToByteArray());
                default: return name;
            }
        }

        private static byte[] Num(string s) => Encoding.ASCII.GetBytes(s);

        private byte[] Key() => _rng.Next(10) switch
        {
            0 => [],
            1 => RandomBytes(_rng.Next(1, 16)),
            2 when _rng.Next(50) == 0 => new byte[64 * 1024 + 1], // over the key limit
            _ => Encoding.ASCII.GetBytes("fz" + _rng.Next(16).ToString(CultureInfo.InvariantCulture)),
        };

        private byte[] Value() => _rng.Next(20) switch
        {
            0 => [],
            1 => RandomBytes(_rng.Next(1, 200)),
            2 => RandomBytes(_rng.Next(1, 16 * 1024)),
            3 => Num(Numbers[_rng.Next(Numbers.Length)]),
            _ => Encoding.ASCII.GetBytes("v" + _rng.Next(1000).ToString(CultureInfo.InvariantCulture)),
        };

        private byte[] RandomBytes(int n)
        {
            var b = new byte[n];
            _rng.NextBytes(b);
            return b;
        }

        /// <summary>Breaks one frame: a flip, a cut, garbage, a huge or negative length, an endless array.</summary>
        private byte[] Corrupt(byte[] frame)
        {
            var b = new List<byte>(frame);
            int at = _rng.Next(b.Count);
            switch (_rng.Next(8))
            {
                case 0: b[at] ^= (byte)(1 << _rng.Next(8)); break;
                case 1: b.RemoveRange(at, b.Count - at); break;
                case 2: b.InsertRange(at, RandomBytes(1 + _rng.Next(8))); break;
                case 3: return Encoding.ASCII.GetBytes("*2\r\n$3\r\nGET\r\n$" + new[] { "1073741824", "-5", "16777217", "99999999999999999999", "x" }[_rng.Next(5)] + "\r\n");
                case 4: return Encoding.ASCII.GetBytes("*" + new[] { "1048577", "0", "-2", "1048576\r\n$1\r\na" }[_rng.Next(4)] + "\r\n");
                case 5: return [.. RandomBytes(1 + _rng.Next(64))];
                case 6: b[at] = (byte)"\r\n*$:"[_rng.Next(5)]; break;
                default: return [(byte)'*', (byte)'1', (byte)'\r', (byte)'\n', .. frame];
            }
            return b.ToArray();
        }
    }

    private static string Show(byte[] bytes)
    {
        var sb = new StringBuilder("\"");
        foreach (byte b in bytes.AsSpan(0, Math.Min(bytes.Length, 160)))
            sb.Append(b switch { (byte)'\r' => "\\r", (byte)'\n' => "\\n", >= 32 and < 127 and not (byte)'"' => ((char)b).ToString(), _ => $"\\x{b:x2}" });
        sb.Append('"');
        if (bytes.Length > 160) sb.Append(CultureInfo.InvariantCulture, $" ... ({bytes.Length} bytes)");
        return sb.ToString();
    }

    /// <summary>Collects every log entry at Error or above (an unhandled exception in a connection, for one).</summary>
    private sealed class ErrorLog : ILoggerProvider
    {
        public ConcurrentQueue<string> Errors { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose() { }

        private sealed class Logger(ErrorLog owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (logLevel < LogLevel.Error) return;
                string where = exception?.StackTrace?.Split('\n').FirstOrDefault()?.Trim() ?? "";
                owner.Errors.Enqueue($"{category}: {formatter(state, exception)} {exception?.GetType().Name}: {exception?.Message} {where}");
            }
        }
    }
}
