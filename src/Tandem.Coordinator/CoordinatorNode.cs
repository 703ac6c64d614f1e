using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Net;

namespace Tandem.Coordinator;

/// <summary>A running coordinator: the view service engine, its timer and its RESP listener.</summary>
public sealed class CoordinatorNode : IAsyncDisposable
{
    private readonly RespHost _host;
    private readonly IDisposable _timer;

    private CoordinatorNode(ViewService viewService, RespHost host, IDisposable timer)
    {
        ViewService = viewService;
        _host = host;
        _timer = timer;
        Address = Advertise(host.EndPoint);
    }

    /// <summary>The address actually bound, <c>HOST:PORT</c> (for example <c>127.0.0.1:41234</c>).</summary>
    public string Address { get; }

    /// <summary>The engine.</summary>
    public ViewService ViewService { get; }

    /// <summary>Starts listening on <see cref="CoordinatorNodeOptions.Listen"/> and starts applying the view rules.</summary>
    public static async Task<CoordinatorNode> StartAsync(CoordinatorNodeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var viewService = new ViewService(options.ViewService);
        ILogger log = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Tandem.Coordinator");
        viewService.ViewChanged += view => log.LogInformation("new {View}", view);
        var handler = new CoordinatorHandler(viewService)
        {
            MaxFrameBytes = CoordinatorNodeOptions.MaxFrameBytes,
            MaxBufferedBytes = options.MaxBufferedBytes,
            FrameTimeout = options.FrameTimeout,
        };
        RespHost host = await RespHost.StartAsync(options.Listen, handler, options.LoggerFactory, cancellationToken, options.MaxConnections);
        return new CoordinatorNode(viewService, host, viewService.Start());
    }

    /// <summary>Stops the timer and the listener; open connections get a moment to finish.</summary>
    public async Task StopAsync()
    {
        _timer.Dispose();
        await _host.StopAsync();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await StopAsync();

    private static string Advertise(IPEndPoint ep) =>
        ep.Address.Equals(IPAddress.Any) || ep.Address.Equals(IPAddress.IPv6Any)
            ? $"{Dns.GetHostName()}:{ep.Port.ToString(CultureInfo.InvariantCulture)}"
            : ep.ToString();
}
