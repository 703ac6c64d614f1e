using System.Net;
using Microsoft.Extensions.Logging;

namespace Tandem.Coordinator;

/// <summary>Settings of a coordinator process.</summary>
public sealed record CoordinatorNodeOptions
{
    /// <summary>Where to listen. Port 0 picks a free port.</summary>
    public required IPEndPoint Listen { get; init; }

    /// <summary>The view service settings.</summary>
    public ViewServiceOptions ViewService { get; init; } = new();

    /// <summary>Where to log. Null logs nothing.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }
}
