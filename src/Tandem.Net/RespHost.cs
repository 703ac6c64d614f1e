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
    private readonly KestrelServer _server;
    private int _stopped;

    private RespHost(KestrelServer server, IPEndPoint endPoint)
    {
        _server = server;
        EndPoint = endPoint;
    }

    /// <summary>The address actually bound (the real port when 0 was asked for).</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>
    /// Starts listening on <paramref name="endPoint"/> (port 0 picks a free port). Each connection buffers at
    /// most <paramref name="maxBufferedBytes"/> of unparsed input (default 1 MiB); it must exceed the largest
    /// frame the handler accepts, or such a frame can never be read whole.
    /// </summary>
    public static async Task<RespHost> StartAsync(IPEndPoint endPoint, ConnectionHandler handler,
        ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default, long maxBufferedBytes = 1024 * 1024)
    {
        loggerFactory ??= NullLoggerFactory.Instance;
        var options = new KestrelServerOptions
        {
            ApplicationServices = new ServiceCollection().AddSingleton(loggerFactory).BuildServiceProvider(),
            AddServerHeader = false,
        };
        options.Limits.MaxRequestBufferSize = maxBufferedBytes;
        ListenOptions? listenOptions = null;
        options.Listen(endPoint, listen =>
        {
            listenOptions = listen;
            listen.Run(connection => handler.OnConnectedAsync(connection));
        });
        var transport = new SocketTransportFactory(Options.Create(new SocketTransportOptions { NoDelay = true }), loggerFactory);
        var server = new KestrelServer(Options.Create(options), transport, loggerFactory);
        await server.StartAsync(new NoHttpApplication(), cancellationToken);
        IPEndPoint actual = listenOptions?.IPEndPoint ?? endPoint;
        return new RespHost(server, actual);
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

    private sealed class NoHttpApplication : IHttpApplication<object>
    {
        public object CreateContext(IFeatureCollection contextFeatures) => new();
        public Task ProcessRequestAsync(object context) => Task.CompletedTask;
        public void DisposeContext(object context, Exception? exception) { }
    }
}
