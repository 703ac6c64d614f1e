using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Coordinator;

/// <summary>
/// The Redis Sentinel discovery API, answered by every member of the group from the view it has applied (a follower
/// may lag the leader by a moment, never answers a view that was not committed): <c>SENTINEL
/// get-master-addr-by-name</c>, <c>masters</c>, <c>master</c>, <c>replicas</c>/<c>slaves</c>, <c>sentinels</c>,
/// <c>is-master-down-by-addr</c>, <c>myid</c>, <c>ckquorum</c>; <c>INFO</c>, <c>ROLE</c>, <c>CLIENT</c>; and
/// <c>+switch-master</c> published to subscribers when the view's primary changes. The one master is the service
/// (<see cref="ServiceName"/>), its address the current view's primary, its one replica the view's backup, the other
/// sentinels the other members of the group.
/// </summary>
public sealed partial class CoordinatorHandler
{
    /// <summary>The service name a coordinator answers for when none is set: <c>tandem</c>.</summary>
    public const string DefaultServiceName = "tandem";

    /// <summary>The channel a change of primary is published on, as Redis Sentinel names it.</summary>
    public const string SwitchMasterChannel = "+switch-master";

    private readonly Lock _sentinelLock = new();
    private readonly PubSubHub _events = new();
    private string _announcedPrimary = "";
    private readonly string _serviceName = DefaultServiceName;

    /// <summary>
    /// The name of the one master this coordinator answers for in the Sentinel API (<c>--service-name</c>; default
    /// <see cref="DefaultServiceName"/>): one word of printable ASCII.
    /// </summary>
    public string ServiceName
    {
        get => _serviceName;
        init => _serviceName = IsServiceName(value) ? value : throw new ArgumentException($"'{value}' is not a service name: one word of printable ASCII", nameof(value));
    }

    /// <summary>Whether <paramref name="name"/> may be a <see cref="ServiceName"/>: 1 to 128 printable ASCII characters, no space.</summary>
    public static bool IsServiceName(string? name) =>
        name is { Length: > 0 and <= 128 } && name.All(c => c is > ' ' and < (char)127);

    /// <summary>The channels clients subscribe to on this coordinator (<c>+switch-master</c>).</summary>
    public PubSubHub Events => _events;

    /// <summary>This member's Sentinel run id (<c>SENTINEL myid</c>): 40 hexadecimal digits derived from its address.</summary>
    public string RunId => RunIdOf(Address);

    private void AddSentinelCommands()
    {
        AddPubSubCommands(_events);
        _announcedPrimary = ViewService.CurrentView.Primary;
        // Announced once the new primary has acknowledged its view: by then it knows its role, so a client that
        // moves to it at once finds it serving (ROLE says master, writes are taken), not still a replica.
        ViewService.ViewAcknowledged += AnnounceSwitch;
        Table.Add("SENTINEL", -2, CommandFlags.Fast, (command, _) => new(Sentinel(command)));
        Table.Add("INFO", -1, CommandFlags.Fast, (command, _) => new(RespValue.Bulk(Info(command))));
        Table.Add("ROLE", 1, CommandFlags.Fast, (_, _) => new(RespValue.Array([RespValue.Bulk("sentinel"), RespValue.Array([RespValue.Bulk(ServiceName)])])));
        Table.Add("CLIENT", -2, CommandFlags.Fast, (command, connection) => new(Client(command, connection)));
    }

    /// <inheritdoc />
    protected override ValueTask<RespValue?> ExecuteAsync(RespCommand command, CommandSpec<CommandHandler>? spec, ConnectionContext connection) =>
        SubscribedContextReply(command, spec, connection) is { } reply ? new(reply) : base.ExecuteAsync(command, spec, connection);

    /// <summary>Publishes <c>+switch-master name old-ip old-port new-ip new-port</c> when a view with another primary is acknowledged.</summary>
    private void AnnounceSwitch(View view)
    {
        string old;
        lock (_sentinelLock)
        {
            old = _announcedPrimary;
            if (view.Primary == "" || view.Primary == old) return;
            _announcedPrimary = view.Primary;
        }
        if (old == "") return; // the first primary: nothing switched
        (string oldHost, string oldPort) = View.SplitAddress(old);
        (string newHost, string newPort) = View.SplitAddress(view.Primary);
        _events.Publish(SwitchMasterChannel, $"{ServiceName} {oldHost} {oldPort} {newHost} {newPort}");
    }

    /// <summary>
    /// The primary clients are sent to: the last one that acknowledged its view (so that it serves when they
    /// arrive), or the view's primary before any has.
    /// </summary>
    private string AnnouncedPrimary(SentinelState state)
    {
        lock (_sentinelLock) return _announcedPrimary != "" ? _announcedPrimary : state.View.Primary;
    }

    private RespValue Sentinel(RespCommand command)
    {
        string sub = command.Text(1).ToLowerInvariant();
        int? arity = sub switch
        {
            "masters" or "myid" or "help" => 2,
            "master" or "replicas" or "slaves" or "sentinels" or "get-master-addr-by-name" or "ckquorum" => 3,
            "is-master-down-by-addr" => 6,
            _ => null,
        };
        if (arity is null)
            return RespValue.Error($"{ErrorCodes.Err} unknown subcommand '{CommandErrors.Quote(command[1])}'. Try SENTINEL HELP.");
        if (command.Count != arity) return CommandErrors.WrongArity("sentinel|" + sub);
        if (sub is "master" or "replicas" or "slaves" or "sentinels" or "ckquorum" && command.Text(2) != ServiceName)
            return RespValue.Error($"{ErrorCodes.Err} No such master with that name");
        SentinelState state = Snapshot();
        return sub switch
        {
            "masters" => RespValue.Array([MasterFields(state)]),
            "master" => MasterFields(state),
            "replicas" or "slaves" => RespValue.Array(state.View.Backup == "" ? [] : [ReplicaFields(state)]),
            "sentinels" => RespValue.Array(state.Others.Select(m => SentinelFields(state, m)).ToArray()),
            "get-master-addr-by-name" => command.Text(2) != ServiceName || AnnouncedPrimary(state) == ""
                ? RespValue.Array(null)
                : AddressPair(AnnouncedPrimary(state)),
            "is-master-down-by-addr" => IsMasterDown(command, state),
            "myid" => RespValue.Bulk(RunId),
            "ckquorum" => state.Usable >= state.Quorum
                ? RespValue.Simple($"OK {state.Usable} usable Sentinels. Quorum and failover authorization can be reached")
                : RespValue.Error($"NOQUORUM {state.Usable} usable Sentinels. Not enough available Sentinels to reach the specified quorum for this master"),
            _ => RespValue.Array(HelpLines.Select(RespValue.Simple).ToArray()),
        };
    }

    private static readonly string[] HelpLines =
    [
        "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CKQUORUM <master-name>", "    Check if the current Sentinel configuration is able to reach the quorum needed.",
        "GET-MASTER-ADDR-BY-NAME <master-name>", "    Return the ip and port number of the master with that name.",
        "IS-MASTER-DOWN-BY-ADDR <ip> <port> <current-epoch> <runid>", "    Check if the master specified by ip:port is down from current Sentinel's point of view.",
        "MASTER <master-name>", "    Show the state and info of the specified master.",
        "MASTERS", "    Show a list of monitored masters and their state.",
        "MYID", "    Return the ID of the Sentinel instance.",
        "REPLICAS <master-name>", "    Show a list of replicas for this master and their state.",
        "SENTINELS <master-name>", "    Show a list of Sentinel instances for this master and their state.",
        "HELP", "    Print this help.",
    ];

    /// <summary>What one reply is made from, read once so that its fields agree.</summary>
    private sealed record SentinelState(View View, bool Acked, bool Leading, ViewServiceStatus? Status, IReadOnlyList<GroupMember> Others,
        int Quorum, int Usable, long DeadTimeMs)
    {
        /// <summary>The leader's record of <paramref name="address"/>'s pings; null on a follower (only the leader hears pings).</summary>
        public ServerStatus? Server(string address) => Status?.Servers.FirstOrDefault(s => s.Address == address);

        /// <summary>Whether this member knows <paramref name="address"/> to be down: no address, or the leader saw it dead.</summary>
        public bool Down(string address) => address == "" || Server(address) is { Alive: false };

        /// <summary>Milliseconds since <paramref name="address"/> last pinged the leader; 0 when not known here.</summary>
        public string SincePing(string address) => Num(Server(address) is { } s ? (long)s.SinceLastPing.TotalMilliseconds : 0);
    }

    private SentinelState Snapshot()
    {
        View view = ViewService.GetView(out bool acked, out _);
        bool leading = ViewService.IsLeading;
        IReadOnlyList<GroupMember> members = Group?.Members ?? [];
        GroupMember[] others = members.Where(m => m.AddressKnown && m.Address != Address).ToArray();
        int size = Group is null ? 1 : Math.Max(1, Group.Configuration.Count);
        int usable = Group is null ? 1 : 1 + others.Count(m => m.Role != "unreachable");
        return new SentinelState(view, acked, leading, leading ? ViewService.GetStatus() : null, others, size / 2 + 1, usable,
            (long)ViewService.Options.DeadTime.TotalMilliseconds);
    }

    private RespValue MasterFields(SentinelState state)
    {
        string primary = state.View.Primary;
        (string ip, string port) = View.SplitAddress(primary);
        bool down = state.Down(primary);
        string since = state.SincePing(primary);
        return Fields(
            ("name", ServiceName), ("ip", ip), ("port", port), ("runid", primary == "" ? "" : RunIdOf(primary)),
            ("flags", down ? "s_down,o_down,master" : "master"),
            ("link-pending-commands", "0"), ("link-refcount", "1"), ("last-ping-sent", "0"),
            ("last-ok-ping-reply", since), ("last-ping-reply", since), ("down-after-milliseconds", Num(state.DeadTimeMs)),
            ("info-refresh", since), ("role-reported", "master"), ("role-reported-time", since),
            ("config-epoch", Num(state.View.Number)),
            ("num-slaves", state.View.Backup == "" ? "0" : "1"), ("num-other-sentinels", Num(state.Others.Count)),
            ("quorum", Num(state.Quorum)), ("failover-timeout", Num(state.DeadTimeMs)), ("parallel-syncs", "1"));
    }

    private static RespValue ReplicaFields(SentinelState state)
    {
        string backup = state.View.Backup;
        (string ip, string port) = View.SplitAddress(backup);
        (string masterIp, string masterPort) = View.SplitAddress(state.View.Primary);
        string since = state.SincePing(backup);
        // The leader knows whether the backup holds this view's state; a follower says what the log says: acknowledged.
        bool synced = state.Server(backup) is { } s ? s.HeldView == state.View.Number : state.Acked;
        return Fields(
            ("name", backup), ("ip", ip), ("port", port), ("runid", RunIdOf(backup)),
            ("flags", state.Down(backup) ? "s_down,slave" : "slave"),
            ("link-pending-commands", "0"), ("link-refcount", "1"), ("last-ping-sent", "0"),
            ("last-ok-ping-reply", since), ("last-ping-reply", since), ("down-after-milliseconds", Num(state.DeadTimeMs)),
            ("info-refresh", since), ("role-reported", "slave"), ("role-reported-time", since),
            ("master-link-down-time", "0"), ("master-link-status", synced ? "ok" : "err"),
            ("master-host", masterIp), ("master-port", masterPort), ("slave-priority", "100"),
            ("slave-repl-offset", "0"), ("replica-announced", "1"));
    }

    private static RespValue SentinelFields(SentinelState state, GroupMember member)
    {
        (string ip, string port) = View.SplitAddress(member.Address);
        string id = RunIdOf(member.Address);
        bool unreachable = member.Role == "unreachable";
        return Fields(
            ("name", id), ("ip", ip), ("port", port), ("runid", id),
            ("flags", unreachable ? "s_down,sentinel,disconnected" : "sentinel"),
            ("link-pending-commands", "0"), ("link-refcount", "1"), ("last-ping-sent", "0"),
            ("last-ok-ping-reply", "0"), ("last-ping-reply", "0"), ("down-after-milliseconds", Num(state.DeadTimeMs)),
            ("last-hello-message", "0"), ("voted-leader", "?"), ("voted-leader-epoch", "0"));
    }

    /// <summary>
    /// <c>SENTINEL is-master-down-by-addr ip port epoch runid</c>: <c>[down, leader, epoch]</c>. Down when the address is
    /// the current primary and this member, leading, saw it dead. Coordinators elect no Sentinel leader (the group's
    /// Raft leader decides), so the vote is always <c>*</c>, epoch 0.
    /// </summary>
    private static RespValue IsMasterDown(RespCommand command, SentinelState state)
    {
        if (!command.TryLong(3, out long port) || !command.TryLong(4, out _))
            return RespValue.Error($"{ErrorCodes.Err} value is not an integer or out of range");
        (string ip, string primaryPort) = View.SplitAddress(state.View.Primary);
        bool isPrimary = state.View.Primary != "" && command.Text(2) == ip && primaryPort == Num(port);
        return RespValue.Array([RespValue.Int(isPrimary && state.Down(state.View.Primary) ? 1 : 0), RespValue.Bulk("*"), RespValue.Int(0)]);
    }

    /// <summary>
    /// <c>INFO [section ...]</c>: <c># Server</c> (<c>redis_mode:sentinel</c>, which clients read to know a sentinel) and
    /// <c># Sentinel</c>, in Redis's <c>field:value</c> lines. Sections: <c>server</c>, <c>sentinel</c>, <c>default</c>,
    /// <c>all</c>, <c>everything</c>; any other gives nothing.
    /// </summary>
    private string Info(RespCommand command)
    {
        var sections = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 1; i < command.Count; i++) sections.Add(command.Text(i));
        bool all = sections.Count == 0 || sections.Overlaps(["default", "all", "everything"]);
        SentinelState state = Snapshot();
        var text = new StringBuilder();
        if (all || sections.Contains("server"))
        {
            (_, string port) = View.SplitAddress(Address);
            text.Append("# Server\r\n")
                .Append("redis_version:7.2.0\r\n")
                .Append("redis_mode:sentinel\r\n")
                .Append(CultureInfo.InvariantCulture, $"tcp_port:{port}\r\n")
                .Append(CultureInfo.InvariantCulture, $"run_id:{RunId}\r\n")
                .Append(CultureInfo.InvariantCulture, $"tandem_coordinator_role:{(state.Leading ? "leader" : "follower")}\r\n")
                .Append(CultureInfo.InvariantCulture, $"tandem_view:{state.View.Number}\r\n")
                .Append("\r\n");
        }
        if (all || sections.Contains("sentinel"))
        {
            string status = state.Down(state.View.Primary) ? "odown" : "ok";
            text.Append("# Sentinel\r\n")
                .Append("sentinel_masters:1\r\n")
                .Append("sentinel_tilt:0\r\n")
                .Append("sentinel_tilt_since_seconds:-1\r\n")
                .Append("sentinel_running_scripts:0\r\n")
                .Append("sentinel_scripts_queue_length:0\r\n")
                .Append("sentinel_simulate_failure_flags:0\r\n")
                .Append(CultureInfo.InvariantCulture,
                    $"master0:name={ServiceName},status={status},address={state.View.Primary},slaves={(state.View.Backup == "" ? 0 : 1)},sentinels={state.Others.Count + 1}\r\n");
        }
        return text.ToString();
    }

    /// <summary><c>CLIENT SETNAME / GETNAME / SETINFO / ID</c>, what clients send on connecting.</summary>
    private static RespValue Client(RespCommand command, ConnectionContext connection)
    {
        string sub = command.Text(1).ToUpperInvariant();
        switch (sub)
        {
            case "SETNAME" when command.Count == 3:
                if (connection is not null) connection.Items["client-name"] = command.Text(2);
                return RespValue.Ok;
            case "GETNAME" when command.Count == 2:
                return connection?.Items.TryGetValue("client-name", out object? name) == true && name is string s ? RespValue.Bulk(s) : RespValue.NullBulk;
            case "SETINFO" when command.Count == 4:
                return RespValue.Ok;
            case "ID" when command.Count == 2:
                return RespValue.Int(connection is null ? 0 : Math.Abs((long)connection.ConnectionId.GetHashCode()));
            case "SETNAME" or "GETNAME" or "SETINFO" or "ID":
                return CommandErrors.WrongArity("client|" + sub.ToLowerInvariant());
            default:
                return RespValue.Error($"{ErrorCodes.Err} unknown subcommand '{CommandErrors.Quote(command[1])}'. Try CLIENT HELP.");
        }
    }

    private static RespValue AddressPair(string address)
    {
        (string host, string port) = View.SplitAddress(address);
        return RespValue.Array([RespValue.Bulk(host), RespValue.Bulk(port)]);
    }

    /// <summary>A Sentinel run id for a node: the SHA-1 of its address, 40 lower-case hex digits (stable across restarts).</summary>
    private static string RunIdOf(string address) => Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(address)));

    private static RespValue Fields(params (string Name, string Value)[] fields)
    {
        var items = new RespValue[fields.Length * 2];
        for (int i = 0; i < fields.Length; i++)
        {
            items[2 * i] = RespValue.Bulk(fields[i].Name);
            items[2 * i + 1] = RespValue.Bulk(fields[i].Value);
        }
        return RespValue.Array(items);
    }

}
