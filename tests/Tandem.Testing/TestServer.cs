using System.Net;
using Tandem.Server;

namespace Tandem.Testing;

/// <summary>One server slot of a <see cref="TestCluster"/>: a fixed address whose process may be killed and restarted.</summary>
public sealed class TestServer
{
    private readonly ServerNodeOptions _options;

    internal TestServer(ServerNodeOptions options, ServerNode node, FaultInjection faults)
    {
        _options = options;
        Node = node;
        Faults = faults;
        Address = node.Address;
    }

    /// <summary>The server's address, its identity.</summary>
    public string Address { get; }

    /// <summary>The IP endpoint behind <see cref="Address"/>.</summary>
    public IPEndPoint EndPoint => IPEndPoint.Parse(Address);

    /// <summary>The running node, or null while killed.</summary>
    public ServerNode? Node { get; private set; }

    /// <summary>This slot's fault switches (they survive restarts).</summary>
    public FaultInjection Faults { get; }

    /// <summary>True while the server runs.</summary>
    public bool IsRunning => Node is not null;

    internal async Task KillAsync()
    {
        ServerNode? node = Node;
        Node = null;
        if (node is not null) await node.KillAsync();
    }

    internal async Task RestartAsync()
    {
        if (Node is not null) await KillAsync();
        // The port was ours a moment ago; another socket may grab it in between, so retry briefly.
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                Node = await ServerNode.StartAsync(_options with { Listen = EndPoint, AdvertisedAddress = Address });
                return;
            }
            catch (Exception e) when (e is IOException or InvalidOperationException && attempt < 50)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <inheritdoc />
    public override string ToString() => Address;
}
