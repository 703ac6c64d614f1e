using System.Net;
using System.Net.Sockets;

namespace Tandem.Testing;

/// <summary>
/// Loopback ports for nodes whose addresses must be known before they start (a coordinator group's members name
/// each other). A port the kernel hands out for port 0 comes from its ephemeral range, which it also uses for the
/// source port of every outgoing connection: between this check and the node's bind, another connection could take
/// it (seen once: "address already in use"). These ports come from below that range instead, each handed out once
/// per test process, and only if it binds now.
/// </summary>
public static class TestPorts
{
    private const int Lowest = 10_000;
    private static int _next = Lowest + Random.Shared.Next(0, 4_000); // test processes that run at once start apart

    /// <summary>A loopback port that was free just now and that the kernel does not give to outgoing connections.</summary>
    public static int Next()
    {
        int top = EphemeralLow();
        while (true)
        {
            int port = Interlocked.Increment(ref _next);
            if (port >= top) throw new InvalidOperationException($"no test ports left below {top}");
            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException)
            {
                // in use: try the next one
            }
        }
    }

    private static int EphemeralLow()
    {
        try
        {
            string[] range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return int.Parse(range[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 32_768; // Linux's default
        }
    }
}
