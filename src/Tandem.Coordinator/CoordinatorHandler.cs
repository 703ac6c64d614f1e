using System.Buffers;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Coordinator;

/// <summary>
/// The coordinator's RESP endpoint: <c>PING</c>, <c>VS.PING addr viewnum</c>,
/// <c>VS.UNREACHABLE primary viewnum backup</c>, <c>VS.VIEW</c>, <c>VS.STATUS</c> (one JSON bulk string),
/// <c>VS.MEMBER</c>, <c>VS.NEWHISTORY</c>, <c>VS.ADDMEMBER</c> and <c>VS.REMOVEMEMBER</c>. A member of a group
/// that does not lead answers <c>PING</c> and <c>VS.MEMBER</c> itself and everything else with
/// <c>NOTLEADER</c>, naming the leader when it knows it. Every member answers the Redis Sentinel discovery API
/// (CoordinatorHandler.Sentinel.cs). Anything unknown gets an <c>ERR</c> reply.
/// </summary>
public sealed partial class CoordinatorHandler : RespConnectionHandler
{
    /// <summary>Below a server's ping timeout (at least 500 ms), so waiting for an ack's commit never fails the ping.</summary>
    private static readonly TimeSpan MaxAckWait = TimeSpan.FromMilliseconds(300);

    /// <summary>Creates the endpoint of <paramref name="viewService"/>, a member of <paramref name="group"/> when one is given.</summary>
    public CoordinatorHandler(ViewService viewService, CoordinatorGroup? group = null, string address = "")
    {
        ViewService = viewService ?? throw new ArgumentNullException(nameof(viewService));
        Group = group;
        Address = address;
        Table.Add(Commands.VsMember, 1, CommandFlags.Fast | CommandFlags.Internal, (_, _) => new(RespValue.Bulk(MemberJson())));
        // The rest only the leader answers.
        Table.Add(Commands.VsPing, -3, CommandFlags.Internal, LeaderOnly(PingAsync));
        Table.Add(Commands.VsUnreachable, 4, CommandFlags.Internal, LeaderOnly(c => new(Unreachable(c))));
        Table.Add(Commands.VsView, 1, CommandFlags.Internal, LeaderOnly(_ => new(CurrentView())));
        Table.Add(Commands.VsStatus, 1, CommandFlags.Internal, LeaderOnly(_ => new(RespValue.Bulk(StatusJson(ViewService.GetStatus())))));
        Table.Add(Commands.VsNewHistory, -1, CommandFlags.Internal, LeaderOnly(NewHistoryAsync));
        Table.Add(Commands.VsAddMember, 2, CommandFlags.Internal, LeaderOnly(c => ChangeMembersAsync(c, add: true)));
        Table.Add(Commands.VsRemoveMember, 2, CommandFlags.Internal, LeaderOnly(c => ChangeMembersAsync(c, add: false)));
        AddSentinelCommands();
    }

    /// <summary>The engine this endpoint serves.</summary>
    public ViewService ViewService { get; }

    /// <summary>This process's member of the coordinator group; null when the engine runs alone, in memory.</summary>
    public CoordinatorGroup? Group { get; }

    /// <summary>This endpoint's own address (reported by <c>VS.MEMBER</c>).</summary>
    public string Address { get; set; }

    /// <summary>Set when the node is crashed (<see cref="CoordinatorNode.KillAsync"/>): from then on nothing is answered.</summary>
    public volatile bool Killed;

    /// <inheritdoc />
    protected override Delivery Admit(RespCommand command) => Killed ? Delivery.Drop : Delivery.Deliver;

    /// <summary>Answers one command that needs no waiting (no I/O); commands that wait are answered as if the wait timed out.</summary>
    public RespValue Execute(RespCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        Table.TryFind(command.Args[0], out CommandSpec<CommandHandler>? spec);
        ValueTask<RespValue?> reply = ExecuteAsync(command, spec, null!);
        return reply.IsCompleted ? reply.Result! : RespValue.Error($"{ErrorCodes.TryAgain} the answer is not ready");
    }

    private CommandHandler LeaderOnly(Func<RespCommand, ValueTask<RespValue?>> handler) =>
        (command, _) => NotLeader() is { } redirect ? new(redirect) : handler(command);

    private async ValueTask<RespValue?> PingAsync(RespCommand command)
    {
        if (command.Count > 4) return CommandErrors.WrongArity("vs.ping");
        string server = command.Text(1);
        if (server.Length == 0) return RespValue.Error($"{ErrorCodes.Err} server address must not be empty");
        if (!command.TryLong(2, out long viewNumber) || viewNumber < 0)
            return RespValue.Error($"{ErrorCodes.Err} view number must be an integer >= 0");
        long held = -1;
        if (command.Count == 4 && (!command.TryLong(3, out held) || held < 0))
            return RespValue.Error($"{ErrorCodes.Err} held view must be an integer >= 0");
        View view = ViewService.Ping(server, viewNumber, held, out bool acked, out long lastAcked);
        RespValue reply = view.ToResp(acked, lastAcked);
        // This primary's ack is being committed in the group's log: answer once it is, so it learns it now.
        if (ViewService.PendingCommit is { } commit && !acked && view.Primary == server && viewNumber == view.Number)
        {
            try { await commit.WaitAsync(MaxAckWait); }
            catch (TimeoutException) { return reply; }
            return CurrentView();
        }
        return reply;
    }

    private RespValue Unreachable(RespCommand command)
    {
        if (!command.TryLong(2, out long reportedView) || reportedView < 1 || command.Text(1).Length == 0 || command.Text(3).Length == 0)
            return RespValue.Error($"{ErrorCodes.Err} VS.UNREACHABLE needs a primary, a view number >= 1 and a backup");
        return RespValue.Int(ViewService.ReportUnreachableBackup(command.Text(1), reportedView, command.Text(3)) ? 1 : 0);
    }

    private async ValueTask<RespValue?> NewHistoryAsync(RespCommand command)
    {
        if (command.Count > 2) return CommandErrors.WrongArity("vs.newhistory");
        bool force = command.Count == 2 && command.Text(1).Equals("FORCE", StringComparison.OrdinalIgnoreCase);
        if (command.Count == 2 && !force) return RespValue.Error($"{ErrorCodes.Err} the only option of VS.NEWHISTORY is FORCE");
        return await ViewService.StartNewHistoryAsync(force) is { } refused ? RespValue.Error($"{ErrorCodes.Err} {refused}") : CurrentView();
    }

    private RespValue CurrentView() => ViewService.GetView(out bool acked, out long lastAcked).ToResp(acked, lastAcked);

    /// <summary>The reply of a member that does not lead to a command only the leader answers; null when it leads.</summary>
    private RespValue? NotLeader()
    {
        // A member answers for the group only while its engine leads and it holds the leader's lease (a majority
        // heard from it within the lease, shorter than an election): a deposed leader that has not noticed yet
        // answers nothing from its stale state.
        if (ViewService.IsLeading && Group?.HoldsLease != false) return null;
        return Group?.LeaderAddress is { } leader && leader != Address
            ? RespValue.Error($"{ErrorCodes.NotLeader} leader {leader}")
            : RespValue.Error($"{ErrorCodes.NotLeader} no leader is known");
    }

    private async ValueTask<RespValue?> ChangeMembersAsync(RespCommand command, bool add)
    {
        if (Group is null) return RespValue.Error($"{ErrorCodes.Err} this coordinator runs alone, without a group");
        if (!IPEndPoint.TryParse(command.Text(1), out IPEndPoint? raft) || raft.Port == 0)
            return RespValue.Error($"{ErrorCodes.Err} the member's Raft address must be IP:PORT");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            // Idempotent, so a retry after a lost reply succeeds: the member is in (out) either way.
            if (add) await Group.AddMemberAsync(raft, timeout.Token);
            else await Group.RemoveMemberAsync(raft, timeout.Token);
            return RespValue.Simple("OK");
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException or TimeoutException)
        {
            return RespValue.Error($"{ErrorCodes.TryAgain} the group did not commit the change: {e.Message}");
        }
    }

    /// <summary>
    /// <c>VS.MEMBER</c>: <c>{"address","role","term","leader","view","members","raft","configuration"}</c> (members:
    /// the RESP addresses of the group's configuration as far as known; raft: this member's Raft address;
    /// configuration: the configuration's Raft addresses, sorted).
    /// </summary>
    private byte[] MemberJson()
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("address", Address);
            json.WriteString("role", ViewService.IsLeading ? "leader" : "follower");
            json.WriteNumber("term", Group?.Term ?? 0);
            json.WriteString("leader", ViewService.IsLeading ? Address : Group?.LeaderAddress ?? "");
            json.WriteNumber("view", ViewService.CurrentView.Number);
            json.WriteStartArray("members");
            if (Group is null) json.WriteStringValue(Address);
            else foreach (GroupMember member in Group.Members.Where(m => m.AddressKnown)) json.WriteStringValue(member.Address);
            json.WriteEndArray();
            json.WriteString("raft", Group?.RaftAddress.ToString() ?? "");
            json.WriteStartArray("configuration");
            if (Group is not null) foreach (string raft in Group.Configuration.Select(e => e.ToString() ?? "").Order(StringComparer.Ordinal)) json.WriteStringValue(raft);
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// The <c>VS.STATUS</c> document: <c>{"view","primary","backup","acked","lastAckedView","dataLost","historyLost",
    /// "backupReported","pingIntervalMs","deadPings",
    /// "servers":[{"address","role","alive","lastPingMsAgo","viewNumber","restarted","heldView"}]}</c>, compact UTF-8 JSON.
    /// </summary>
    public static byte[] StatusJson(ViewServiceStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("view", status.View.Number);
            json.WriteString("primary", status.View.Primary);
            json.WriteString("backup", status.View.Backup);
            json.WriteBoolean("acked", status.Acked);
            json.WriteNumber("lastAckedView", status.LastAcked?.Number ?? 0);
            json.WriteBoolean("dataLost", status.DataLost);
            json.WriteBoolean("historyLost", status.HistoryLost);
            json.WriteBoolean("backupReported", status.BackupReported);
            json.WriteNumber("pingIntervalMs", status.PingInterval.TotalMilliseconds);
            json.WriteNumber("deadPings", status.DeadPings);
            json.WriteStartArray("servers");
            foreach (ServerStatus s in status.Servers)
            {
                json.WriteStartObject();
                json.WriteString("address", s.Address);
                json.WriteString("role", s.Role.ToString().ToLowerInvariant());
                json.WriteBoolean("alive", s.Alive);
                json.WriteNumber("lastPingMsAgo", (long)s.SinceLastPing.TotalMilliseconds);
                json.WriteNumber("viewNumber", s.ViewNumber);
                json.WriteBoolean("restarted", s.Restarted);
                json.WriteNumber("heldView", s.HeldView);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}
