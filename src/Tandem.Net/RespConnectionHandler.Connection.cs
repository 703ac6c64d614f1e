using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Tandem.Protocol;

namespace Tandem.Net;

/// <summary>
/// The connection commands every node answers, as Redis 7 does: <c>HELLO</c> (RESP2 and RESP3), <c>AUTH</c>,
/// <c>CLIENT</c>, <c>RESET</c>, <c>SELECT</c>, <c>TIME</c> and <c>COMMAND</c> (from <see cref="Table"/>); the connection
/// registry behind <c>CLIENT LIST</c> and <c>CLIENT KILL</c>; and the per-command counters of <c>INFO commandstats</c>.
/// </summary>
public abstract partial class RespConnectionHandler
{
    /// <summary>The Redis version this node's replies and errors follow, reported by <c>HELLO</c> and <c>INFO</c>.</summary>
    public const string RedisCompatibleVersion = "7.2.0";

    private static readonly RespValue ResetReply = RespValue.Simple("RESET");
    private static readonly RespValue SyntaxError = RespValue.Error($"{ErrorCodes.Err} syntax error");
    private static readonly RespValue NoConnection = RespValue.Error($"{ErrorCodes.Err} this command needs a client connection");

    private readonly ConcurrentDictionary<long, ClientInfo> _clients = new();
    private readonly Dictionary<string, CommandTable<CommandHandler>> _subcommands = new(StringComparer.Ordinal);
    private TimeProvider _time = TimeProvider.System;
    private long _startedAt = TimeProvider.System.GetTimestamp();
    private DateTimeOffset _startedUtc = TimeProvider.System.GetUtcNow();
    private long _nextClientId;
    private long _connectionsReceived;

    /// <summary>
    /// The clock for connection ages, idle times, <c>TIME</c>, uptime and command timings. Set it before the node
    /// accepts connections: setting it also restarts the uptime.
    /// </summary>
    public TimeProvider TimeProvider
    {
        get => _time;
        set
        {
            _time = value ?? throw new ArgumentNullException(nameof(value));
            _startedAt = value.GetTimestamp();
            _startedUtc = value.GetUtcNow();
        }
    }

    /// <summary>When the node started (the handler was made, or <see cref="TimeProvider"/> set).</summary>
    public DateTimeOffset StartedAt => _startedUtc;

    /// <summary>How long the node has run.</summary>
    public TimeSpan Uptime => _time.GetElapsedTime(_startedAt);

    /// <summary>The connections open right now.</summary>
    public ICollection<ClientInfo> Clients => _clients.Values;

    /// <summary>Connections accepted since the node started (<c>total_connections_received</c>).</summary>
    public long ConnectionsReceived => Interlocked.Read(ref _connectionsReceived);

    /// <summary>The role <c>HELLO</c> reports: <c>master</c> unless a node says otherwise.</summary>
    protected virtual string HelloRole => "master";

    /// <summary>The mode <c>HELLO</c> reports: <c>standalone</c> unless a node says otherwise.</summary>
    protected virtual string HelloMode => "standalone";

    /// <summary>
    /// Called by <c>RESET</c> once the connection's own state (protocol, name, flags) is back to a new connection's:
    /// a node drops what else it keeps for the connection here.
    /// </summary>
    protected virtual void OnReset(ConnectionContext connection)
    {
    }

    /// <summary>
    /// Adds a command with subcommands (<c>CLIENT</c>, <c>CONFIG</c>...): the returned table holds them, each named by
    /// its second word, with its arity counted as Redis does (the container's name included). An unknown subcommand
    /// gets <c>ERR unknown subcommand 'x'. Try NAME HELP.</c>; a wrong count <c>ERR wrong number of arguments for
    /// 'name|sub' command</c>. <paramref name="bare"/> answers the name alone (otherwise it is a wrong count).
    /// </summary>
    protected CommandTable<CommandHandler> AddContainer(string name, CommandFlags flags, CommandHandler? bare = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var subs = new CommandTable<CommandHandler>();
        string upper = name.ToUpperInvariant();
        _subcommands[upper] = subs;
        Table.Add(name, bare is null ? -2 : -1, flags, (command, connection) =>
            command.Count == 1 && bare is not null ? bare(command, connection) : RunSubcommand(upper, subs, command, connection));
        return subs;
    }

    /// <summary>The subcommands of <paramref name="name"/> (upper case) when it has them.</summary>
    public CommandTable<CommandHandler>? Subcommands(string name) => _subcommands.GetValueOrDefault(name);

    /// <summary>
    /// Every command's counters, as <c>INFO commandstats</c> lists them: subcommands by their full names
    /// (<c>client|list</c>) in place of their container, internal commands included.
    /// </summary>
    public IEnumerable<(string Name, CommandStats Stats)> CommandStatistics()
    {
        foreach (CommandSpec<CommandHandler> spec in Table.All)
        {
            if (_subcommands.TryGetValue(spec.Name, out CommandTable<CommandHandler>? subs))
            {
                foreach (CommandSpec<CommandHandler> sub in subs.All) yield return ($"{spec.LowerName}|{sub.LowerName}", sub.Stats);
            }
            else yield return (spec.LowerName, spec.Stats);
        }
    }

    /// <summary>Commands run since the start or the last reset (<c>total_commands_processed</c>).</summary>
    public long CommandsProcessed => Table.All.Sum(s => s.Stats.Calls);

    /// <summary>Sets every command's counters back to zero (<c>CONFIG RESETSTAT</c>).</summary>
    public void ResetStatistics()
    {
        foreach (CommandSpec<CommandHandler> spec in Table.All)
        {
            spec.Stats.Reset();
            if (_subcommands.TryGetValue(spec.Name, out CommandTable<CommandHandler>? subs))
                foreach (CommandSpec<CommandHandler> sub in subs.All) sub.Stats.Reset();
        }
        Interlocked.Exchange(ref _connectionsReceived, 0);
    }

    /// <summary>The connection's <see cref="ClientInfo"/>; null for a command run without one.</summary>
    protected static ClientInfo? ClientOf(ConnectionContext? connection) => connection?.Features.Get<ClientInfo>();

    // ---- the read loop's hooks ----

    /// <summary>How one started command's reply is written: in which protocol, and whose failures it counts.</summary>
    private readonly record struct ReplyMeta(CommandSpec<CommandHandler>? Counted, int Protocol);

    private ClientInfo Connect(ConnectionContext connection)
    {
        var client = new ClientInfo(Interlocked.Increment(ref _nextClientId), connection, _time);
        connection.Features.Set(client);
        _clients[client.Id] = client;
        Interlocked.Increment(ref _connectionsReceived);
        return client;
    }

    private void Disconnect(ClientInfo client) => _clients.TryRemove(client.Id, out _);

    private long Starting(ClientInfo client, CommandSpec<CommandHandler>? spec)
    {
        long now = _time.GetTimestamp();
        if (spec is not null) client.Started(spec.LowerName, now);
        return now;
    }

    private ReplyMeta Ran(ClientInfo client, CommandSpec<CommandHandler>? spec, RespCommand command, long begun)
    {
        // Read after the command ran: HELLO's own reply is in the protocol it asked for.
        int protocol = client.Protocol;
        if (spec is null) return new(null, protocol);
        if (!spec.AcceptsCount(command.Count))
        {
            spec.Stats.Reject();
            return new(null, protocol);
        }
        spec.Stats.Ran(_time.GetTimestamp() - begun);
        return new(spec, protocol);
    }

    private ValueTask<RespValue?> RunSubcommand(string container, CommandTable<CommandHandler> subs, RespCommand command, ConnectionContext connection)
    {
        if (!subs.TryFind(command[1], out CommandSpec<CommandHandler>? sub))
        {
            string given = Encoding.UTF8.GetString(command[1], 0, Math.Min(command[1].Length, 128)).Replace('\r', ' ').Replace('\n', ' ');
            return new(RespValue.Error($"{ErrorCodes.Err} unknown subcommand '{given}'. Try {container} HELP."));
        }
        string fullName = $"{container.ToLowerInvariant()}|{sub.LowerName}";
        long begun = _time.GetTimestamp();
        ClientOf(connection)?.Started(fullName, begun);
        if (!sub.AcceptsCount(command.Count))
        {
            sub.Stats.Reject();
            return new(CommandErrors.WrongArity(fullName));
        }
        ValueTask<RespValue?> reply = sub.Handler(command, connection);
        sub.Stats.Ran(_time.GetTimestamp() - begun);
        if (reply.IsCompletedSuccessfully && reply.Result is { IsError: true }) sub.Stats.Fail();
        return reply;
    }

    // ---- the commands ----

    private void AddConnectionCommands()
    {
        Table.Add("HELLO", -1, CommandFlags.Fast, (command, connection) => new(Hello(command, ClientOf(connection))));
        Table.Add("AUTH", -2, CommandFlags.Fast, static (command, _) => new(Auth(command)));
        Table.Add("RESET", 1, CommandFlags.Fast, (_, connection) =>
        {
            if (ClientOf(connection) is { } client) client.Reset();
            if (connection is not null) OnReset(connection);
            return new(ResetReply);
        });
        Table.Add("SELECT", 2, CommandFlags.Fast, static (command, _) => new(Select(command)));
        Table.Add("TIME", 1, CommandFlags.Fast, (_, _) => new(Time()));
        AddClientCommands();
        AddCommandCommands();
    }

    private RespValue Hello(RespCommand command, ClientInfo? client)
    {
        int next = 1;
        long version = 0;
        if (command.Count >= 2)
        {
            next = 2;
            if (!command.TryLong(1, out version)) return RespValue.Error($"{ErrorCodes.Err} Protocol version is not an integer or out of range");
            if (version is < 2 or > 3) return RespValue.Error("NOPROTO unsupported protocol version");
        }
        byte[]? user = null;
        byte[]? name = null;
        for (; next < command.Count; next++)
        {
            int more = command.Count - 1 - next;
            if (Is(command[next], "AUTH") && more >= 2)
            {
                user = command[next + 1];
                next += 2;
            }
            else if (Is(command[next], "SETNAME") && more >= 1)
            {
                name = command[next + 1];
                next++;
            }
            else return RespValue.Error($"{ErrorCodes.Err} Syntax error in HELLO option '{CommandErrors.Quote(command[next])}'");
        }
        if (user is not null && !IsDefaultUser(user)) return WrongPass;
        if (name is not null && !ClientInfo.IsValidName(name)) return BadClientName;
        if (client is null) return NoConnection;
        if (name is not null) client.Name = Encoding.UTF8.GetString(name);
        if (version != 0) client.Protocol = (int)version;
        return RespValue.Map(
        [
            RespValue.Bulk("server"), RespValue.Bulk("redis"),
            RespValue.Bulk("version"), RespValue.Bulk(RedisCompatibleVersion),
            RespValue.Bulk("proto"), RespValue.Int(client.Protocol),
            RespValue.Bulk("id"), RespValue.Int(client.Id),
            RespValue.Bulk("mode"), RespValue.Bulk(HelloMode),
            RespValue.Bulk("role"), RespValue.Bulk(HelloRole),
            RespValue.Bulk("modules"), RespValue.Array([]),
        ]);
    }

    private static readonly RespValue WrongPass = RespValue.Error("WRONGPASS invalid username-password pair or user is disabled.");
    private static readonly RespValue BadClientName = RespValue.Error($"{ErrorCodes.Err} Client names cannot contain spaces, newlines or special characters.");

    /// <summary>As Redis with no password set: the user <c>default</c> with any password is accepted, any other refused.</summary>
    private static RespValue Auth(RespCommand command) => command.Count switch
    {
        2 => RespValue.Error($"{ErrorCodes.Err} AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"),
        3 => IsDefaultUser(command[1]) ? RespValue.Ok : WrongPass,
        _ => SyntaxError,
    };

    private static RespValue Select(RespCommand command)
    {
        if (!command.TryLong(1, out long index) || index is < int.MinValue or > int.MaxValue)
            return RespValue.Error($"{ErrorCodes.Err} value is not an integer or out of range");
        return index == 0 ? RespValue.Ok : RespValue.Error($"{ErrorCodes.Err} DB index is out of range");
    }

    private RespValue Time()
    {
        DateTimeOffset now = _time.GetUtcNow();
        long micros = (now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;
        return RespValue.Array([RespValue.Bulk(Num(micros / 1_000_000)), RespValue.Bulk(Num(micros % 1_000_000))]);
    }

    // ---- CLIENT ----

    private void AddClientCommands()
    {
        CommandTable<CommandHandler> client = AddContainer("CLIENT", CommandFlags.None);
        client.Add("ID", 2, CommandFlags.None, static (_, c) => new(ClientOf(c) is { } me ? RespValue.Int(me.Id) : NoConnection));
        client.Add("GETNAME", 2, CommandFlags.None, static (_, c) =>
            new(ClientOf(c) is { } me ? me.Name is { } name ? RespValue.Bulk(name) : RespValue.NullBulk : NoConnection));
        client.Add("SETNAME", 3, CommandFlags.None, static (command, c) =>
        {
            if (!ClientInfo.IsValidName(command[2])) return new(BadClientName);
            if (ClientOf(c) is not { } me) return new(NoConnection);
            me.Name = command.Text(2);
            return new(RespValue.Ok);
        });
        client.Add("INFO", 2, CommandFlags.None, static (_, c) => new(ClientOf(c) is { } me ? me.Info() : NoConnection));
        client.Add("LIST", -2, CommandFlags.None, (command, _) => new(ClientList(command)));
        client.Add("KILL", -3, CommandFlags.None, (command, c) => new(ClientKill(command, ClientOf(c))));
        client.Add("NO-EVICT", 3, CommandFlags.None, static (command, c) => new(OnOff(command, c, static (me, on) => me.NoEvict = on)));
        client.Add("NO-TOUCH", 3, CommandFlags.None, static (command, c) => new(OnOff(command, c, static (me, on) => me.NoTouch = on)));
        client.Add("REPLY", 3, CommandFlags.None, static (command, _) => new(
            Is(command[2], "ON") ? RespValue.Ok
            : Is(command[2], "OFF") || Is(command[2], "SKIP") ? RespValue.Error($"{ErrorCodes.Err} CLIENT REPLY OFF and SKIP are not supported: every command is answered")
            : SyntaxError));
        client.Add("SETINFO", 4, CommandFlags.None, static (command, c) => new(SetInfo(command, ClientOf(c))));
        client.Add("GETREDIR", 2, CommandFlags.None, static (_, _) => new(RespValue.Int(-1)));
        client.Add("HELP", 2, CommandFlags.None, static (_, _) => new(Help(
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME", "    Return the name of the current connection.",
            "GETREDIR", "    Return -1: no connection redirects tracking messages.",
            "ID", "    Return the ID of the current connection.",
            "INFO", "    Return information about the current client connection.",
            "KILL <ip:port>", "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]", "    Kill connections. Options are:",
            "    * ID <client-id>", "      Kill connections by client id.",
            "    * ADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Kill connections by type.",
            "    * USER <username>", "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)", "      Skip killing current connection (default: yes).",
            "LIST [options ...]", "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Return clients of specified type.",
            "    * ID <client-id> [<client-id> ...]", "      Return clients of the given ids.",
            "REPLY ON", "    Reply to every command (OFF and SKIP are not supported).",
            "SETINFO <option> <value>", "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.", "    * LIB-VER: the client lib version.",
            "SETNAME <name>", "    Assign the name <name> to the current connection.",
            "NO-EVICT (ON|OFF)", "    Protect current client connection from eviction.",
            "NO-TOUCH (ON|OFF)", "    Will not touch LRU/LFU stats when this mode is on.",
            "HELP", "    Prints this help.")));
    }

    private static RespValue OnOff(RespCommand command, ConnectionContext? connection, Action<ClientInfo, bool> set)
    {
        bool on = Is(command[2], "ON");
        if (!on && !Is(command[2], "OFF")) return SyntaxError;
        if (ClientOf(connection) is not { } me) return NoConnection;
        set(me, on);
        return RespValue.Ok;
    }

    private static RespValue SetInfo(RespCommand command, ClientInfo? me)
    {
        bool name = Is(command[2], "LIB-NAME");
        if (!name && !Is(command[2], "LIB-VER")) return RespValue.Error($"{ErrorCodes.Err} Unrecognized option '{CommandErrors.Quote(command[2])}'");
        if (!ClientInfo.IsValidName(command[3]))
            return RespValue.Error($"{ErrorCodes.Err} {CommandErrors.Quote(command[2])} cannot contain spaces, newlines or special characters.");
        if (me is null) return NoConnection;
        if (name) me.LibraryName = command.Text(3);
        else me.LibraryVersion = command.Text(3);
        return RespValue.Ok;
    }

    private RespValue ClientList(RespCommand command)
    {
        IEnumerable<ClientInfo> chosen = _clients.Values;
        if (command.Count == 4 && Is(command[2], "TYPE"))
        {
            string? type = ClientType(command[3]);
            if (type is null) return RespValue.Error($"{ErrorCodes.Err} Unknown client type '{CommandErrors.Quote(command[3])}'");
            chosen = chosen.Where(c => c.Type == type);
        }
        else if (command.Count >= 4 && Is(command[2], "ID"))
        {
            var ids = new HashSet<long>();
            for (int i = 3; i < command.Count; i++)
            {
                if (!command.TryLong(i, out long id) || id <= 0) return RespValue.Error($"{ErrorCodes.Err} Invalid client ID");
                ids.Add(id);
            }
            chosen = chosen.Where(c => ids.Contains(c.Id));
        }
        else if (command.Count != 2) return SyntaxError;
        var text = new StringBuilder();
        foreach (ClientInfo client in chosen.OrderBy(c => c.Id)) text.Append(client.Describe());
        return RespValue.Verbatim(text.ToString());
    }

    /// <summary>The type a name selects (<c>slave</c> is <c>replica</c>); null for an unknown name.</summary>
    private static string? ClientType(byte[] name) =>
        Is(name, "NORMAL") ? "normal" : Is(name, "PUBSUB") ? "pubsub" : Is(name, "MASTER") ? "master"
        : Is(name, "REPLICA") || Is(name, "SLAVE") ? "replica" : null;

    private RespValue ClientKill(RespCommand command, ClientInfo? me)
    {
        if (command.Count == 3)
        {
            string address = command.Text(2);
            ClientInfo? target = _clients.Values.FirstOrDefault(c => c.Address == address);
            if (target is null) return RespValue.Error($"{ErrorCodes.Err} No such client");
            Kill(target, me);
            return RespValue.Ok;
        }
        long? id = null;
        string? type = null, address2 = null, local = null;
        bool skipMe = true;
        for (int i = 2; i < command.Count; i += 2)
        {
            if (i + 1 >= command.Count) return SyntaxError;
            byte[] option = command[i], value = command[i + 1];
            if (Is(option, "ID"))
            {
                if (!command.TryLong(i + 1, out long v) || v <= 0) return RespValue.Error($"{ErrorCodes.Err} client-id should be greater than 0");
                id = v;
            }
            else if (Is(option, "TYPE"))
            {
                type = ClientType(value);
                if (type is null) return RespValue.Error($"{ErrorCodes.Err} Unknown client type '{CommandErrors.Quote(value)}'");
            }
            else if (Is(option, "ADDR")) address2 = command.Text(i + 1);
            else if (Is(option, "LADDR")) local = command.Text(i + 1);
            else if (Is(option, "USER"))
            {
                if (!IsDefaultUser(value))
                    return RespValue.Error($"{ErrorCodes.Err} No such user '{CommandErrors.Quote(value)}'");
            }
            else if (Is(option, "SKIPME"))
            {
                if (Is(value, "YES")) skipMe = true;
                else if (Is(value, "NO")) skipMe = false;
                else return SyntaxError;
            }
            else return SyntaxError;
        }
        long killed = 0;
        foreach (ClientInfo c in _clients.Values)
        {
            if (id is { } wanted && c.Id != wanted) continue;
            if (type is not null && c.Type != type) continue;
            if (address2 is not null && c.Address != address2) continue;
            if (local is not null && c.LocalAddress != local) continue;
            if (skipMe && c == me) continue;
            Kill(c, me);
            killed++;
        }
        return RespValue.Int(killed);
    }

    private void Kill(ClientInfo target, ClientInfo? me)
    {
        // A connection that kills itself gets its reply first, as in Redis.
        if (target == me)
        {
            target.CloseAfterReply = true;
            return;
        }
        // Off the list with the kill, as Redis frees the client at once: its read loop ends (and removes it
        // again, which is harmless) only when the command it is running returns, which a WAIT may never do.
        Disconnect(target);
        target.Connection.Abort(new ConnectionAbortedException("closed by CLIENT KILL"));
    }

    // ---- COMMAND ----

    private void AddCommandCommands()
    {
        CommandTable<CommandHandler> command = AddContainer("COMMAND", CommandFlags.None, (_, _) => new(RespValue.Array([.. Listed().Select(Entry)])));
        command.Add("COUNT", 2, CommandFlags.None, (_, _) => new(RespValue.Int(Listed().Count())));
        command.Add("INFO", -2, CommandFlags.None, (cmd, _) => new(cmd.Count == 2
            ? RespValue.Array([.. Listed().Select(Entry)])
            : RespValue.Array([.. Enumerable.Range(2, cmd.Count - 2).Select(i => Find(cmd.Text(i)) is { } found ? Entry(found) : RespValue.NullBulk)])));
        command.Add("DOCS", -2, CommandFlags.None, (cmd, _) =>
        {
            IEnumerable<CommandSpec<CommandHandler>> chosen = cmd.Count == 2 ? Listed()
                : Enumerable.Range(2, cmd.Count - 2).Select(i => Find(cmd.Text(i))).OfType<CommandSpec<CommandHandler>>();
            var pairs = new List<RespValue>();
            foreach (CommandSpec<CommandHandler> spec in chosen)
            {
                pairs.Add(RespValue.Bulk(FullName(spec)));
                pairs.Add(Docs(spec));
            }
            return new(RespValue.Map([.. pairs]));
        });
        command.Add("LIST", -2, CommandFlags.None, (cmd, _) => new(CommandList(cmd)));
        command.Add("GETKEYS", -3, CommandFlags.None, (cmd, _) => new(GetKeys(cmd)));
        command.Add("HELP", 2, CommandFlags.None, static (_, _) => new(Help(
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)", "    Return details about all commands.",
            "COUNT", "    Return the total number of commands in this server.",
            "LIST", "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]", "    Return details about multiple commands.",
            "    If no command names are given, documentation details for all", "    commands are returned.",
            "DOCS [<command-name> ...]", "    Return documentation details about multiple commands.",
            "    If no command names are given, documentation details for all", "    commands are returned.",
            "GETKEYS <full-command>", "    Return the keys from a full command.",
            "HELP", "    Prints this help.")));
    }

    /// <summary>The commands <c>COMMAND</c> lists: every one but the internal ones, in the order added.</summary>
    private IEnumerable<CommandSpec<CommandHandler>> Listed() => Table.All.Where(s => (s.Flags & CommandFlags.Internal) == 0);

    /// <summary>Finds <c>name</c> or <c>container|sub</c>, as <c>COMMAND INFO</c> takes them; internal commands are not found.</summary>
    private CommandSpec<CommandHandler>? Find(string name)
    {
        int bar = name.IndexOf('|');
        if (bar < 0)
            return Table.TryFind(Encoding.UTF8.GetBytes(name), out CommandSpec<CommandHandler>? spec) && (spec.Flags & CommandFlags.Internal) == 0 ? spec : null;
        if (Subcommands(name[..bar].ToUpperInvariant()) is { } subs && subs.TryFind(Encoding.UTF8.GetBytes(name[(bar + 1)..]), out CommandSpec<CommandHandler>? sub))
            return sub;
        return null;
    }

    /// <summary>A command's name as <c>COMMAND</c> gives it: <c>get</c>, or <c>client|list</c> for a subcommand.</summary>
    private string FullName(CommandSpec<CommandHandler> spec)
    {
        foreach ((string container, CommandTable<CommandHandler> subs) in _subcommands)
            if (subs.All.Contains(spec)) return $"{container.ToLowerInvariant()}|{spec.LowerName}";
        return spec.LowerName;
    }

    /// <summary>One command as <c>COMMAND INFO</c> describes it: the ten fields of Redis 7.</summary>
    private RespValue Entry(CommandSpec<CommandHandler> spec)
    {
        CommandTable<CommandHandler>? subs = Subcommands(spec.Name);
        bool container = subs is not null && Table.TryFind(spec.NameBytes, out CommandSpec<CommandHandler>? top) && top == spec;
        return RespValue.Array(
        [
            RespValue.Bulk(FullName(spec)),
            RespValue.Int(spec.Arity),
            RespValue.Set([.. FlagWords(spec.Flags).Select(RespValue.Simple)]),
            RespValue.Int(spec.Keys.First),
            RespValue.Int(spec.Keys.Last),
            RespValue.Int(spec.Keys.Step),
            RespValue.Set([.. Categories(spec.Flags).Select(RespValue.Simple)]),
            RespValue.Set([]),
            RespValue.Set(spec.Keys.First > 0 ? [KeySpecification(spec)] : []),
            container ? RespValue.Array([.. subs!.All.Select(Entry)]) : RespValue.Set([]),
        ]);
    }

    private static IEnumerable<string> FlagWords(CommandFlags flags)
    {
        if ((flags & CommandFlags.Write) != 0) yield return "write";
        if ((flags & CommandFlags.ReadOnly) != 0) yield return "readonly";
        if ((flags & CommandFlags.Fast) != 0) yield return "fast";
    }

    private static IEnumerable<string> Categories(CommandFlags flags)
    {
        if ((flags & CommandFlags.Write) != 0) yield return "@write";
        if ((flags & CommandFlags.ReadOnly) != 0) yield return "@read";
        yield return (flags & CommandFlags.Fast) != 0 ? "@fast" : "@slow";
    }

    /// <summary>Redis 7's key specification for a range of keys: where the first is, how far they go, the step.</summary>
    private static RespValue KeySpecification(CommandSpec<CommandHandler> spec)
    {
        KeySpec k = spec.Keys;
        string[] flags = (spec.Flags & CommandFlags.Write) != 0 ? ["RW", "update"] : (spec.Flags & CommandFlags.ReadOnly) != 0 ? ["RO", "access"] : [];
        return RespValue.Map(
        [
            RespValue.Bulk("flags"), RespValue.Set([.. flags.Select(RespValue.Simple)]),
            RespValue.Bulk("begin_search"), RespValue.Map(
            [
                RespValue.Bulk("type"), RespValue.Bulk("index"),
                RespValue.Bulk("spec"), RespValue.Map([RespValue.Bulk("index"), RespValue.Int(k.First)]),
            ]),
            RespValue.Bulk("find_keys"), RespValue.Map(
            [
                RespValue.Bulk("type"), RespValue.Bulk("range"),
                RespValue.Bulk("spec"), RespValue.Map(
                [
                    RespValue.Bulk("lastkey"), RespValue.Int(k.Last < 0 ? k.Last : k.Last - k.First),
                    RespValue.Bulk("keystep"), RespValue.Int(k.Step),
                    RespValue.Bulk("limit"), RespValue.Int(0),
                ]),
            ]),
        ]);
    }

    /// <summary>A command's <c>COMMAND DOCS</c> entry: its group and, for a command with subcommands, theirs.</summary>
    private RespValue Docs(CommandSpec<CommandHandler> spec)
    {
        string name = FullName(spec);
        var fields = new List<RespValue>
        {
            RespValue.Bulk("summary"), RespValue.Bulk(spec.Summary ?? Summaries.GetValueOrDefault(name, "")),
            RespValue.Bulk("since"), RespValue.Bulk("1.0.0"),
            RespValue.Bulk("group"), RespValue.Bulk(Group(name, spec.Flags)),
        };
        if (spec.Arguments is { Count: > 0 } arguments)
        {
            // redis-cli builds its hints from these (COMMAND DOCS's argument list, as Redis gives it).
            fields.Add(RespValue.Bulk("arguments"));
            fields.Add(CommandSyntax.ToDocs(arguments));
        }
        if (name.IndexOf('|') < 0 && Subcommands(spec.Name) is { } subs)
        {
            var inner = new List<RespValue>();
            foreach (CommandSpec<CommandHandler> sub in subs.All)
            {
                inner.Add(RespValue.Bulk(FullName(sub)));
                inner.Add(Docs(sub));
            }
            fields.Add(RespValue.Bulk("subcommands"));
            fields.Add(RespValue.Map([.. inner]));
        }
        return RespValue.Map([.. fields]);
    }

    private static string Group(string name, CommandFlags flags)
    {
        string top = name.Split('|')[0];
        if (top is "hello" or "auth" or "client" or "reset" or "select" or "ping" or "echo" or "quit") return "connection";
        if (top is "command" or "info" or "config" or "time" or "lastsave" or "role" or "debug" or "dbsize" or "flushall" or "flushdb") return "server";
        if (top is "subscribe" or "unsubscribe" or "psubscribe" or "punsubscribe" or "publish" or "pubsub") return "pubsub";
        if (top is "multi" or "exec" or "discard" or "watch" or "unwatch") return "transactions";
        return (flags & (CommandFlags.Write | CommandFlags.ReadOnly)) != 0 ? "string" : "generic";
    }

    /// <summary>One-line summaries of the commands every node has, for <c>COMMAND DOCS</c>.</summary>
    private static readonly Dictionary<string, string> Summaries = new(StringComparer.Ordinal)
    {
        ["ping"] = "Returns the server's liveliness response.",
        ["echo"] = "Returns the given string.",
        ["quit"] = "Closes the connection.",
        ["hello"] = "Handshakes with the server, choosing the protocol version.",
        ["auth"] = "Authenticates the connection.",
        ["reset"] = "Resets the connection.",
        ["select"] = "Changes the selected database (only 0 exists).",
        ["time"] = "Returns the server time.",
        ["client"] = "A container for client connection commands.",
        ["client|id"] = "Returns the unique client ID of the connection.",
        ["client|getname"] = "Returns the name of the connection.",
        ["client|setname"] = "Sets the connection name.",
        ["client|info"] = "Returns information about the connection.",
        ["client|list"] = "Lists open connections.",
        ["client|kill"] = "Terminates open connections.",
        ["client|no-evict"] = "Sets the client eviction mode of the connection.",
        ["client|no-touch"] = "Controls whether commands sent by the client alter the LRU/LFU of the keys they access.",
        ["client|reply"] = "Instructs the server whether to reply to commands.",
        ["client|setinfo"] = "Sets information specific to the client or connection.",
        ["client|getredir"] = "Returns the client ID to which the connection's tracking notifications are redirected.",
        ["client|help"] = "Returns helpful text about the different subcommands.",
        ["command"] = "Returns detailed information about all commands.",
        ["command|count"] = "Returns a count of commands.",
        ["command|info"] = "Returns information about one, multiple or all commands.",
        ["command|docs"] = "Returns documentary information about one, multiple or all commands.",
        ["command|list"] = "Returns a list of command names.",
        ["command|getkeys"] = "Extracts the key names from an arbitrary command.",
        ["command|help"] = "Returns helpful text about the different subcommands.",
        ["get"] = "Returns the string value of a key.",
        ["set"] = "Sets the string value of a key.",
        ["append"] = "Appends a string to the value of a key. Creates the key if it doesn't exist.",
        ["del"] = "Deletes one or more keys.",
        ["puthash"] = "Stores the FNV-1a hash of the old value and the given one; returns the old value.",
        ["xclient"] = "Issues a client id for exactly-once requests.",
        ["xreq"] = "Runs a write exactly once, under a client id and request number.",
        ["info"] = "Returns information and statistics about the server.",
        ["config"] = "A container for server configuration commands.",
        ["role"] = "Returns the replication role.",
        ["lastsave"] = "Returns the Unix timestamp of the last successful save to disk.",
        ["debug"] = "A container for debugging commands.",
    };

    private RespValue CommandList(RespCommand command)
    {
        IEnumerable<string> names = Listed().SelectMany(spec =>
            Subcommands(spec.Name) is { } subs ? subs.All.Select(FullName).Prepend(spec.LowerName) : [spec.LowerName]);
        if (command.Count != 2)
        {
            if (command.Count != 5 || !Is(command[2], "FILTERBY")) return SyntaxError;
            string value = command.Text(4);
            if (Is(command[3], "PATTERN")) names = names.Where(n => Glob.Match(value.ToLowerInvariant(), n));
            else if (Is(command[3], "ACLCAT"))
                names = names.Where(n => Find(n) is { } spec && Categories(spec.Flags).Contains("@" + value.ToLowerInvariant()));
            else if (Is(command[3], "MODULE")) names = [];
            else return SyntaxError;
        }
        return RespValue.Array([.. names.Select(RespValue.Bulk)]);
    }

    private RespValue GetKeys(RespCommand command)
    {
        if (!Table.TryFind(command[2], out CommandSpec<CommandHandler>? spec) || (spec.Flags & CommandFlags.Internal) != 0)
            return RespValue.Error($"{ErrorCodes.Err} Invalid command specified");
        int count = command.Count - 2;
        if (!spec.AcceptsCount(count)) return RespValue.Error($"{ErrorCodes.Err} Invalid number of arguments specified for command");
        RespValue[] keys = [.. spec.Keys.Positions(count).Select(i => RespValue.Bulk(command[i + 2]))];
        return keys.Length == 0 ? RespValue.Error($"{ErrorCodes.Err} The command has no key arguments") : RespValue.Array(keys);
    }

    // ---- helpers ----

    /// <summary>A <c>HELP</c> reply: one simple string per line, as Redis gives it.</summary>
    protected static RespValue Help(params string[] lines) => RespValue.Array([.. lines.Select(RespValue.Simple)]);

    /// <summary>True when <paramref name="argument"/> is <paramref name="word"/> in any case (ASCII).</summary>
    protected static bool Is(ReadOnlySpan<byte> argument, string word) => Ascii.EqualsIgnoreCase(argument, word);

    /// <summary>The only user there is, with no password: <c>default</c> (user names are case-sensitive).</summary>
    private static bool IsDefaultUser(ReadOnlySpan<byte> user) => user.SequenceEqual("default"u8);

    /// <summary>Seconds since the Unix epoch on this node's clock.</summary>
    protected long UnixSeconds() => _time.GetUtcNow().ToUnixTimeSeconds();

    /// <summary>A number as Redis writes it in text replies (invariant culture).</summary>
    protected static string Num(long n) => n.ToString(CultureInfo.InvariantCulture);
}
