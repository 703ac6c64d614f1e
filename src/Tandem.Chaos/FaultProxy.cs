using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace Tandem.Chaos;

/// <summary>Which way bytes travel through a <see cref="FaultProxy"/>.</summary>
internal enum Direction
{
    /// <summary>From the dialing side to the target (requests).</summary>
    Forward,
    /// <summary>From the target back to the dialing side (replies).</summary>
    Backward,
}

/// <summary>One fault applied to one direction of one proxy; several may be active at once and combine.</summary>
/// <param name="BlackHole">Bytes vanish; the connection is closed when the last black hole heals.</param>
/// <param name="DelayMs">Bytes are held this long.</param>
/// <param name="DropShare">Probability that a chunk of bytes closes its connection.</param>
/// <param name="Stall">Bytes are taken in but not passed on (but for <paramref name="TrickleBytes"/>) until the stall heals; then
/// they all go on, in order, and the connection was never closed.</param>
/// <param name="TrickleBytes">During a stall, bytes passed on per 100 ms (0: none).</param>
internal sealed record LinkEffect(bool BlackHole = false, int DelayMs = 0, double DropShare = 0, bool Stall = false, int TrickleBytes = 0);

/// <summary>
/// A TCP proxy for one link (for example "server 2 dials server 1"). Per direction it passes bytes, black-holes them
/// (connections stay open and bytes vanish), delays them, stalls them (takes them in, passes nothing or a trickle on
/// until healed, then everything, without closing anything), or closes connections at random. Effects are added and
/// removed by the nemesis; removing the last black hole closes every connection that lost bytes, so no stream ever
/// resumes with a hole in it. Optionally it rewrites exact byte strings in the replies (<see cref="ReplyRewrites"/>),
/// so that a coordinator naming its leader names the proxy to it instead.
/// </summary>
internal sealed class FaultProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly string _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private readonly List<(Direction Direction, LinkEffect Effect)> _effects = [];
    private readonly HashSet<Connection> _connections = [];
    private State _forward = State.Pass, _backward = State.Pass;

    private sealed record State(bool BlackHole, int DelayMs, double DropShare, bool Stall, int TrickleBytes)
    {
        public static State Pass { get; } = new(false, 0, 0, false, 0);
    }

    public FaultProxy(string name, string target)
    {
        Name = name;
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start(512);
        Address = $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _ = AcceptLoopAsync();
    }

    /// <summary>For logs: which link this is, such as <c>s2->s1</c>.</summary>
    public string Name { get; }

    /// <summary>The <c>127.0.0.1:PORT</c> to dial instead of the target.</summary>
    public string Address { get; }

    private volatile ReplyRewriter? _rewriter;

    /// <summary>
    /// Exact strings replaced in the bytes that come back (<see cref="Direction.Backward"/>), across reads; for
    /// connections made from then on. Empty: none.
    /// </summary>
    public IReadOnlyList<(string From, string To)> ReplyRewrites
    {
        get => _rewriter?.Rules ?? [];
        set => _rewriter = value.Count == 0 ? null : new ReplyRewriter(value);
    }

    public void Add(Direction direction, LinkEffect effect)
    {
        lock (_lock)
        {
            _effects.Add((direction, effect));
            Recompute();
        }
    }

    public void Remove(Direction direction, LinkEffect effect)
    {
        lock (_lock)
        {
            int i = _effects.IndexOf((direction, effect));
            if (i >= 0) _effects.RemoveAt(i);
            Recompute();
        }
    }

    /// <summary>Back to pass-through; connections that lost bytes are closed.</summary>
    public void Heal()
    {
        lock (_lock)
        {
            _effects.Clear();
            Recompute();
        }
    }

    private void Recompute()
    {
        _forward = Combine(Direction.Forward);
        _backward = Combine(Direction.Backward);
        if (!_forward.BlackHole && !_backward.BlackHole)
        {
            foreach (Connection c in _connections.Where(c => c.Tainted).ToList()) c.Close();
        }
    }

    private State Combine(Direction direction)
    {
        bool blackHole = false, stall = false;
        int delay = 0, trickle = int.MaxValue;
        double drop = 0;
        foreach ((Direction d, LinkEffect e) in _effects)
        {
            if (d != direction) continue;
            blackHole |= e.BlackHole;
            delay = Math.Max(delay, e.DelayMs);
            drop = Math.Max(drop, e.DropShare);
            if (e.Stall)
            {
                stall = true;
                trickle = Math.Min(trickle, e.TrickleBytes);
            }
        }
        return blackHole || delay > 0 || drop > 0 || stall ? new State(blackHole, delay, drop, stall, stall ? trickle : 0) : State.Pass;
    }

    private State Current(Direction direction) => direction == Direction.Forward ? Volatile.Read(ref _forward) : Volatile.Read(ref _backward);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        client.NoDelay = true;
        var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var connection = new Connection(client, upstream);
        lock (_lock)
        {
            if (_stop.IsCancellationRequested) { connection.Close(); return; }
            _connections.Add(connection);
        }
        try
        {
            using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(connection.Closed);
            connectTimeout.CancelAfter(TimeSpan.FromSeconds(5));
            await upstream.ConnectAsync(Tandem.Net.RespClientConnection.ParseEndPoint(_target), connectTimeout.Token);
            await Task.WhenAll(PumpAsync(connection, client, upstream, Direction.Forward), PumpAsync(connection, upstream, client, Direction.Backward));
        }
        catch (Exception)
        {
            // Refused, reset or closed by a fault: the dialing side sees its connection end, as it would on a real network.
        }
        finally
        {
            connection.Close();
            lock (_lock) _connections.Remove(connection);
        }
    }

    private async Task PumpAsync(Connection connection, Socket from, Socket to, Direction direction)
    {
        // Bytes wait here until their delay has passed, so a delay holds bytes without reordering them.
        var queue = Channel.CreateUnbounded<(byte[] Bytes, long Due)>(new() { SingleReader = true, SingleWriter = true });
        Task sender = SendLoopAsync(connection, queue.Reader, to, direction);
        ReplyRewriter.Stream? rewrite = direction == Direction.Backward ? _rewriter?.Open() : null;
        try
        {
            var buffer = new byte[16 * 1024];
            while (true)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, connection.Closed);
                if (n == 0) break;
                byte[] chunk = rewrite is null ? buffer.AsSpan(0, n).ToArray() : rewrite.Feed(buffer.AsSpan(0, n));
                if (chunk.Length == 0) continue;
                State state = Current(direction);
                if (state.BlackHole || connection.Tainted)
                {
                    connection.Tainted = true;
                    continue;
                }
                if (state.DropShare > 0 && Random.Shared.NextDouble() < state.DropShare)
                {
                    connection.Close();
                    break;
                }
                long due = state.DelayMs > 0 ? Environment.TickCount64 + state.DelayMs : 0;
                queue.Writer.TryWrite((chunk, due));
            }
        }
        finally
        {
            queue.Writer.TryComplete();
            try
            {
                await sender;
            }
            catch (Exception)
            {
            }
            // One side finished: end the other one too (half-open links are not modelled).
            connection.Close();
        }
    }

    private async Task SendLoopAsync(Connection connection, ChannelReader<(byte[] Bytes, long Due)> queue, Socket to, Direction direction)
    {
        await foreach ((byte[] bytes, long due) in queue.ReadAllAsync(connection.Closed))
        {
            long wait = due - Environment.TickCount64;
            if (wait > 0) await Task.Delay(TimeSpan.FromMilliseconds(wait), connection.Closed);
            if (connection.Tainted) continue;
            int sent = 0;
            while (sent < bytes.Length)
            {
                // A stall is looked at when bytes leave, so bytes taken in during a stall wait here (the reader keeps
                // reading: the dialing side sees its writes accepted) and go on in order once it heals.
                State state = Current(direction);
                if (state.Stall)
                {
                    if (state.TrickleBytes > 0)
                        sent += await to.SendAsync(bytes.AsMemory(sent, Math.Min(state.TrickleBytes, bytes.Length - sent)), SocketFlags.None, connection.Closed);
                    await Task.Delay(state.TrickleBytes > 0 ? 100 : 20, connection.Closed);
                    continue;
                }
                sent += await to.SendAsync(bytes.AsMemory(sent), SocketFlags.None, connection.Closed);
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            _stop.Cancel();
            foreach (Connection c in _connections) c.Close();
            _connections.Clear();
        }
        _listener.Stop();
        return ValueTask.CompletedTask;
    }

    private sealed class Connection(Socket client, Socket upstream)
    {
        private readonly CancellationTokenSource _closed = new();
        private int _isClosed;

        /// <summary>Set once a black hole swallowed bytes: the stream has a hole and must never carry bytes again.</summary>
        public volatile bool Tainted;

        public CancellationToken Closed => _closed.Token;

        public void Close()
        {
            if (Interlocked.Exchange(ref _isClosed, 1) != 0) return;
            try { _closed.Cancel(); } catch (ObjectDisposedException) { }
            Abort(client);
            Abort(upstream);
        }

        private static void Abort(Socket socket)
        {
            try
            {
                // Linger 0: the peer sees a reset, like a dropped connection, not a polite close.
                if (socket.Connected) socket.LingerState = new LingerOption(true, 0);
            }
            catch (Exception)
            {
            }
            socket.Dispose();
        }
    }
}

/// <summary>
/// Replaces exact byte strings in a stream that arrives in pieces: a piece that ends in the beginning of a rule's
/// string is held back until the next piece tells whether it is the whole string. Meant for RESP replies, whose
/// rules end in <c>\r\n</c>: bytes held back are always part of an unfinished line, so more follow.
/// </summary>
internal sealed class ReplyRewriter
{
    private readonly (byte[] From, byte[] To)[] _rules;

    public ReplyRewriter(IReadOnlyList<(string From, string To)> rules)
    {
        Rules = [.. rules];
        _rules = [.. rules.Where(r => r.From.Length > 0).Select(r => (System.Text.Encoding.ASCII.GetBytes(r.From), System.Text.Encoding.ASCII.GetBytes(r.To)))];
    }

    public IReadOnlyList<(string From, string To)> Rules { get; }

    /// <summary>The state of one connection's reply stream.</summary>
    public Stream Open() => new(_rules);

    internal sealed class Stream((byte[] From, byte[] To)[] rules)
    {
        private byte[] _held = [];

        /// <summary>The bytes to pass on for <paramref name="piece"/> (possibly none yet, possibly some held from before).</summary>
        public byte[] Feed(ReadOnlySpan<byte> piece)
        {
            byte[] data = [.. _held, .. piece];
            _held = [];
            var output = new List<byte>(data.Length);
            int i = 0;
            while (i < data.Length)
            {
                ReadOnlySpan<byte> rest = data.AsSpan(i);
                bool replaced = false, partial = false;
                foreach ((byte[] from, byte[] to) in rules)
                {
                    if (rest.StartsWith(from))
                    {
                        output.AddRange(to);
                        i += from.Length;
                        replaced = true;
                        break;
                    }
                    if (rest.Length < from.Length && from.AsSpan().StartsWith(rest)) partial = true;
                }
                if (replaced) continue;
                if (partial)
                {
                    _held = rest.ToArray();
                    break;
                }
                output.Add(data[i++]);
            }
            return [.. output];
        }
    }
}
