using System.CommandLine;
using Tandem.Cli;
using Tandem.Net;

// Before any socket exists: the runtime reads these switches once.
SocketEventLoop.Enable();

var root = new RootCommand("Tandem: a primary/backup replicated key-value store speaking RESP2.");
foreach (Command command in NodeCommands.Create()) root.Subcommands.Add(command);
foreach (Command command in ClientCommands.Create()) root.Subcommands.Add(command);
root.Subcommands.Add(ChaosCommand.Create());
root.Subcommands.Add(BenchCommand.Create());

ParseResult parsed = root.Parse(args);
if (parsed.Errors.Count > 0 && parsed.Action is not System.CommandLine.Help.HelpAction)
{
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"tandem: {error.Message}");
    string usage = parsed.CommandResult.Command == root ? "tandem" : $"tandem {parsed.CommandResult.Command.Name}";
    Console.Error.WriteLine($"Run '{usage} --help' for usage.");
    return 2;
}
// Signals are handled by the long-running commands themselves, so that they can stop cleanly and exit 0.
return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
