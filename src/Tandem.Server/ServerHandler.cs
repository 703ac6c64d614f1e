using System.Text;
using Microsoft.AspNetCore.Connections;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.Server;

/// <summary>Dispatches the RESP commands a server accepts: client commands, exactly-once writes, replication.</summary>
internal sealed class ServerHandler(ServerNodeOptions options, Func<Replica?> replica) : RespConnectionHandler
{
    private readonly RespLimits _limits = options.RespLimits;

    /// <summary>A reply that stands for "no reply": the connection is closed instead (fault injection).</summary>
    private static readonly RespValue Dropped = RespValue.Error("DROPPED");

    /// <summary>Set when the server is killed: from then on nothing is answered.</summary>
    public volatile bool Killed = false;

    protected override RespLimits Limits => _limits;

    protected override Delivery Admit(RespCommand command) =>
        Killed ? Delivery.Drop : options.Faults?.NextDelivery(command) ?? Delivery.Deliver;

    protected override async ValueTask<RespValue?> ExecuteAsync(RespCommand command, ConnectionContext connection)
    {
        RespValue reply = await DispatchAsync(command);
        return Killed || ReferenceEquals(reply, Dropped) ? null : reply;
    }

    private ValueTask<RespValue> DispatchAsync(RespCommand cmd)
    {
        Replica? r = replica();
        string name = cmd.Name;
        switch (name)
        {
            case "PING":
                return Done(cmd.Count switch { 1 => RespValue.Simple("PONG"), 2 => RespValue.Bulk(cmd[1]), _ => Arity(name) });
            case "ECHO":
                return Done(cmd.Count == 2 ? RespValue.Bulk(cmd[1]) : Arity(name));
            case "QUIT":
                return Done(RespValue.Ok);
            case "SELECT":
                return Done(cmd.Count == 2 && cmd.Text(1) == "0" ? RespValue.Ok : RespValue.Error($"{ErrorCodes.Err} only database 0 exists"));
            case "CLIENT":
                return Done(RespValue.Ok);
            case "CONFIG":
            case "COMMAND":
                return Done(RespValue.Array([]));
            case "HELLO":
                return Done(RespValue.Error("NOPROTO this server speaks RESP2 only"));
            case "INFO":
                return Done(Info(r));
        }
        if (r is null) return Done(RespValue.Error($"{ErrorCodes.TryAgain} server is starting"));
        switch (name)
        {
            case Commands.Get:
                if (cmd.Count != 2) return Done(Arity(name));
                return r.ReadAsync(cmd[1]);
            case Commands.Set:
            case Commands.PutHash:
            case Commands.Append:
            case Commands.Del:
                return Write(r, cmd, 0, 0, 0, 0);
            case Commands.ExactlyOnce:
                if (cmd.Count < 5) return Done(Arity(name));
                if (!cmd.TryLong(1, out long client) || client is <= 0 or > DuplicateTable.MaxRequestClientId || !cmd.TryLong(2, out long seq) || seq <= 0
                    || !cmd.TryLong(3, out long acked) || acked < 0 || acked >= seq)
                    return Done(RespValue.Error($"{ErrorCodes.Err} XREQ needs a client id from 1 to {DuplicateTable.MaxRequestClientId}, a request number > 0 and acked-through below it"));
                return Write(r, cmd, 4, client, seq, acked);
            case Commands.Register:
                return cmd.Count == 1 ? r.WriteAsync(new Operation(OpCode.Register, [], [])) : Done(Arity(name));
            case Commands.ReplSnapshot:
            case Commands.ReplApply:
                return options.Faults is null ? Done(r.HandleReplication(cmd)) : ReplicateWithFaultsAsync(r, cmd);
            default:
                return Done(RespValue.Error($"{ErrorCodes.Err} unknown command '{Truncate(name)}'"));
        }
    }

    private async ValueTask<RespValue> ReplicateWithFaultsAsync(Replica r, RespCommand cmd)
    {
        // A dropped message is lost unanswered, and the connection with it.
        return await options.Faults!.PassAsync(FaultPoint.BackupReceive, CancellationToken.None) ? Dropped : r.HandleReplication(cmd);
    }

    private ValueTask<RespValue> Write(Replica r, RespCommand cmd, int at, long client, long seq, long acked)
    {
        string name = Encoding.ASCII.GetString(cmd[at]).ToUpperInvariant();
        int args = cmd.Count - at;
        (OpCode code, int arity) = name switch
        {
            Commands.Set => (OpCode.Set, 3),
            Commands.PutHash => (OpCode.PutHash, 3),
            Commands.Append => (OpCode.Append, 3),
            Commands.Del => (OpCode.Delete, 2),
            _ => ((OpCode)0, 0),
        };
        if (arity == 0) return Done(RespValue.Error($"{ErrorCodes.Err} '{Truncate(name)}' is not a write Tandem can run exactly once"));
        if (args != arity)
        {
            return Done(name == Commands.Set && args > 3
                ? RespValue.Error($"{ErrorCodes.Err} SET options are not supported")
                : Arity(name));
        }
        byte[] key = cmd[at + 1];
        byte[] value = arity == 3 ? cmd[at + 2] : [];
        if (key.Length > options.MaxKeyBytes)
            return Done(RespValue.Error($"{ErrorCodes.Err} key is {key.Length} bytes; the limit is {options.MaxKeyBytes}"));
        if (value.Length > options.MaxValueBytes)
            return Done(RespValue.Error($"{ErrorCodes.Err} value is {value.Length} bytes; the limit is {options.MaxValueBytes}"));
        return r.WriteAsync(new Operation(code, key, value, client, seq, acked));
    }

    private static RespValue Info(Replica? r)
    {
        if (r is null) return RespValue.Bulk("# Replication\r\nrole:starting\r\n");
        View v = r.View;
        string role = v.Primary == r.Me ? "master" : v.Backup == r.Me ? "slave" : "none";
        return RespValue.Bulk($"# Server\r\ntandem_address:{r.Me}\r\n# Replication\r\nrole:{role}\r\ntandem_view:{v.Number}\r\n" +
                              $"tandem_primary:{v.Primary}\r\ntandem_backup:{v.Backup}\r\n# Keyspace\r\ntandem_keys:{r.KeyCount}\r\n" +
                              $"tandem_last_applied:{r.LastApplied}\r\n{r.SessionInfo()}");
    }

    private static RespValue Arity(string name) => RespValue.Error($"{ErrorCodes.Err} wrong number of arguments for '{Truncate(name)}'");

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "...";

    private static ValueTask<RespValue> Done(RespValue v) => new(v);
}
