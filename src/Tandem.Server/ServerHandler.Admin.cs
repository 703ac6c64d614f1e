using Tandem.Protocol;

namespace Tandem.Server;

/// <summary>The server's commands about itself and its connections (not the data): INFO, CONFIG, CLIENT...</summary>
internal sealed partial class ServerHandler
{
    private void AddServerCommands()
    {
        Table.Add("SELECT", 2, CommandFlags.Fast, (cmd, _) =>
            Done(cmd.Text(1) == "0" ? RespValue.Ok : RespValue.Error($"{ErrorCodes.Err} DB index is out of range")));
        Table.Add("CLIENT", -2, CommandFlags.Fast, (_, _) => Done(RespValue.Ok));
        Table.Add("CONFIG", -2, CommandFlags.Fast, (cmd, _) => Done(Config(cmd)));
        Table.Add("COMMAND", -1, CommandFlags.Fast, (_, _) => Done(RespValue.Array([])));
        Table.Add("HELLO", -1, CommandFlags.Fast, (_, _) => Done(RespValue.Error("NOPROTO this server speaks RESP2 only")));
        Table.Add("INFO", -1, CommandFlags.Fast, (_, _) => Done(Info(_replica())));
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

    /// <summary>The parameters <c>CONFIG GET</c> reports (clients such as redis-benchmark ask for them at start-up).</summary>
    private static readonly (string Name, string Value)[] ConfigValues =
    [
        ("save", ""), ("appendonly", "no"), ("databases", "1"), ("maxmemory", "0"), ("maxmemory-policy", "noeviction"),
        ("timeout", "0"), ("cluster-enabled", "no"), ("replica-read-only", "yes"), ("slave-read-only", "yes"),
    ];

    private static RespValue Config(RespCommand cmd)
    {
        string sub = cmd.Text(1);
        if (!sub.Equals("GET", StringComparison.OrdinalIgnoreCase))
            return RespValue.Error($"{ErrorCodes.Err} unknown subcommand '{Truncate(sub)}'. Try CONFIG HELP.");
        if (cmd.Count < 3) return CommandErrors.WrongArity("config|get");
        var pairs = new List<RespValue>();
        foreach ((string name, string value) in ConfigValues)
        {
            for (int i = 2; i < cmd.Count; i++)
            {
                if (!GlobMatch(cmd.Text(i).ToLowerInvariant(), name)) continue;
                pairs.Add(RespValue.Bulk(name));
                pairs.Add(RespValue.Bulk(value));
                break;
            }
        }
        return RespValue.Array([.. pairs]);
    }

    /// <summary>Redis's glob patterns, as far as <c>CONFIG GET</c> needs them: <c>*</c>, <c>?</c> and literal text.</summary>
    private static bool GlobMatch(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        // Two pointers, backtracking only to the last '*': linear in practice, never exponential.
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t])) { p++; t++; }
            else if (p < pattern.Length && pattern[p] == '*') { star = p++; mark = t; }
            else if (star >= 0) { p = star + 1; t = ++mark; }
            else return false;
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }

}
