using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using HdrHistogram;
using Tandem.Net;

namespace Tandem.Cli;

/// <summary>What <see cref="LoadGenerator"/> sends, to whom, and for how long.</summary>
internal sealed record LoadGeneratorOptions
{
    /// <summary>The largest <see cref="Keyspace"/>: keys have 12 decimal digits.</summary>
    public const long MaxKeyspace = 1_000_000_000_000;

    /// <summary>The RESP server, <c>HOST:PORT</c>.</summary>
    public string Host { get; init; } = "127.0.0.1:6379";

    /// <summary>Connections, each one async loop.</summary>
    public int Clients { get; init; } = 50;

    /// <summary>Requests in flight per connection.</summary>
    public int Pipeline { get; init; } = 1;

    /// <summary>Keys are <c>key:000000000000</c> up to <c>Keyspace - 1</c>, chosen uniformly at random.</summary>
    public long Keyspace { get; init; } = 100_000;

    /// <summary>Bytes of each SET value (all <c>x</c>).</summary>
    public int ValueSize { get; init; } = 100;

    /// <summary>Percent of requests that are GET; the rest are SET.</summary>
    public int ReadPercent { get; init; } = 50;

    /// <summary>How long to measure, when <see cref="Requests"/> is null.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Measure this many requests (all connections together) instead of a duration.</summary>
    public long? Requests { get; init; }

    /// <summary>Send load this long first without measuring it.</summary>
    public TimeSpan Warmup { get; init; } = TimeSpan.Zero;

    /// <summary>Give up connecting after this long.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A connection waiting this long for a reply is given up (its requests in flight count as errors).</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Called about every <see cref="ProgressInterval"/> with the figures so far; null for none.</summary>
    public Action<LoadProgress>? Progress { get; init; }

    /// <summary>How often <see cref="Progress"/> is called.</summary>
    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromMilliseconds(250);
}

/// <summary>The figures of a run so far, for a live progress line.</summary>
/// <param name="Elapsed">Time measured so far (zero while warming up).</param>
/// <param name="Requests">Replies counted so far.</param>
/// <param name="OpsPerSecond">Replies per second so far.</param>
/// <param name="P99Us">The 99th percentile latency so far, in microseconds.</param>
/// <param name="WarmingUp">Whether the warmup is still going on.</param>
internal readonly record struct LoadProgress(TimeSpan Elapsed, long Requests, double OpsPerSecond, double P99Us, bool WarmingUp);

/// <summary>The outcome of a run.</summary>
/// <param name="Requests">Requests measured: each got a reply, or was in flight on a connection that was lost.</param>
/// <param name="Errors">Of those, error replies (<c>-...</c>) and requests lost with their connection.</param>
/// <param name="FirstError">The text of the first error reply or the first connection failure; null when none.</param>
/// <param name="Elapsed">From the end of the warmup to the last measured reply.</param>
/// <param name="LatencyNs">Latency of every measured reply (error replies included), in nanoseconds.</param>
internal sealed record LoadResult(long Requests, long Errors, string? FirstError, TimeSpan Elapsed, HistogramBase LatencyNs)
{
    /// <summary>Requests per second over <see cref="Elapsed"/>.</summary>
    public double OpsPerSecond => Elapsed > TimeSpan.Zero ? Requests / Elapsed.TotalSeconds : 0;

    /// <summary>The latency at <paramref name="percentile"/> (0-100), in microseconds; 0 when nothing was measured.</summary>
    public double LatencyUs(double percentile) => LatencyNs.TotalCount == 0 ? 0 : LatencyNs.GetValueAtPercentile(percentile) / 1000.0;

    /// <summary>The mean latency in microseconds.</summary>
    public double MeanUs => LatencyNs.TotalCount == 0 ? 0 : LatencyNs.GetMean() / 1000.0;

    /// <summary>The highest latency in microseconds.</summary>
    public double MaxUs => LatencyNs.TotalCount == 0 ? 0 : LatencyNs.GetMaxValue() / 1000.0;
}

/// <summary>
/// A RESP load generator: <see cref="LoadGeneratorOptions.Clients"/> TCP connections, each an async loop that keeps
/// <see cref="LoadGeneratorOptions.Pipeline"/> GET/SET requests in flight, writes commands straight into its
/// <see cref="PipeWriter"/> and counts replies with a minimal scanner. Works against any RESP2 server.
/// </summary>
/// <remarks>
/// Each request's latency runs from just before its batch is written to the moment the read that completed it
/// returned. Each connection records into its own HdrHistogram <see cref="Recorder"/> (wait-free, no locks); the
/// monitor merges them, every <see cref="LoadGeneratorOptions.ProgressInterval"/> for the progress line and once at the end.
/// </remarks>
internal sealed class LoadGenerator
{
    private static readonly long HighestLatencyNs = (long)TimeSpan.FromMinutes(1).TotalNanoseconds;
    private static readonly double NsPerTick = 1e9 / Stopwatch.Frequency;
    private const int KeyDigits = 12;
    private const int OneShotLimit = 16 * 1024;

    private readonly LoadGeneratorOptions _options;
    private readonly long _keyspace;
    private readonly int _readPercent;
    private readonly byte[] _setPrefix = Encoding.ASCII.GetBytes("*3\r\n$3\r\nSET\r\n$16\r\nkey:");
    private readonly byte[] _getPrefix = Encoding.ASCII.GetBytes("*2\r\n$3\r\nGET\r\n$16\r\nkey:");
    private readonly byte[] _setSuffix;
    private long _measureStart;
    private long _measureEnd;
    private long _claimed;
    private volatile bool _stopping;
    private string? _firstError;

    /// <summary>A generator for <paramref name="options"/>; <see cref="RunAsync"/> runs it.</summary>
    public LoadGenerator(LoadGeneratorOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Clients, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Pipeline, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Keyspace, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Keyspace, LoadGeneratorOptions.MaxKeyspace);
        ArgumentOutOfRangeException.ThrowIfNegative(options.ValueSize);
        if (options.ReadPercent is < 0 or > 100) throw new ArgumentOutOfRangeException(nameof(options), "ReadPercent must be 0-100");
        _options = options;
        _keyspace = options.Keyspace;
        _readPercent = options.ReadPercent;
        // "\r\n$<size>\r\n<value>\r\n" after the key of a SET.
        string size = options.ValueSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        _setSuffix = new byte[2 + 1 + size.Length + 2 + options.ValueSize + 2];
        var suffix = new Span<byte>(_setSuffix);
        "\r\n$"u8.CopyTo(suffix);
        Encoding.ASCII.GetBytes(size, suffix[3..]);
        "\r\n"u8.CopyTo(suffix[(3 + size.Length)..]);
        suffix.Slice(5 + size.Length, options.ValueSize).Fill((byte)'x');
        "\r\n"u8.CopyTo(suffix[^2..]);
    }

    /// <summary>
    /// Connects every client, runs the load, and returns the figures. <paramref name="stop"/> ends the run early
    /// (requests in flight are still waited for). Throws <see cref="IOException"/> when the server cannot be reached.
    /// </summary>
    public async Task<LoadResult> RunAsync(CancellationToken stop)
    {
        Connection[] connections = await ConnectAllAsync(stop);
        try
        {
            long now = Stopwatch.GetTimestamp();
            _measureStart = now + (long)(_options.Warmup.TotalSeconds * Stopwatch.Frequency);
            _measureEnd = _options.Requests is null ? _measureStart + (long)(_options.Duration.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
            var total = new LongHistogram(1, HighestLatencyNs, 3);
            using CancellationTokenRegistration stopping = stop.Register(() => _stopping = true);
            using var monitorStop = new CancellationTokenSource();
            Task monitor = MonitorAsync(connections, total, monitorStop.Token);
            await Task.WhenAll(connections.Select(c => Task.Run(() => RunConnectionAsync(c))));
            await monitorStop.CancelAsync();
            await monitor;

            var interval = new LongHistogram(1, HighestLatencyNs, 3);
            foreach (Connection c in connections)
            {
                c.Latency.GetIntervalHistogramInto(interval);
                total.Add(interval);
            }
            long requests = connections.Sum(c => c.Requests);
            long errors = connections.Sum(c => c.Errors);
            long last = connections.Max(c => c.LastMeasuredReply);
            // Without any measured reply, the time measured is the time the run lasted after its warmup.
            long end = last > _measureStart ? last : Math.Max(_measureStart, Stopwatch.GetTimestamp());
            TimeSpan elapsed = Stopwatch.GetElapsedTime(_measureStart, end);
            return new LoadResult(requests, errors, _firstError, elapsed, total);
        }
        finally
        {
            foreach (Connection c in connections) c.Dispose();
        }
    }

    private async Task<Connection[]> ConnectAllAsync(CancellationToken stop)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        timeout.CancelAfter(_options.ConnectTimeout);
        var sockets = new List<Socket>();
        try
        {
            EndPoint endPoint = RespClientConnection.ParseEndPoint(_options.Host);
            if (endPoint is DnsEndPoint dns)
            {
                IPAddress[] addresses = await Dns.GetHostAddressesAsync(dns.Host, timeout.Token);
                IPAddress address = addresses.OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1).FirstOrDefault()
                    ?? throw new IOException($"cannot connect to {_options.Host}: the name has no address");
                endPoint = new IPEndPoint(address, dns.Port);
            }
            var connects = new List<Task>();
            for (int i = 0; i < _options.Clients; i++)
            {
                var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                sockets.Add(socket);
                connects.Add(socket.ConnectAsync(endPoint, timeout.Token).AsTask());
            }
            await Task.WhenAll(connects);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or FormatException)
        {
            foreach (Socket s in sockets) s.Dispose();
            string why = e is OperationCanceledException
                ? stop.IsCancellationRequested ? "stopped" : $"timed out after {Tandem.Client.DurationParser.Format(_options.ConnectTimeout)}"
                : e.Message;
            throw new IOException($"cannot connect to {_options.Host}: {why}", e);
        }
        return sockets.Select((s, i) => new Connection(i, s, _options.Pipeline)).ToArray();
    }

    /// <summary>
    /// Every <see cref="LoadGeneratorOptions.ProgressInterval"/>: give up stalled connections, and report progress
    /// (merging the connections' histograms into <paramref name="total"/>).
    /// </summary>
    private async Task MonitorAsync(Connection[] connections, LongHistogram total, CancellationToken done)
    {
        using var timer = new PeriodicTimer(_options.ProgressInterval);
        long stallTicks = (long)(_options.StallTimeout.TotalSeconds * Stopwatch.Frequency);
        var interval = new LongHistogram(1, HighestLatencyNs, 3);
        try
        {
            while (await timer.WaitForNextTickAsync(done))
            {
                long now = Stopwatch.GetTimestamp();
                foreach (Connection c in connections)
                {
                    long waiting = Volatile.Read(ref c.WaitingSince);
                    if (waiting != 0 && now - waiting > stallTicks)
                        c.Fail($"no progress for {Tandem.Client.DurationParser.Format(_options.StallTimeout)}");
                }
                if (_options.Progress is not { } progress) continue;
                if (now < _measureStart)
                {
                    progress(new LoadProgress(TimeSpan.Zero, 0, 0, 0, WarmingUp: true));
                    continue;
                }
                long requests = 0;
                foreach (Connection c in connections)
                {
                    requests += Volatile.Read(ref c.Measured);
                    c.Latency.GetIntervalHistogramInto(interval);
                    total.Add(interval);
                }
                TimeSpan elapsed = Stopwatch.GetElapsedTime(_measureStart, now);
                double p99 = total.TotalCount == 0 ? 0 : total.GetValueAtPercentile(99) / 1000.0;
                progress(new LoadProgress(elapsed, requests, requests / Math.Max(elapsed.TotalSeconds, 1e-9), p99, WarmingUp: false));
            }
        }
        catch (OperationCanceledException) when (done.IsCancellationRequested)
        {
        }
    }

    /// <summary>How many of <paramref name="room"/> requests to send now (0 when the run is over for this connection).</summary>
    private int Claim(int room, long now)
    {
        if (_stopping) return 0;
        if (now < _measureStart) return room;
        if (_options.Requests is not { } limit) return now < _measureEnd ? room : 0;
        long before = Interlocked.Add(ref _claimed, room) - room;
        return before >= limit ? 0 : (int)Math.Min(room, limit - before);
    }

    private void NoteError(string text)
    {
        if (_firstError is null) Interlocked.CompareExchange(ref _firstError, text, null);
    }

    private async Task RunConnectionAsync(Connection c)
    {
        int pipeline = _options.Pipeline;
        long[] sent = new long[pipeline]; // send time of each request in flight; the oldest at head
        int head = 0, inFlight = 0;
        long requests = 0, errors = 0, measured = 0, lastMeasured = 0;
        var random = new Random();
        PipeReader reader = c.Reader;
        PipeWriter writer = c.Writer;
        try
        {
            while (true)
            {
                int room = pipeline - inFlight;
                if (room > 0)
                {
                    long now = Stopwatch.GetTimestamp();
                    int n = Claim(room, now);
                    if (n > 0)
                    {
                        for (int i = 0; i < n; i++)
                        {
                            WriteCommand(writer, random);
                            int slot = head + inFlight;
                            sent[slot >= pipeline ? slot - pipeline : slot] = now;
                            inFlight++;
                        }
                        Volatile.Write(ref c.WaitingSince, now);
                        FlushResult flushed = await writer.FlushAsync();
                        if (flushed.IsCompleted || flushed.IsCanceled) throw new IOException("the connection was closed");
                    }
                }
                if (inFlight == 0) break;

                Volatile.Write(ref c.WaitingSince, Stopwatch.GetTimestamp());
                ReadResult result = await reader.ReadAsync();
                long at = Stopwatch.GetTimestamp();
                Volatile.Write(ref c.WaitingSince, 0);
                ReadOnlySequence<byte> buffer = result.Buffer;
                var scan = new SequenceReader<byte>(buffer);
                // Requests of one batch completed by one read have the same latency: record them as one value with a count.
                long runSent = 0;
                int runCount = 0;
                while (inFlight > 0 && RespReplyScanner.TryScan(ref scan, out bool error, wantErrorText: _firstError is null, out string? errorText))
                {
                    long sentAt = sent[head];
                    head = head + 1 == pipeline ? 0 : head + 1;
                    inFlight--;
                    if (sentAt < _measureStart) continue;
                    if (errorText is not null) NoteError(errorText);
                    requests++;
                    if (error) errors++;
                    if (sentAt != runSent)
                    {
                        if (runCount > 0) Record(c.Latency, at - runSent, runCount);
                        runSent = sentAt;
                        runCount = 0;
                    }
                    runCount++;
                }
                if (runCount > 0)
                {
                    Record(c.Latency, at - runSent, runCount);
                    measured = requests;
                    lastMeasured = at;
                    Volatile.Write(ref c.Measured, measured);
                }
                reader.AdvanceTo(scan.Position, buffer.End);
                if (result.IsCanceled) throw new IOException("given up");
                if (inFlight > 0 && result.IsCompleted) throw new IOException("the server closed the connection");
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or InvalidDataException or ObjectDisposedException)
        {
            // Requests in flight on a lost connection are errors (those sent during the warmup are not counted).
            int lost = 0;
            for (int i = 0; i < inFlight; i++)
            {
                int slot = head + i;
                if (sent[slot >= pipeline ? slot - pipeline : slot] >= _measureStart) lost++;
            }
            requests += lost;
            errors += lost;
            NoteError($"connection {c.Id + 1} to {_options.Host}: {c.FailureReason ?? e.Message}");
        }
        finally
        {
            c.Requests = requests;
            c.Errors = errors;
            c.LastMeasuredReply = lastMeasured;
            Volatile.Write(ref c.WaitingSince, 0);
        }
    }

    private static void Record(Recorder recorder, long ticks, int count)
    {
        long ns = (long)(ticks * NsPerTick);
        recorder.RecordValueWithCount(Math.Clamp(ns, 1, HighestLatencyNs), count);
    }

    private void WriteCommand(PipeWriter writer, Random random)
    {
        long key = _keyspace == 1 ? 0 : random.NextInt64(_keyspace);
        bool get = _readPercent == 100 || (_readPercent > 0 && random.Next(100) < _readPercent);
        byte[] prefix = get ? _getPrefix : _setPrefix;
        int length = prefix.Length + KeyDigits + (get ? 2 : _setSuffix.Length);
        if (length <= OneShotLimit)
        {
            Span<byte> span = writer.GetSpan(length);
            prefix.CopyTo(span);
            WriteDigits(span.Slice(prefix.Length, KeyDigits), key);
            if (get) "\r\n"u8.CopyTo(span[(prefix.Length + KeyDigits)..]);
            else _setSuffix.CopyTo(span[(prefix.Length + KeyDigits)..]);
            writer.Advance(length);
        }
        else
        {
            Span<byte> span = writer.GetSpan(prefix.Length + KeyDigits);
            prefix.CopyTo(span);
            WriteDigits(span.Slice(prefix.Length, KeyDigits), key);
            writer.Advance(prefix.Length + KeyDigits);
            writer.Write(_setSuffix);
        }
    }

    private static void WriteDigits(Span<byte> digits, long value)
    {
        for (int i = digits.Length - 1; i >= 0; i--)
        {
            (value, long digit) = Math.DivRem(value, 10);
            digits[i] = (byte)('0' + digit);
        }
    }

    /// <summary>One client connection: its socket, pipes and figures.</summary>
    private sealed class Connection : IDisposable
    {
        private readonly Socket _socket;
        private readonly NetworkStream _stream;

        public Connection(int id, Socket socket, int pipeline)
        {
            Id = id;
            _socket = socket;
            _stream = new NetworkStream(socket, ownsSocket: true);
            Reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, leaveOpen: true));
            Writer = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: Math.Clamp(pipeline * 256, 4096, 64 * 1024), leaveOpen: true));
            Latency = new Recorder(1, HighestLatencyNs, 3, (instance, lowest, highest, digits) => new LongHistogram(instance, lowest, highest, digits));
        }

        public int Id { get; }
        public PipeReader Reader { get; }
        public PipeWriter Writer { get; }

        /// <summary>Latency of measured replies, in nanoseconds; written by the connection's loop only.</summary>
        public Recorder Latency { get; }

        /// <summary>Why the monitor gave the connection up, if it did.</summary>
        public string? FailureReason => Volatile.Read(ref _failureReason);

        private string? _failureReason;

        /// <summary>Measured replies so far, for the progress line.</summary>
        public long Measured;

        /// <summary>When the loop started waiting for the server (a flush or replies); 0 when it is not waiting.</summary>
        public long WaitingSince;

        public long Requests { get; set; }
        public long Errors { get; set; }
        public long LastMeasuredReply { get; set; }

        /// <summary>Gives the connection up (from the monitor): its pending read or flush returns as canceled.</summary>
        public void Fail(string reason)
        {
            if (Interlocked.CompareExchange(ref _failureReason, reason, null) is not null) return;
            Reader.CancelPendingRead();
            Writer.CancelPendingFlush();
        }

        public void Dispose()
        {
            Reader.Complete();
            Writer.Complete();
            _stream.Dispose();
            _socket.Dispose();
        }
    }
}

/// <summary>
/// Finds whole RESP2 replies in received bytes without building them: enough to count replies, tell error replies
/// and skip bulk strings and arrays.
/// </summary>
internal static class RespReplyScanner
{
    /// <summary>
    /// Moves <paramref name="reader"/> past one whole reply. False, with the reader where it was, when the reply is not
    /// all there yet. Throws <see cref="InvalidDataException"/> on bytes that are not RESP2.
    /// </summary>
    /// <param name="reader">Positioned at the start of a reply.</param>
    /// <param name="error">Whether the reply is an error (<c>-...</c>).</param>
    /// <param name="wantErrorText">Whether to decode an error reply's text.</param>
    /// <param name="errorText">The error's text, when it is one and <paramref name="wantErrorText"/>; else null.</param>
    public static bool TryScan(ref SequenceReader<byte> reader, out bool error, bool wantErrorText, out string? errorText)
    {
        long start = reader.Consumed;
        error = false;
        errorText = null;
        long pending = 1;
        bool top = true;
        while (pending > 0)
        {
            if (!reader.TryReadTo(out ReadOnlySpan<byte> line, (byte)'\n'))
            {
                reader.Rewind(reader.Consumed - start);
                return false;
            }
            if (line.Length < 2 || line[^1] != '\r') throw Garbage(line);
            ReadOnlySpan<byte> body = line[1..^1];
            pending--;
            switch (line[0])
            {
                case (byte)'+':
                case (byte)':':
                    break;
                case (byte)'-':
                    if (top)
                    {
                        error = true;
                        if (wantErrorText) errorText = Encoding.UTF8.GetString(body);
                    }
                    break;
                case (byte)'$':
                    long length = Length(line, body);
                    if (length < 0) break;
                    if (reader.Remaining < length + 2)
                    {
                        reader.Rewind(reader.Consumed - start);
                        error = false;
                        errorText = null;
                        return false;
                    }
                    reader.Advance(length);
                    if (!reader.IsNext("\r\n"u8, advancePast: true)) throw new InvalidDataException("a bulk string reply does not end with CRLF");
                    break;
                case (byte)'*':
                    long count = Length(line, body);
                    if (count > 0) pending += count;
                    break;
                default:
                    throw Garbage(line);
            }
            top = false;
        }
        return true;
    }

    private static long Length(ReadOnlySpan<byte> line, ReadOnlySpan<byte> body)
    {
        if (!Utf8Parser.TryParse(body, out long value, out int used) || used != body.Length || value < -1) throw Garbage(line);
        return value;
    }

    private static InvalidDataException Garbage(ReadOnlySpan<byte> line) =>
        new($"not a RESP reply: '{Encoding.ASCII.GetString(line[..Math.Min(line.Length, 40)]).ReplaceLineEndings(" ")}'");
}
