using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Server;

/// <summary>
/// A running Tandem server: the RESP listener, the replication engine and the heartbeat to the coordinator.
/// </summary>
public sealed class ServerNode : IAsyncDisposable
{
    private readonly ServerNodeOptions _options;
    private readonly RespHost _host;
    private readonly ServerHandler _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly ILogger _log;
    private readonly Task _pingLoop;
    private TaskCompletionSource _pingNow = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CoordinatorMembers _coordinators;

    private ServerNode(ServerNodeOptions options, RespHost host, ServerHandler handler, Replica replica)
    {
        _options = options;
        _coordinators = new CoordinatorMembers(options.Coordinator);
        _host = host;
        _handler = handler;
        Replica = replica;
        _log = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Tandem.Server");
        replica.PingRequested += () => _pingNow.TrySetResult();
        _pingLoop = PingLoopAsync(_stop.Token);
        _expiryLoop = ExpiryLoopAsync(_stop.Token);
    }

    private readonly Task _expiryLoop;

    /// <summary>
    /// Active expiry: on the primary, every <see cref="ServerNodeOptions.ExpiryInterval"/>, one replicated write
    /// removes the keys whose deadline has come, so that keys nobody reads again do not stay in memory.
    /// </summary>
    private async Task ExpiryLoopAsync(CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(_options.ExpiryInterval, _options.TimeProvider, ct);
                Replica.ExpireDue();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>This server's address (its identity in views).</summary>
    public string Address => Replica.Me;

    /// <summary>The replication engine (role, view, state).</summary>
    public Replica Replica { get; }

    /// <summary>Starts listening and pinging the coordinator.</summary>
    public static async Task<ServerNode> StartAsync(ServerNodeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        CoordinatorMembers.Parse(options.Coordinator); // a bad list fails before anything listens
        Replica? replica = null;
        var handler = new ServerHandler(options, () => replica)
        {
            FrameTimeout = options.FrameTimeout,
            MaxFrameBytes = options.MaxFrameBytes,
            MaxBufferedBytes = options.MaxBufferedBytes,
        };
        RespHost host = await RespHost.StartAsync(options.Listen, handler, options.LoggerFactory, cancellationToken,
            options.MaxConnections);
        string me = options.AdvertisedAddress ?? Advertise(host.EndPoint);
        replica = new Replica(me, options);
        return new ServerNode(options, host, handler, replica);
    }

    private static string Advertise(IPEndPoint ep)
    {
        string host = ep.Address.Equals(IPAddress.Any) || ep.Address.Equals(IPAddress.IPv6Any)
            ? Dns.GetHostName()
            : ep.Address.ToString();
        return $"{host}:{ep.Port.ToString(CultureInfo.InvariantCulture)}";
    }

    private async Task PingLoopAsync(CancellationToken ct)
    {
        RespClientConnection? conn = null;
        string connected = "";
        int hops = 0; // redirects followed at once since the last pause (bounded: stale leaders may name each other)
        TimeSpan timeout = TimeSpan.FromTicks(Math.Max(_options.PingInterval.Ticks * 5, TimeSpan.FromMilliseconds(500).Ticks));
        try
        {
            while (!ct.IsCancellationRequested)
            {
                Task wake;
                lock (_stop)
                {
                    if (_pingNow.Task.IsCompleted) _pingNow = new(TaskCreationOptions.RunContinuationsAsynchronously);
                    wake = _pingNow.Task;
                }
                bool again = false;
                if (_options.Faults?.CoordinatorLinkCut != true)
                {
                    string target = _coordinators.Current;
                    try
                    {
                        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
                        attempt.CancelAfter(timeout);
                        if (conn is not null && connected != target)
                        {
                            await conn.DisposeAsync();
                            conn = null;
                        }
                        conn ??= await RespClientConnection.ConnectAsync(target, attempt.Token);
                        connected = target;
                        if (Replica.UnreachableBackup is { } report)
                        {
                            RespValue answer = await conn.SendAsync(attempt.Token, Commands.VsUnreachable, Address,
                                report.View.ToString(CultureInfo.InvariantCulture), report.Backup);
                            if (answer.IsError && answer.ErrorCode != ErrorCodes.NotLeader)
                                _log.LogWarning("{Me}: coordinator refused the report of an unreachable backup: {Error}", Address, answer.Text);
                        }
                        long number = Replica.ViewNumberForPing();
                        RespValue reply = await conn.SendAsync(attempt.Token, Commands.VsPing, Address, number.ToString(CultureInfo.InvariantCulture),
                            Replica.HeldView.ToString(CultureInfo.InvariantCulture));
                        // Fault point: the ping counted, its reply never arrived.
                        bool lost = _options.Faults?.Pass(FaultPoint.CoordinatorReply) == true;
                        if (reply.IsError && reply.ErrorCode == ErrorCodes.NotLeader)
                        {
                            // A member that does not lead: go to the leader it names (at once), or to the next member.
                            again = _coordinators.Redirected(target, reply.Text) && ++hops <= _coordinators.All.Count;
                            _log.LogDebug("{Me}: coordinator {Coordinator}: {Error}", Address, target, reply.Text);
                        }
                        else if (reply.IsError) _log.LogWarning("{Me}: coordinator refused ping: {Error}", Address, reply.Text);
                        else if (!lost)
                        {
                            View view = View.FromResp(reply, out bool acked, out long lastAcked);
                            Replica.OnView(view, acked, lastAcked);
                        }
                    }
                    catch (Exception e) when (!ct.IsCancellationRequested)
                    {
                        _log.LogDebug("{Me}: ping to coordinator {Coordinator} failed: {Error}", Address, target, e.Message);
                        _coordinators.Failed(target);
                        if (conn is not null) await conn.DisposeAsync();
                        conn = null;
                    }
                }
                if (!again)
                {
                    hops = 0;
                    await Task.WhenAny(Task.Delay(_options.PingInterval, _options.TimeProvider, ct), wake);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            if (conn is not null) await conn.DisposeAsync();
        }
    }

    /// <summary>Stops the server: no more pings, replication stops, open connections get a moment to finish.</summary>
    public async Task StopAsync()
    {
        _stop.Cancel();
        Replica.Dispose();
        await _host.StopAsync(abort: false);
        await _pingLoop;
        await _expiryLoop;
    }

    /// <summary>
    /// Crashes the server: from this instant it answers nothing and pings no one; every connection is cut.
    /// Its state is gone with the object (a restart at the same address starts empty).
    /// </summary>
    public async Task KillAsync()
    {
        _handler.Killed = true;
        _stop.Cancel();
        Replica.Dispose();
        await _host.StopAsync(abort: true);
        await _pingLoop;
        await _expiryLoop;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested) await KillAsync();
    }
}
