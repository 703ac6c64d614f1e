using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Coordinator;

/// <summary>
/// The coordinator's RESP endpoint: <c>PING</c>, <c>VS.PING addr viewnum</c>,
/// <c>VS.UNREACHABLE primary viewnum backup</c>, <c>VS.VIEW</c> and
/// <c>VS.STATUS</c> (one JSON bulk string). Anything else gets an <c>ERR</c> reply.
/// </summary>
public sealed class CoordinatorHandler(ViewService viewService) : RespConnectionHandler
{
    private const int MaxEchoedNameLength = 64;
    private static readonly RespValue Pong = RespValue.Simple("PONG");

    /// <summary>The engine this endpoint serves.</summary>
    public ViewService ViewService { get; } = viewService ?? throw new ArgumentNullException(nameof(viewService));

    /// <inheritdoc />
    protected override ValueTask<RespValue?> ExecuteAsync(RespCommand command, ConnectionContext connection) =>
        ValueTask.FromResult<RespValue?>(Execute(command));

    /// <summary>Answers one command (no I/O).</summary>
    public RespValue Execute(RespCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        string name = command.Name;
        switch (name)
        {
            case "PING":
                return command.Count switch
                {
                    1 => Pong,
                    2 => RespValue.Bulk(command[1]),
                    _ => WrongArity(name),
                };
            case Commands.VsPing:
                if (command.Count is not (3 or 4)) return WrongArity(name);
                string server = command.Text(1);
                if (server.Length == 0) return RespValue.Error($"{ErrorCodes.Err} server address must not be empty");
                if (!command.TryLong(2, out long viewNumber) || viewNumber < 0)
                    return RespValue.Error($"{ErrorCodes.Err} view number must be an integer >= 0");
                long held = -1;
                if (command.Count == 4 && (!command.TryLong(3, out held) || held < 0))
                    return RespValue.Error($"{ErrorCodes.Err} held view must be an integer >= 0");
                View view = ViewService.Ping(server, viewNumber, held, out bool acked, out long lastAcked);
                return view.ToResp(acked, lastAcked);
            case Commands.VsUnreachable:
                if (command.Count != 4) return WrongArity(name);
                if (!command.TryLong(2, out long reportedView) || reportedView < 1 || command.Text(1).Length == 0 || command.Text(3).Length == 0)
                    return RespValue.Error($"{ErrorCodes.Err} VS.UNREACHABLE needs a primary, a view number >= 1 and a backup");
                return RespValue.Int(ViewService.ReportUnreachableBackup(command.Text(1), reportedView, command.Text(3)) ? 1 : 0);
            case Commands.VsView:
                if (command.Count != 1) return WrongArity(name);
                return ViewService.GetView(out bool viewAcked, out long viewLastAcked).ToResp(viewAcked, viewLastAcked);
            case Commands.VsStatus:
                return command.Count == 1 ? RespValue.Bulk(StatusJson(ViewService.GetStatus())) : WrongArity(name);
            default:
                string sent = command.Text(0);
                if (sent.Length > MaxEchoedNameLength) sent = sent[..MaxEchoedNameLength] + "...";
                return RespValue.Error($"{ErrorCodes.Err} unknown command '{sent}'");
        }
    }

    /// <summary>
    /// The <c>VS.STATUS</c> document: <c>{"view","primary","backup","acked","pingIntervalMs","deadPings",
    /// "servers":[{"address","role","alive","lastPingMsAgo","viewNumber","restarted"}]}</c>, compact UTF-8 JSON.
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

    private static RespValue WrongArity(string name) =>
        RespValue.Error(string.Create(CultureInfo.InvariantCulture, $"{ErrorCodes.Err} wrong number of arguments for '{name}'"));
}
