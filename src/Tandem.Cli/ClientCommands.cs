using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Tandem.Client;

namespace Tandem.Cli;

/// <summary><c>tandem status|get|put|puthash|append|del</c>: one call through <see cref="TandemClient"/>.</summary>
internal static class ClientCommands
{
    private const string CoordinatorVariable = "TANDEM_COORDINATOR";
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    public static IEnumerable<Command> Create()
    {
        var key = new Argument<string>("KEY") { Description = "The key." };
        var value = new Argument<string>("VALUE") { Description = "The value (UTF-8)." };

        var json = new Option<bool>("--json") { Description = "Print the status as one line of JSON." };
        yield return ClientCommand("status", "Show the current view, the servers the coordinator group knows, and each group member.", [json],
            async (parse, client, ct) =>
            {
                IReadOnlyList<CoordinatorMemberStatus> members = await client.GetCoordinatorMembersAsync(ct);
                string status;
                try
                {
                    status = await client.GetStatusJsonAsync(ct);
                }
                catch (TimeoutException e)
                {
                    // No leader answered: say what each member said, which tells why (a majority down, an election).
                    string said = string.Join(", ", members.Select(m => $"{m.Address} {m.Role}" + (m.Term is { } t ? $" (term {t})" : "")));
                    throw new TimeoutException($"{e.Message}; coordinators: {said}", e);
                }
                members = await client.GetCoordinatorMembersAsync(ct);
                string merged = WithCoordinators(status, members);
                return parse.GetValue(json) ? merged : Readable(merged);
            });
        var confirm = new Option<bool>("--yes-the-data-is-lost")
        {
            Description = "Required: you accept that every acknowledged write is given up.",
        };
        var force = new Option<bool>("--force")
        {
            Description = "Also when the servers that held the data are not known to have restarted empty, only dead or gone (what they hold is given up).",
        };
        yield return ClientCommand("new-history",
            "When every copy of the data is gone (each server of the view restarted empty, or the coordinator group's log was lost), start a new history on the live server holding the newest state. Refused while a live server holds the data.",
            [confirm, force],
            async (parse, client, ct) =>
            {
                if (!parse.GetValue(confirm)) throw new TandemException("ERR", "new-history gives up every acknowledged write; pass --yes-the-data-is-lost to do it");
                Tandem.Protocol.View view = await client.StartNewHistoryAsync(parse.GetValue(force), ct);
                return $"new history started: {view}";
            });
        var member = new Argument<string>("MEMBER") { Description = "The member's HOST:PORT (its --listen address)." };
        Option<int> offset = NodeCommands.RaftPortOffset();
        yield return ClientCommand("add-coordinator",
            "Add a member to the coordinator group (start it first, with --peers listing the new group). The leader catches it up, then commits the new membership.",
            [member, offset],
            async (parse, client, ct) =>
            {
                await client.ChangeCoordinatorGroupAsync(add: true, NodeCommands.RaftEndPoint(parse.GetValue(member)!, parse.GetValue(offset)).ToString(), ct);
                return "OK";
            });
        yield return ClientCommand("remove-coordinator", "Remove a member from the coordinator group (a dead one, or one to retire).", [member, offset],
            async (parse, client, ct) =>
            {
                await client.ChangeCoordinatorGroupAsync(add: false, NodeCommands.RaftEndPoint(parse.GetValue(member)!, parse.GetValue(offset)).ToString(), ct);
                return "OK";
            });
        yield return ClientCommand("get", "Print the value of KEY (an empty line if it is not set).", [key],
            (parse, client, ct) => client.GetAsync(parse.GetValue(key)!, ct));
        yield return ClientCommand("put", "Set KEY to VALUE.", [key, value],
            async (parse, client, ct) =>
            {
                await client.PutAsync(parse.GetValue(key)!, parse.GetValue(value)!, ct);
                return "OK";
            });
        yield return ClientCommand("puthash", "Set KEY to the FNV-1a hash of its old value + VALUE; print the old value.", [key, value],
            (parse, client, ct) => client.PutHashAsync(parse.GetValue(key)!, parse.GetValue(value)!, ct));
        yield return ClientCommand("append", "Append VALUE to KEY; print the new length.", [key, value],
            async (parse, client, ct) =>
                (await client.AppendAsync(parse.GetValue(key)!, parse.GetValue(value)!, ct)).ToString(CultureInfo.InvariantCulture));
        yield return ClientCommand("del", "Delete KEY; print 1 if it existed, else 0.", [key],
            async (parse, client, ct) => await client.DeleteAsync(parse.GetValue(key)!, ct) ? "1" : "0");
    }

    private static Command ClientCommand(string name, string description, Symbol[] symbols,
        Func<ParseResult, TandemClient, CancellationToken, Task<string>> run)
    {
        Option<string> coordinator = CliParsers.RemoteList("--coordinator",
            $"The coordinator group's members. Default: ${CoordinatorVariable}, else 127.0.0.1:7000.",
            () => Environment.GetEnvironmentVariable(CoordinatorVariable) is { Length: > 0 } env ? env : "127.0.0.1:7000");
        Option<TimeSpan?> timeout = CliParsers.Duration("--timeout", DefaultTimeout, "Give up after this long.");

        var command = new Command(name, description);
        foreach (Symbol symbol in symbols)
        {
            if (symbol is Argument argument) command.Arguments.Add(argument);
            else command.Options.Add((Option)symbol);
        }
        command.Options.Add(coordinator);
        command.Options.Add(timeout);
        command.SetAction(async (parse, ct) =>
        {
            TandemClientOptions options;
            try
            {
                options = new TandemClientOptions { Coordinator = parse.GetValue(coordinator)!, OperationTimeout = parse.GetDuration(timeout, DefaultTimeout) };
            }
            catch (ArgumentException e)
            {
                return NodeCommands.Fail($"--coordinator: {e.Message}");
            }
            await using var client = new TandemClient(options);
            try
            {
                Console.WriteLine(await run(parse, client, ct));
                return 0;
            }
            catch (Exception e) when (e is TimeoutException or TandemException or JsonException or FormatException)
            {
                return NodeCommands.Fail(e.Message);
            }
        });
        return command;
    }

    /// <summary>The leader's status with <c>"coordinators"</c> added: each member's address, role and term, as it says itself.</summary>
    private static string WithCoordinators(string status, IReadOnlyList<CoordinatorMemberStatus> members)
    {
        var root = System.Text.Json.Nodes.JsonNode.Parse(status)!.AsObject();
        var list = new System.Text.Json.Nodes.JsonArray();
        foreach (CoordinatorMemberStatus m in members)
            list.Add(new System.Text.Json.Nodes.JsonObject { ["address"] = m.Address, ["role"] = m.Role, ["term"] = m.Term });
        root["coordinators"] = list;
        return root.ToJsonString();
    }

    private static string Readable(string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        JsonElement root = document.RootElement;
        string Field(string name) => root.TryGetProperty(name, out JsonElement e)
            ? e.ValueKind == JsonValueKind.String ? e.GetString() is { Length: > 0 } s ? s : "(none)" : e.GetRawText()
            : "?";
        var text = new StringBuilder();
        text.AppendLine($"view:    {Field("view")}{(root.TryGetProperty("acked", out JsonElement acked) && acked.ValueKind == JsonValueKind.False ? " (not yet acknowledged by the primary)" : "")}");
        text.AppendLine($"primary: {Field("primary")}");
        text.AppendLine($"backup:  {Field("backup")}");
        if (root.TryGetProperty("dataLost", out JsonElement lost) && lost.ValueKind == JsonValueKind.True)
            text.AppendLine("DATA LOST: every server that held the data restarted empty; `tandem new-history --yes-the-data-is-lost` starts a new, empty history.");
        if (root.TryGetProperty("historyLost", out JsonElement history) && history.ValueKind == JsonValueKind.True)
            text.AppendLine("HISTORY LOST: the coordinator group's log is empty but servers report later views (were its data directories wiped?). Restore them, or `tandem new-history --yes-the-data-is-lost` starts a new history on the server holding the newest state.");
        text.Append("servers:");
        if (root.TryGetProperty("servers", out JsonElement servers) && servers.ValueKind == JsonValueKind.Array && servers.GetArrayLength() > 0)
        {
            foreach (JsonElement server in servers.EnumerateArray()) text.Append("\n  ").Append(Describe(server));
        }
        else
        {
            text.Append(" (none)");
        }
        if (root.TryGetProperty("coordinators", out JsonElement coordinators) && coordinators.ValueKind == JsonValueKind.Array)
        {
            text.Append("\ncoordinators:");
            foreach (JsonElement c in coordinators.EnumerateArray()) text.Append("\n  ").Append(Describe(c));
        }
        return text.ToString();
    }

    private static string Describe(JsonElement server) => server.ValueKind switch
    {
        JsonValueKind.String => server.GetString() ?? "",
        JsonValueKind.Object => string.Join("  ", server.EnumerateObject().Select(p =>
            p.Value.ValueKind == JsonValueKind.String ? $"{p.Name}={p.Value.GetString()}" : $"{p.Name}={p.Value.GetRawText()}")),
        _ => server.GetRawText(),
    };
}
