using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Net;

namespace Tandem.Coordinator;

/// <summary>
/// A running coordinator: the view service engine, its timer, its RESP listener and, normally, its member of the
/// replicated, persistent coordinator group.
/// </summary>
public sealed class CoordinatorNode : IAsyncDisposable
{
    private readonly RespHost _host;
    private readonly IDisposable _timer;

    private readonly CoordinatorHandler _handler;

    private CoordinatorNode(ViewService viewService, CoordinatorGroup? group, RespHost host, CoordinatorHandler handler, IDisposable timer, string address)
    {
        _handler = handler;
        ViewService = viewService;
        Group = group;
        _host = host;
        _timer = timer;
        Address = address;
    }

    /// <summary>This process's member of the coordinator group; null when the engine runs alone, in memory.</summary>
    public CoordinatorGroup? Group { get; }

    /// <summary>The address actually bound, <c>HOST:PORT</c> (for example <c>127.0.0.1:41234</c>).</summary>
    public string Address { get; }

    /// <summary>The engine.</summary>
    public ViewService ViewService { get; }

    /// <summary>The channels clients subscribe to on this coordinator (<c>+switch-master</c> is published there).</summary>
    public PubSubHub Events => _handler.Events;

    /// <summary>Starts listening on <see cref="CoordinatorNodeOptions.Listen"/> and starts applying the view rules.</summary>
    public static async Task<CoordinatorNode> StartAsync(CoordinatorNodeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ILogger log = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Tandem.Coordinator");
        CoordinatorGroup? group = null;
        ViewService viewService;
        if (options.Group is { } groupOptions)
            (group, viewService) = await CoordinatorGroup.StartAsync(groupOptions, options.ViewService, options.LoggerFactory, cancellationToken);
        else
            viewService = new ViewService(options.ViewService);
        viewService.ViewChanged += view => log.LogInformation("new {View}", view);
        var handler = new CoordinatorHandler(viewService, group)
        {
            ServiceName = options.ServiceName,
            MaxFrameBytes = CoordinatorNodeOptions.MaxFrameBytes,
            MaxBufferedBytes = options.MaxBufferedBytes,
            FrameTimeout = options.FrameTimeout,
        };
        RespHost host;
        try
        {
            host = await RespHost.StartAsync(options.Listen, handler, options.LoggerFactory, cancellationToken, options.MaxConnections);
        }
        catch
        {
            if (group is not null) await group.DisposeAsync();
            throw;
        }
        string address = options.Group?.Address ?? Advertise(host.EndPoint);
        handler.Address = address;
        return new CoordinatorNode(viewService, group, host, handler, viewService.Start(), address);
    }

    /// <summary>Stops the timer, the listener (open connections get a moment to finish) and leaves the group.</summary>
    public async Task StopAsync()
    {
        _timer.Dispose();
        await _host.StopAsync();
        if (Group is not null) await Group.DisposeAsync();
    }

    /// <summary>
    /// Crashes the coordinator: from this instant it answers nothing and every connection is cut; its member of the
    /// group stops (what it wrote to its data directory stays, as after a kill -9).
    /// </summary>
    public async Task KillAsync()
    {
        _handler.Killed = true;
        _timer.Dispose();
        await _host.StopAsync(abort: true);
        if (Group is not null) await Group.DisposeAsync();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await StopAsync();

    private static string Advertise(IPEndPoint ep) =>
        ep.Address.Equals(IPAddress.Any) || ep.Address.Equals(IPAddress.IPv6Any)
            ? $"{Dns.GetHostName()}:{ep.Port.ToString(CultureInfo.InvariantCulture)}"
            : ep.ToString();
}
