using System.Buffers;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Tandem.Net;

/// <summary>A Kestrel listener that hands every TCP connection to one <see cref="ConnectionHandler"/>.</summary>
public sealed class RespHost : IAsyncDisposable
{
    /// <summary>The default limit on open connections: 10,000.</summary>
    public const int DefaultMaxConnections = 10_000;

    private static readonly byte[] TooManyClients = "-ERR max number of clients reached\r\n"u8.ToArray();

    private readonly KestrelServer _server;
    private readonly ConnectionCounter _counter;
    private int _stopped;

    private RespHost(KestrelServer server, IPEndPoint endPoint, ConnectionCounter counter)
    {
        _server = server;
        EndPoint = endPoint;
        _counter = counter;
    }

    /// <summary>The address actually bound (the real port when 0 was asked for).</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>Connections being served right now (refused ones not counted).</summary>
    public int OpenConnections => Volatile.Read(ref _counter.Open);

    /// <summary>Connections refused so far because <see cref="OpenConnections"/> was at the limit.</summary>
    public long RefusedConnections => Interlocked.Read(ref _counter.Refused);

    /// <summary>
    /// The socket transport's read and write buffer of each connection: 64 KiB. The transport stops reading from
    /// a connection once this much input is waiting past what the handler has examined, and a flush waits once
    /// this much output is waiting to be sent.
    /// </summary>
    public const int TransportBufferBytes = 64 * 1024;

    /// <summary>
    /// Starts listening on <paramref name="endPoint"/> (port 0 picks a free port). Each connection's input is
    /// bounded by the handler (<see cref="RespConnectionHandler.MaxFrameBytes"/>,
    /// <see cref="RespConnectionHandler.MaxBufferedBytes"/>) plus <see cref="TransportBufferBytes"/> read ahead by
    /// the transport. At most <paramref name="maxConnections"/> connections are served at once (default
    /// <see cref="DefaultMaxConnections"/>); one more gets <c>-ERR max number of clients reached</c> and is
    /// closed at once, as Redis does. Node-to-node connections count too.
    /// </summary>
    public static async Task<RespHost> StartAsync(IPEndPoint endPoint, ConnectionHandler handler,
        ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default,
        int maxConnections = DefaultMaxConnections)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        loggerFactory ??= NullLoggerFactory.Instance;
        var options = new KestrelServerOptions
        {
            ApplicationServices = new ServiceCollection().AddSingleton(loggerFactory).BuildServiceProvider(),
            AddServerHeader = false,
        };
        // Kestrel's own MaxConcurrentConnections would drop the extra connection without a word; the counter
        // below answers it first, so that a Redis client reports why.
        var counter = new ConnectionCounter();
        ListenOptions? listenOptions = null;
        options.Listen(endPoint, listen =>
        {
            listenOptions = listen;
            listen.Run(connection => counter.RunAsync(connection, handler, maxConnections));
        });
        var transport = new SocketTransportFactory(Options.Create(new SocketTransportOptions
        {
            NoDelay = true,
            // Kestrel's MaxRequestBufferSize is read by its HTTP layer only; for a plain connection handler these
            // two are the transport's bounds.
            MaxReadBufferSize = TransportBufferBytes,
            MaxWriteBufferSize = TransportBufferBytes,
            // Run the read loops on the socket threads instead of handing each read to the thread pool: a request
            // costs one thread switch less (docs/benchmarks.md). Safe because no handler blocks a thread: they
            // take short locks only, and wait asynchronously.
            UnsafePreferInlineScheduling = true,
        }), loggerFactory);
        var server = new KestrelServer(Options.Create(options), transport, loggerFactory);
        await server.StartAsync(new NoHttpApplication(), cancellationToken);
        IPEndPoint actual = listenOptions?.IPEndPoint ?? endPoint;
        return new RespHost(server, actual, counter);
    }

    /// <summary>
    /// Stops listening. With <paramref name="abort"/> every open connection is cut at once (a crash, as seen
    /// from the network); otherwise connections get a moment to finish.
    /// </summary>
    public async Task StopAsync(bool abort = false)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        using var cts = new CancellationTokenSource(abort ? TimeSpan.Zero : TimeSpan.FromSeconds(2));
        try
        {
            await _server.StopAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
        }
        _server.Dispose();
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => new(StopAsync(abort: true));

    private sealed class ConnectionCounter
    {
        public int Open;
        public long Refused;

        public async Task RunAsync(ConnectionContext connection, ConnectionHandler handler, int max)
        {
            if (Interlocked.Increment(ref Open) > max)
            {
                Interlocked.Decrement(ref Open);
                Interlocked.Increment(ref Refused);
                await RefuseAsync(connection);
                return;
            }
            try
            {
                await handler.OnConnectedAsync(connection);
            }
            finally
            {
                Interlocked.Decrement(ref Open);
            }
        }

        private static async Task RefuseAsync(ConnectionContext connection)
        {
            try
            {
                connection.Transport.Output.Write(TooManyClients);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                await connection.Transport.Output.FlushAsync(cts.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionResetException
                                         or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException)
            {
                // The refused client is gone already.
            }
            finally
            {
                await connection.Transport.Output.CompleteAsync();
                await connection.Transport.Input.CompleteAsync();
            }
        }
    }

    private sealed class NoHttpApplication : IHttpApplication<object>
    {
        public object CreateContext(IFeatureCollection contextFeatures) => new();
        public Task ProcessRequestAsync(object context) => Task.CompletedTask;
        public void DisposeContext(object context, Exception? exception) { }
    }
}
