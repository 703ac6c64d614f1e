using System.Globalization;
using System.Net;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Server;

/// <summary>
/// The server's commands about itself (not the data), as Redis 7 answers them: INFO, ROLE, CONFIG, LASTSAVE, DEBUG.
/// The connection commands (HELLO, CLIENT, COMMAND, SELECT...) are every node's (RespConnectionHandler.Connection.cs).
/// </summary>
internal sealed partial class ServerHandler
{
    private static readonly RespValue DebugRefused = RespValue.Error($"{ErrorCodes.Err} DEBUG command not allowed. If the enable-debug-command " +
        "option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, " +
        "and then restart the server.");

    private static readonly string TandemVersion =
        (typeof(ServerHandler).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0").Split('+')[0];

    private readonly string _runId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));
    private readonly Dictionary<string, string> _settable = new(StringComparer.Ordinal)
    {
        ["slowlog-log-slower-than"] = "10000", ["slowlog-max-len"] = "128", ["latency-monitor-threshold"] = "0",
        ["hz"] = "10", ["loglevel"] = "notice", ["lua-time-limit"] = "5000", ["busy-reply-threshold"] = "5000",
    };

    private void AddServerCommands()
    {
        TimeProvider = _options.TimeProvider;
        Table.Add("INFO", -1, CommandFlags.None, (cmd, conn) => Done(Info(cmd, conn)));
        Table.Add("ROLE", 1, CommandFlags.Fast, (_, _) => Done(Role()));
        Table.Add("LASTSAVE", 1, CommandFlags.Fast, (_, _) => Done(RespValue.Int(StartedAt.ToUnixTimeSeconds())));
        Table.Add("DEBUG", -2, CommandFlags.None, (_, _) => Done(DebugRefused));
        CommandTable<CommandHandler> config = AddContainer("CONFIG", CommandFlags.None);
        config.Add("GET", -3, CommandFlags.None, (cmd, conn) => Done(ConfigGet(cmd, conn)));
        config.Add("SET", -4, CommandFlags.None, (cmd, conn) => Done(ConfigSet(cmd, conn)));
        config.Add("RESETSTAT", 2, CommandFlags.None, (_, _) =>
        {
            ResetStatistics();
            return Done(RespValue.Ok);
        });
        config.Add("REWRITE", 2, CommandFlags.None, (_, _) => Done(RespValue.Error($"{ErrorCodes.Err} The server is running without a config file")));
        config.Add("HELP", 2, CommandFlags.None, (_, _) => Done(Help(
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>", "    Set the configuration <directive> to <value> (only those with no effect on Tandem can change).",
            "RESETSTAT", "    Reset statistics reported by the INFO command.",
            "REWRITE", "    Refused: the server is running without a config file.",
            "HELP", "    Prints this help.")));
    }

    /// <inheritdoc />
    protected override string HelloRole => _replica()?.IsServingPrimary == true ? "master" : "replica";

    // ---- INFO ----

    /// <summary>Every section, in the order Redis prints them.</summary>
    private static readonly string[] Sections =
        ["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "modules", "commandstats", "errorstats", "cluster", "keyspace"];

    private RespValue Info(RespCommand cmd, ConnectionContext? conn)
    {
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        if (cmd.Count == 1) wanted.UnionWith(Sections.Where(s => s != "commandstats"));
        for (int i = 1; i < cmd.Count; i++)
        {
            string s = cmd.Text(i).ToLowerInvariant();
            if (s == "default") wanted.UnionWith(Sections.Where(x => x != "commandstats"));
            else if (s is "all" or "everything") wanted.UnionWith(Sections);
            else wanted.Add(s);
        }
        Replica? r = _replica();
        ReplicationStatus? status = r?.Status();
        var text = new StringBuilder();
        foreach (string section in Sections)
        {
            if (!wanted.Contains(section)) continue;
            if (text.Length > 0) text.Append("\r\n");
            switch (section)
            {
                case "server": ServerSection(text, r, conn); break;
                case "clients": ClientsSection(text); break;
                case "memory": MemorySection(text); break;
                case "persistence": PersistenceSection(text); break;
                case "stats": StatsSection(text); break;
                case "replication": ReplicationSection(text, r, status); break;
                case "cpu": CpuSection(text); break;
                case "modules": text.Append("# Modules\r\n"); break;
                case "commandstats": CommandStatsSection(text); break;
                case "errorstats": text.Append("# Errorstats\r\n"); break;
                case "cluster": text.Append("# Cluster\r\ncluster_enabled:0\r\n"); break;
                case "keyspace": KeyspaceSection(text, r, status); break;
            }
        }
        return RespValue.Verbatim(text.ToString());
    }

    private static void Line(StringBuilder text, string name, string value) => text.Append(name).Append(':').Append(value).Append("\r\n");

    private static void Line(StringBuilder text, string name, long value) => Line(text, name, Num(value));

    private void ServerSection(StringBuilder text, Replica? r, ConnectionContext? conn)
    {
        long uptime = (long)Uptime.TotalSeconds;
        text.Append("# Server\r\n");
        Line(text, "redis_version", RedisCompatibleVersion);
        Line(text, "tandem_version", TandemVersion);
        Line(text, "redis_git_sha1", "00000000");
        Line(text, "redis_git_dirty", 0);
        Line(text, "redis_build_id", "0");
        Line(text, "redis_mode", "standalone");
        Line(text, "os", $"{RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture switch
        {
            Architecture.X64 => "x86_64",
            Architecture.Arm64 => "aarch64",
            Architecture arch => arch.ToString().ToLowerInvariant(),
        }}");
        Line(text, "arch_bits", IntPtr.Size * 8);
        Line(text, "process_id", Environment.ProcessId);
        Line(text, "process_supervised", "no");
        Line(text, "run_id", _runId);
        Line(text, "tcp_port", Port(conn));
        Line(text, "server_time_usec", (TimeProvider.GetUtcNow().UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10);
        Line(text, "uptime_in_seconds", uptime);
        Line(text, "uptime_in_days", uptime / 86400);
        Line(text, "executable", Environment.ProcessPath ?? "");
        Line(text, "config_file", "");
        Line(text, "tandem_address", r?.Me ?? "");
    }

    /// <summary>The port clients reach this server on: the one this connection came in on, else the configured one.</summary>
    private int Port(ConnectionContext? conn) => conn?.LocalEndPoint is IPEndPoint ep ? ep.Port : _options.Listen.Port;

    private void ClientsSection(StringBuilder text)
    {
        text.Append("# Clients\r\n");
        Line(text, "connected_clients", Clients.Count);
        Line(text, "cluster_connections", 0);
        Line(text, "maxclients", _options.MaxConnections);
        Line(text, "client_recent_max_input_buffer", 0);
        Line(text, "client_recent_max_output_buffer", 0);
        Line(text, "blocked_clients", 0);
        Line(text, "tracking_clients", 0);
        Line(text, "clients_in_timeout_table", 0);
    }

    private static void MemorySection(StringBuilder text)
    {
        long used = GC.GetTotalMemory(false);
        long rss = Environment.WorkingSet;
        GCMemoryInfo gc = GC.GetGCMemoryInfo();
        text.Append("# Memory\r\n");
        Line(text, "used_memory", used);
        Line(text, "used_memory_human", Human(used));
        Line(text, "used_memory_rss", rss);
        Line(text, "used_memory_rss_human", Human(rss));
        Line(text, "used_memory_peak", Math.Max(used, gc.HeapSizeBytes));
        Line(text, "used_memory_peak_human", Human(Math.Max(used, gc.HeapSizeBytes)));
        Line(text, "total_system_memory", gc.TotalAvailableMemoryBytes);
        Line(text, "total_system_memory_human", Human(gc.TotalAvailableMemoryBytes));
        Line(text, "maxmemory", 0);
        Line(text, "maxmemory_human", "0B");
        Line(text, "maxmemory_policy", "noeviction");
        Line(text, "mem_allocator", "dotnet-gc");
    }

    /// <summary>Bytes as Redis writes them for people: <c>512B</c>, <c>1.13M</c>...</summary>
    private static string Human(long bytes)
    {
        string[] units = ["K", "M", "G", "T", "P"];
        if (bytes < 1024) return Num(bytes) + "B";
        double v = bytes / 1024.0;
        int u = 0;
        while (v >= 1024 && u < units.Length - 1)
        {
            v /= 1024;
            u++;
        }
        return v.ToString("0.00", CultureInfo.InvariantCulture) + units[u];
    }

    private void PersistenceSection(StringBuilder text)
    {
        text.Append("# Persistence\r\n");
        Line(text, "loading", 0);
        Line(text, "async_loading", 0);
        Line(text, "rdb_changes_since_last_save", 0);
        Line(text, "rdb_bgsave_in_progress", 0);
        Line(text, "rdb_last_save_time", StartedAt.ToUnixTimeSeconds());
        Line(text, "rdb_last_bgsave_status", "ok");
        Line(text, "aof_enabled", 0);
        Line(text, "aof_rewrite_in_progress", 0);
    }

    private void StatsSection(StringBuilder text)
    {
        long errors = CommandStatistics().Sum(s => s.Stats.Failed + s.Stats.Rejected);
        text.Append("# Stats\r\n");
        Line(text, "total_connections_received", ConnectionsReceived);
        Line(text, "total_commands_processed", CommandsProcessed);
        Line(text, "instantaneous_ops_per_sec", 0);
        Line(text, "rejected_connections", 0);
        Line(text, "expired_keys", 0);
        Line(text, "evicted_keys", 0);
        Line(text, "total_error_replies", errors);
    }

    private static void ReplicationSection(StringBuilder text, Replica? r, ReplicationStatus? status)
    {
        text.Append("# Replication\r\n");
        if (r is null || status is not { } s)
        {
            Line(text, "role", "slave");
            Line(text, "master_host", "");
            Line(text, "master_port", 0);
            Line(text, "master_link_status", "down");
            Line(text, "connected_slaves", 0);
            Line(text, "tandem_role", "starting");
            return;
        }
        View v = s.View;
        // "master" exactly when writes are served here (a primary not yet holding its view's state answers READONLY).
        bool primary = s.ServingPrimary;
        if (primary)
        {
            Line(text, "role", "master");
            Line(text, "connected_slaves", v.Backup.Length > 0 ? 1 : 0);
            if (v.Backup.Length > 0)
            {
                (string host, int port) = Split(v.Backup);
                Line(text, "slave0", $"ip={host},port={Num(port)},state={(s.Synced ? "online" : "send_bulk")},offset={Num(s.CommitIndex)},lag=0");
            }
        }
        else
        {
            (string host, int port) = Split(v.Primary);
            bool backup = v.Backup == r.Me;
            Line(text, "role", "slave");
            Line(text, "master_host", host);
            Line(text, "master_port", port);
            Line(text, "master_link_status", backup && s.Synced ? "up" : "down");
            Line(text, "master_last_io_seconds_ago", backup && s.Synced ? 0 : -1);
            Line(text, "master_sync_in_progress", s.SyncInProgress ? 1 : 0);
            Line(text, "slave_read_repl_offset", s.LastApplied);
            Line(text, "slave_repl_offset", s.LastApplied);
            Line(text, "slave_priority", 100);
            Line(text, "slave_read_only", 1);
            Line(text, "replica_announced", 1);
            Line(text, "connected_slaves", 0);
        }
        Line(text, "master_failover_state", "no-failover");
        Line(text, "master_repl_offset", s.LastApplied);
        Line(text, "second_repl_offset", -1);
        Line(text, "repl_backlog_active", 0);
        Line(text, "tandem_role", primary ? "primary" : v.Backup == r.Me ? "backup" : "idle");
        Line(text, "tandem_view", v.Number);
        Line(text, "tandem_primary", v.Primary);
        Line(text, "tandem_backup", v.Backup);
    }

    private static void CpuSection(StringBuilder text)
    {
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        text.Append("# CPU\r\n");
        Line(text, "used_cpu_sys", process.PrivilegedProcessorTime.TotalSeconds.ToString("0.000000", CultureInfo.InvariantCulture));
        Line(text, "used_cpu_user", process.UserProcessorTime.TotalSeconds.ToString("0.000000", CultureInfo.InvariantCulture));
    }

    private void CommandStatsSection(StringBuilder text)
    {
        text.Append("# Commandstats\r\n");
        double perTick = 1_000_000.0 / TimeProvider.TimestampFrequency;
        foreach ((string name, CommandStats stats) in CommandStatistics())
        {
            long calls = stats.Calls, rejected = stats.Rejected, failed = stats.Failed;
            if (calls + rejected + failed == 0) continue;
            long usec = (long)(stats.Ticks * perTick);
            string perCall = (calls == 0 ? 0 : (double)usec / calls).ToString("0.00", CultureInfo.InvariantCulture);
            text.Append(CultureInfo.InvariantCulture,
                $"cmdstat_{name}:calls={calls},usec={usec},usec_per_call={perCall},rejected_calls={rejected},failed_calls={failed}\r\n");
        }
    }

    private static void KeyspaceSection(StringBuilder text, Replica? r, ReplicationStatus? status)
    {
        text.Append("# Keyspace\r\n");
        if (r is null || status is not { } s) return;
        if (s.Keys > 0) text.Append(CultureInfo.InvariantCulture, $"db0:keys={s.Keys},expires={s.VolatileKeys},avg_ttl=0\r\n");
        Line(text, "tandem_keys", s.Keys);
        Line(text, "tandem_last_applied", s.LastApplied);
        text.Append(r.SessionInfo());
    }

    /// <summary>A <c>host:port</c> address split in two (<c>[v6]:port</c> too); port 0 when there is none.</summary>
    private static (string Host, int Port) Split(string address)
    {
        (string host, string port) = View.SplitAddress(address);
        return (host, int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : 0);
    }

    // ---- ROLE ----

    /// <summary>
    /// Redis's <c>ROLE</c>: on the primary <c>master</c>, its offset and its replica (ip, port, acknowledged offset);
    /// elsewhere <c>slave</c>, the primary's ip and port, the link state (<c>connected</c> once the backup holds the
    /// view, <c>sync</c> while its snapshot arrives, else <c>connect</c>) and the offset.
    /// </summary>
    private RespValue Role()
    {
        if (_replica() is not { } r) return RespValue.Array([RespValue.Bulk("slave"), RespValue.Bulk(""), RespValue.Int(0), RespValue.Bulk("connect"), RespValue.Int(-1)]);
        ReplicationStatus s = r.Status();
        if (s.ServingPrimary)
        {
            RespValue[] replicas = [];
            if (s.View.Backup.Length > 0)
            {
                (string host, int port) = Split(s.View.Backup);
                replicas = [RespValue.Array([RespValue.Bulk(host), RespValue.Bulk(Num(port)), RespValue.Bulk(Num(s.CommitIndex))])];
            }
            return RespValue.Array([RespValue.Bulk("master"), RespValue.Int(s.LastApplied), RespValue.Array(replicas)]);
        }
        (string primaryHost, int primaryPort) = Split(s.View.Primary);
        string state = s.View.Backup == r.Me ? s.Synced ? "connected" : s.SyncInProgress ? "sync" : "connecting" : "connect";
        return RespValue.Array([RespValue.Bulk("slave"), RespValue.Bulk(primaryHost), RespValue.Int(primaryPort), RespValue.Bulk(state), RespValue.Int(s.LastApplied)]);
    }

    // ---- CONFIG ----

    /// <summary>The parameters <c>CONFIG GET</c> reports (clients such as redis-benchmark ask for them at start-up); they cannot change.</summary>
    private (string Name, string Value)[] FixedConfig(ConnectionContext? conn) =>
    [
        ("save", ""), ("appendonly", "no"), ("appendfsync", "everysec"), ("databases", "1"), ("maxmemory", "0"),
        ("maxmemory-policy", "noeviction"), ("timeout", "0"), ("cluster-enabled", "no"), ("replica-read-only", "yes"),
        ("slave-read-only", "yes"), ("port", Num(Port(conn))), ("maxclients", Num(_options.MaxConnections)),
        ("proto-max-bulk-len", Num(_options.MaxValueBytes)), ("notify-keyspace-events", ""), ("enable-debug-command", "no"),
        ("min-replicas-to-write", "0"), ("dbfilename", ""), ("requirepass", ""), ("tcp-keepalive", "0"),
    ];

    private RespValue ConfigGet(RespCommand cmd, ConnectionContext? conn)
    {
        var pairs = new List<RespValue>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        (string Name, string Value)[] all;
        lock (_settable) all = [.. FixedConfig(conn), .. _settable.Select(p => (p.Key, p.Value))];
        for (int i = 2; i < cmd.Count; i++)
        {
            string pattern = cmd.Text(i).ToLowerInvariant();
            foreach ((string name, string value) in all)
            {
                if (!Glob.Match(pattern, name) || !seen.Add(name)) continue;
                pairs.Add(RespValue.Bulk(name));
                pairs.Add(RespValue.Bulk(value));
            }
        }
        return RespValue.Map([.. pairs]);
    }

    /// <summary>
    /// <c>CONFIG SET name value [name value ...]</c>, all or nothing: a parameter Tandem reports but cannot change
    /// accepts only its current value, a parameter with no effect on Tandem (<c>hz</c>, <c>slowlog-*</c>...) is kept
    /// and reported back, anything else gets Redis's error.
    /// </summary>
    private RespValue ConfigSet(RespCommand cmd, ConnectionContext? conn)
    {
        if ((cmd.Count - 2) % 2 != 0) return CommandErrors.WrongArity("config|set");
        Dictionary<string, string> fixedValues = FixedConfig(conn).ToDictionary(p => p.Name, p => p.Value, StringComparer.Ordinal);
        var changes = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        lock (_settable)
        {
            for (int i = 2; i < cmd.Count; i += 2)
            {
                string name = cmd.Text(i).ToLowerInvariant(), value = cmd.Text(i + 1);
                if (!fixedValues.TryGetValue(name, out string? current) && !_settable.ContainsKey(name))
                    return RespValue.Error($"{ErrorCodes.Err} Unknown option or number of arguments for CONFIG SET - '{CommandErrors.Quote(cmd[i])}'");
                if (!seen.Add(name)) return SetFailed(name, "duplicate parameter");
                if (current is not null)
                {
                    if (value != current) return SetFailed(name, "can't set immutable config");
                    continue;
                }
                if (name == "loglevel")
                {
                    value = value.ToLowerInvariant();
                    if (value is not ("debug" or "verbose" or "notice" or "warning" or "nothing"))
                        return SetFailed(name, "argument(s) must be one of the following: debug, verbose, notice, warning, nothing");
                }
                else if (!long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n)) return SetFailed(name, "argument couldn't be parsed into an integer");
                else value = Num(n);
                changes[name] = value;
            }
            foreach ((string name, string value) in changes) _settable[name] = value;
        }
        return RespValue.Ok;
    }

    private static RespValue SetFailed(string name, string why) =>
        RespValue.Error($"{ErrorCodes.Err} CONFIG SET failed (possibly related to argument '{name}') - {why}");
}
