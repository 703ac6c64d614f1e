using Microsoft.AspNetCore.Connections;
using Tandem.Net;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.Server;

/// <summary>
/// MULTI, EXEC, DISCARD, WATCH and UNWATCH. A connection's queued data commands become one replicated write
/// (<see cref="Operation.Transaction"/>), applied on the primary and on the backup as one unit, so no copy ever
/// holds half of a transaction. WATCH remembers each key's entry; EXEC applies only if none changed, checked in
/// the same critical section that sequences the write.
/// </summary>
internal sealed partial class ServerHandler
{
    private static readonly RespValue Queued = RespValue.Simple("QUEUED");
    private static readonly RespValue NullArray = RespValue.Array(null);

    /// <summary>One connection's transaction: open or not, the commands queued, the keys watched.</summary>
    private sealed class Transaction
    {
        public bool Open;
        public bool Failed;
        /// <summary>The queued commands, each with its entry (a data command's is null: it goes in the one write).</summary>
        public readonly List<(RespCommand Command, CommandSpec<CommandHandler>? Other)> Commands = [];
        public readonly List<WatchedKey> Watched = [];

        public void Reset()
        {
            Open = false;
            Failed = false;
            Commands.Clear();
            Watched.Clear();
        }
    }

    /// <summary>Commands that run at once even inside MULTI.</summary>
    private static readonly HashSet<string> TransactionControl = ["EXEC", "DISCARD", "MULTI", "WATCH", "UNWATCH", "QUIT", "RESET"];

    private void AddTransactionCommands()
    {
        Table.Add("MULTI", 1, CommandFlags.Fast, (_, conn) =>
        {
            Transaction tx = TransactionOf(conn);
            if (tx.Open) return Done(RespValue.Error($"{ErrorCodes.Err} MULTI calls can not be nested"));
            tx.Open = true;
            return Done(RespValue.Ok);
        });
        Table.Add("DISCARD", 1, CommandFlags.Fast, (_, conn) =>
        {
            if (conn.Features.Get<Transaction>() is not { Open: true } tx) return Done(RespValue.Error($"{ErrorCodes.Err} DISCARD without MULTI"));
            tx.Reset();
            return Done(RespValue.Ok);
        });
        Table.Add("WATCH", -2, CommandFlags.Fast, new KeySpec(1, -1, 1), Watch);
        Table.Add("UNWATCH", 1, CommandFlags.Fast, (_, conn) =>
        {
            conn.Features.Get<Transaction>()?.Watched.Clear();
            return Done(RespValue.Ok);
        });
        Table.Add("EXEC", 1, CommandFlags.Write, Exec);
        Table.Describe("MULTI", "Starts a transaction.", "")
            .Describe("DISCARD", "Discards a transaction.", "")
            .Describe("WATCH", "Monitors changes to keys to determine the execution of a transaction.", "key...")
            .Describe("UNWATCH", "Forgets about watched keys of a transaction.", "")
            .Describe("EXEC", "Executes all commands in a transaction.", "");
    }

    /// <summary>RESET ends the connection's transaction and forgets its watched keys.</summary>
    protected override void OnReset(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        connection.Features.Get<Transaction>()?.Reset();
    }

    private static Transaction TransactionOf(ConnectionContext conn)
    {
        if (conn.Features.Get<Transaction>() is { } tx) return tx;
        tx = new Transaction();
        conn.Features.Set(tx);
        return tx;
    }

    /// <summary>Inside MULTI, queues every command but the transaction's own; a command that cannot run fails the transaction.</summary>
    protected override ValueTask<RespValue?> ExecuteAsync(RespCommand command, CommandSpec<CommandHandler>? spec, ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(connection);
        if (connection.Features.Get<Transaction>() is not { Open: true } tx || (spec is not null && TransactionControl.Contains(spec.Name)))
            return base.ExecuteAsync(command, spec, connection);
        RespValue? refused = null;
        if (spec is null) refused = CommandErrors.Unknown(command);
        else if (!spec.AcceptsCount(command.Count)) refused = CommandErrors.WrongArity(spec.LowerName);
        else if (spec.Flags.HasFlag(CommandFlags.Internal) || spec.Name is Commands.ExactlyOnce or Commands.Register)
            refused = RespValue.Error($"{ErrorCodes.Err} Command not allowed inside a transaction");
        bool isData = DataCommands.Table.TryFind(command[0], out CommandSpec<DataCommand>? data);
        if (isData) refused ??= CheckData(data!, command.Args);
        if (refused is not null)
        {
            tx.Failed = true;
            return Done(refused);
        }
        tx.Commands.Add((command, isData ? null : spec));
        return Done(Queued);
    }

    private ValueTask<RespValue?> Watch(RespCommand cmd, ConnectionContext conn)
    {
        Transaction tx = TransactionOf(conn);
        if (tx.Open) return Done(RespValue.Error($"{ErrorCodes.Err} WATCH inside MULTI is not allowed"));
        if (_replica() is not { } r) return Done(Starting);
        WatchedKey[]? versions = r.Watch(cmd.Args[1..]);
        if (versions is null) return Done(r.NotPrimaryReply());
        tx.Watched.AddRange(versions);
        return Done(RespValue.Ok);
    }

    private ValueTask<RespValue?> Exec(RespCommand cmd, ConnectionContext conn)
    {
        if (conn.Features.Get<Transaction>() is not { Open: true } tx) return Done(RespValue.Error($"{ErrorCodes.Err} EXEC without MULTI"));
        bool failed = tx.Failed;
        (RespCommand Command, CommandSpec<CommandHandler>? Other)[] commands = [.. tx.Commands];
        WatchedKey[] watched = [.. tx.Watched];
        tx.Reset();
        if (failed) return Done(RespValue.Error("EXECABORT Transaction discarded because of previous errors."));
        if (_replica() is not { } r) return Done(Starting);

        // The data commands go as one write; any other command (PING, ECHO...) runs here, first, its reply in its
        // place. Everything is decided now: the write's reply is known when it is sequenced, and only its sending
        // waits (the connection's ReplyGate must not be awaited while the batch's commands are still starting).
        var data = new List<byte[][]>();
        var others = new RespValue?[commands.Length];
        for (int i = 0; i < commands.Length; i++)
        {
            (RespCommand command, CommandSpec<CommandHandler>? spec) = commands[i];
            if (spec is null)
            {
                data.Add(command.Args);
                continue;
            }
            ValueTask<RespValue?> ran = base.ExecuteAsync(command, spec, conn);
            others[i] = ran.IsCompletedSuccessfully
                ? ran.Result ?? RespValue.Error($"{ErrorCodes.Err} {spec?.LowerName} gave no reply inside a transaction")
                : RespValue.Error($"{ErrorCodes.Err} {spec?.LowerName} cannot wait inside a transaction");
        }
        if (data.Count == 0 && watched.Length == 0) return Done(Merge(others, RespValue.Array([])));
        Held held = r.Write(new Operation(Operation.TransactionArgs(data)), watched, NullArray);
        return Hold(conn, r, held with { Reply = Merge(others, held.Reply) });
    }

    /// <summary>The replies in command order: the data commands' from <paramref name="applied"/>, the others' as they ran.</summary>
    private static RespValue Merge(RespValue?[] others, RespValue applied)
    {
        // Not applied (a watched key changed, or refused): the whole transaction answers alike.
        if (applied.IsError || applied.IsNull || applied.Items is not { } items) return applied;
        if (others.All(o => o is null)) return applied;
        var replies = new RespValue[others.Length];
        int next = 0;
        for (int i = 0; i < others.Length; i++) replies[i] = others[i] ?? items[next++];
        return RespValue.Array(replies);
    }
}
