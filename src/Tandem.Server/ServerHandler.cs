using Microsoft.AspNetCore.Connections;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.Server;

/// <summary>
/// The commands a server answers: client commands, exactly-once writes and replication, in one table. Writes and
/// reads are decided at once, in the order they arrive; their replies are held by the connection's
/// <see cref="ReplyGate"/> until the backup has the batch (group commit).
/// </summary>
internal sealed partial class ServerHandler : RespConnectionHandler
{
    private static readonly RespValue Starting = RespValue.Error($"{ErrorCodes.TryAgain} server is starting");

    private readonly ServerNodeOptions _options;
    private readonly Func<Replica?> _replica;
    private readonly RespLimits _limits;

    /// <summary>The writes a client may send plainly or inside <c>XREQ</c>, by name.</summary>
    private readonly CommandTable<(OpCode Code, bool HasValue)> _writes = new CommandTable<(OpCode, bool)>()
        .Add(Commands.Set, 3, CommandFlags.Write, (OpCode.Set, true))
        .Add(Commands.PutHash, 3, CommandFlags.Write, (OpCode.PutHash, true))
        .Add(Commands.Append, 3, CommandFlags.Write, (OpCode.Append, true))
        .Add(Commands.Del, 2, CommandFlags.Write, (OpCode.Delete, false));

    public ServerHandler(ServerNodeOptions options, Func<Replica?> replica)
    {
        _options = options;
        _replica = replica;
        _limits = options.RespLimits;
        foreach (CommandSpec<(OpCode Code, bool HasValue)> write in _writes.All)
            Table.Add(write.Name, write.Arity, write.Flags, (cmd, conn) => Write(cmd, conn, 0, 0, 0, 0));
        Table.Add(Commands.Get, 2, CommandFlags.ReadOnly, Get);
        Table.Add(Commands.ExactlyOnce, -5, CommandFlags.Write, ExactlyOnce);
        Table.Add(Commands.Register, 1, CommandFlags.Write, (_, conn) => _replica() is { } r ? Hold(conn, r, r.Write(new Operation(OpCode.Register, [], []))) : Done(Starting));
        Table.Add(Commands.ReplSnapshot, -5, CommandFlags.Internal, Replicate);
        Table.Add(Commands.ReplApply, -5, CommandFlags.Internal, Replicate);
        AddSentinelClientCommands(); // ServerHandler.Sentinel.cs: ROLE (AddServerCommands, after it, may replace it)
        AddServerCommands();
    }

    /// <summary>Set when the server is killed: from then on nothing is answered.</summary>
    public volatile bool Killed = false;

    protected override RespLimits Limits => _limits;

    protected override Delivery Admit(RespCommand command) =>
        Killed ? Delivery.Drop : _options.Faults?.NextDelivery(command) ?? Delivery.Deliver;

    private ValueTask<RespValue?> Get(RespCommand cmd, ConnectionContext conn) =>
        _replica() is { } r ? Hold(conn, r, r.Read(cmd[1])) : Done(Starting);

    private ValueTask<RespValue?> ExactlyOnce(RespCommand cmd, ConnectionContext conn)
    {
        if (!cmd.TryLong(1, out long client) || client is <= 0 or > DuplicateTable.MaxRequestClientId || !cmd.TryLong(2, out long seq) || seq <= 0
            || !cmd.TryLong(3, out long acked) || acked < 0 || acked >= seq)
            return Done(RespValue.Error($"{ErrorCodes.Err} XREQ needs a client id from 1 to {DuplicateTable.MaxRequestClientId}, a request number > 0 and acked-through below it"));
        return Write(cmd, conn, 4, client, seq, acked);
    }

    /// <summary>A write, plain (<paramref name="at"/> 0) or inside <c>XREQ</c> (the write's name at <paramref name="at"/>).</summary>
    private ValueTask<RespValue?> Write(RespCommand cmd, ConnectionContext conn, int at, long client, long seq, long acked)
    {
        if (!_writes.TryFind(cmd[at], out CommandSpec<(OpCode Code, bool HasValue)>? write))
            return Done(RespValue.Error($"{ErrorCodes.Err} '{Truncate(cmd.Text(at))}' is not a write Tandem can run exactly once"));
        int args = cmd.Count - at;
        if (!write.AcceptsCount(args))
        {
            return Done(write.Name == Commands.Set && args > 3
                ? RespValue.Error($"{ErrorCodes.Err} SET options are not supported")
                : CommandErrors.WrongArity(write.LowerName));
        }
        byte[] key = cmd[at + 1];
        byte[] value = write.Handler.HasValue ? cmd[at + 2] : [];
        if (key.Length > _options.MaxKeyBytes)
            return Done(RespValue.Error($"{ErrorCodes.Err} key is {key.Length} bytes; the limit is {_options.MaxKeyBytes}"));
        if (value.Length > _options.MaxValueBytes)
            return Done(RespValue.Error($"{ErrorCodes.Err} value is {value.Length} bytes; the limit is {_options.MaxValueBytes}"));
        if (_replica() is not { } r) return Done(Starting);
        return Hold(conn, r, r.Write(new Operation(write.Handler.Code, key, value, client, seq, acked)));
    }

    /// <summary>Hands a reply decided on <paramref name="r"/> to the connection's gate, unless it may go out now.</summary>
    private ValueTask<RespValue?> Hold(ConnectionContext conn, Replica r, in Held held)
    {
        if (held.IsFinal) return Done(held.Reply);
        ReplyGate? gate = conn.Features.Get<ReplyGate>();
        if (gate is null || gate.Replica != r)
        {
            gate = new ReplyGate(r, () => Killed);
            conn.Features.Set(gate);
        }
        return gate.Hold(held);
    }

    private ValueTask<RespValue?> Replicate(RespCommand cmd, ConnectionContext conn)
    {
        Replica? r = _replica();
        if (r is null) return Done(Starting);
        return _options.Faults is null ? Done(r.HandleReplication(cmd)) : ReplicateWithFaultsAsync(r, cmd);
    }

    private async ValueTask<RespValue?> ReplicateWithFaultsAsync(Replica r, RespCommand cmd)
    {
        // A dropped message is lost unanswered, and the connection with it.
        if (await _options.Faults!.PassAsync(FaultPoint.BackupReceive, CancellationToken.None)) return null;
        return Killed ? null : r.HandleReplication(cmd);
    }

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "...";

    private ValueTask<RespValue?> Done(RespValue v) => new(Killed ? null : v);
}
