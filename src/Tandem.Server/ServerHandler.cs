using System.Text;
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

    public ServerHandler(ServerNodeOptions options, Func<Replica?> replica)
    {
        _options = options;
        _replica = replica;
        _limits = options.RespLimits;
        // Every data command: writes are sequenced and forwarded, reads are confirmed (docs/design.md).
        foreach (CommandSpec<DataCommand> data in DataCommands.Table.All)
        {
            CommandHandler run = data.Flags.HasFlag(CommandFlags.Write) ? (cmd, conn) => Write(cmd, conn, 0, 0, 0, 0)
                : data.Name == Commands.Get ? Get // without building a command when no key has a deadline
                : (cmd, conn) => Read(cmd, conn);
            Table.Add(data.Name, data.Arity, data.Flags, data.Keys, run).Describe(data);
        }
        Table.Add(Commands.ExactlyOnce, -5, CommandFlags.Write, ExactlyOnce);
        Table.Add(Commands.Register, 1, CommandFlags.Write, (_, conn) =>
            _replica() is { } r ? Hold(conn, r, r.Write(new Operation(RegisterArgs))) : Done(Starting));
        Table.Add(Commands.ReplSnapshot, -5, CommandFlags.Internal, Replicate);
        Table.Add(Commands.ReplApply, -5, CommandFlags.Internal, Replicate);
        Table.Add("WAIT", 3, CommandFlags.None, Wait)
            .Describe("WAIT", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.", "numreplicas timeout");
        AddTransactionCommands();
        AddServerCommands();
    }

    /// <summary>
    /// <c>WAIT numreplicas timeout</c>: how many replicas hold every write this connection made before it (every
    /// write applied so far), waiting up to <c>timeout</c> ms (0: until reached) for <c>numreplicas</c> of them.
    /// Tandem has one replica, the backup; a write is answered only once the backup holds it, so the answer is
    /// 1 unless there is no synced backup.
    /// </summary>
    private ValueTask<RespValue?> Wait(RespCommand cmd, ConnectionContext conn)
    {
        if (!RedisText.TryParseLong(cmd[1], out long wanted) || !RedisText.TryParseLong(cmd[2], out long timeoutMs)) return Done(DataErrors.NotInteger);
        if (timeoutMs < 0) return Done(RespValue.Error($"{ErrorCodes.Err} timeout is negative"));
        if (_replica() is not { } r) return Done(Starting);
        if (r.NewestWrite() is not { } target) return Done(RespValue.Error($"{ErrorCodes.Err} WAIT cannot be used with replica instances. Please also note that writes to replicas are just local and are not propagated."));
        if (wanted <= 0 || r.ReplicasHolding(target) >= wanted) return Done(RespValue.Int(r.ReplicasHolding(target)));
        return WaitForReplicasAsync(r, target, wanted, timeoutMs);
    }

    private async ValueTask<RespValue?> WaitForReplicasAsync(Replica r, long target, long wanted, long timeoutMs)
    {
        TimeProvider time = _options.TimeProvider;
        long start = time.GetTimestamp();
        while (!Killed && r.ReplicasHolding(target) < wanted && (timeoutMs == 0 || time.GetElapsedTime(start).TotalMilliseconds < timeoutMs))
        {
            // Waits for the commit of the writes (bounded by the commit timeout), then checks again.
            Task commit = r.WaitAsync(target, confirm: false).AsTask();
            TimeSpan left = timeoutMs == 0 ? _options.CommitTimeout : TimeSpan.FromMilliseconds(timeoutMs) - time.GetElapsedTime(start);
            if (left > TimeSpan.Zero) await Task.WhenAny(commit, Task.Delay(Min(left, _options.PingInterval), time));
        }
        return Killed ? null : RespValue.Int(r.ReplicasHolding(target));
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static readonly byte[][] RegisterArgs = [System.Text.Encoding.ASCII.GetBytes(Operation.Register)];

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

    private ValueTask<RespValue?> Read(RespCommand cmd, ConnectionContext conn) =>
        _replica() is { } r ? Hold(conn, r, r.Read(cmd.Args)) : Done(Starting);

    /// <summary>A write, plain (<paramref name="at"/> 0) or inside <c>XREQ</c> (the write's name at <paramref name="at"/>).</summary>
    private ValueTask<RespValue?> Write(RespCommand cmd, ConnectionContext conn, int at, long client, long seq, long acked)
    {
        byte[][] args = at == 0 ? cmd.Args : cmd.Args[at..];
        if (CheckWrite(args) is { } refused) return Done(refused);
        if (_replica() is not { } r) return Done(Starting);
        return Hold(conn, r, r.Write(new Operation(args, 0, client, seq, acked)));
    }

    /// <summary>
    /// Why the write <paramref name="args"/> may not be sequenced (not a write, wrong arity, a key or value over
    /// the limits), or null. A transaction (<see cref="Operation.Transaction"/>) is checked command by command.
    /// </summary>
    private RespValue? CheckWrite(byte[][] args)
    {
        if (Ascii.EqualsIgnoreCase(args[0], Operation.Transaction))
        {
            List<byte[][]>? commands = Operation.SplitTransaction(args);
            if (commands is null) return RespValue.Error($"{ErrorCodes.Err} EXEC needs each command as its argument count, then its arguments");
            foreach (byte[][] command in commands)
            {
                if (!DataCommands.Table.TryFind(command[0], out CommandSpec<DataCommand>? inner))
                    return CommandErrors.Unknown(new RespCommand(command));
                if (CheckData(inner, command) is { } error) return error;
            }
            return null;
        }
        if (!DataCommands.Table.TryFind(args[0], out CommandSpec<DataCommand>? spec) || !spec.Flags.HasFlag(CommandFlags.Write))
            return RespValue.Error($"{ErrorCodes.Err} '{CommandErrors.Quote(args[0])}' is not a write Tandem can run exactly once");
        return CheckData(spec, args);
    }

    private RespValue? CheckData(CommandSpec<DataCommand> spec, byte[][] args)
    {
        if (!spec.AcceptsCount(args.Length)) return CommandErrors.WrongArity(spec.LowerName);
        KeySpec keys = spec.Keys;
        for (int i = keys.First, last = keys.LastIndex(args.Length); i <= last; i += keys.Step) // no enumerator: every write runs this
            if (args[i].Length > _options.MaxKeyBytes)
                return RespValue.Error($"{ErrorCodes.Err} key is {args[i].Length} bytes; the limit is {_options.MaxKeyBytes}");
        for (int i = 1; i < args.Length; i++)
            if (args[i].Length > _options.MaxValueBytes)
                return RespValue.Error($"{ErrorCodes.Err} value is {args[i].Length} bytes; the limit is {_options.MaxValueBytes}");
        return null;
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
        return _options.Faults is null ? Done(r.HandleReplication(cmd, conn)) : ReplicateWithFaultsAsync(r, cmd, conn);
    }

    private async ValueTask<RespValue?> ReplicateWithFaultsAsync(Replica r, RespCommand cmd, ConnectionContext conn)
    {
        // A dropped message is lost unanswered, and the connection with it.
        if (await _options.Faults!.PassAsync(FaultPoint.BackupReceive, CancellationToken.None)) return null;
        return Killed ? null : r.HandleReplication(cmd, conn);
    }


    private ValueTask<RespValue?> Done(RespValue v) => new(Killed ? null : v);
}
