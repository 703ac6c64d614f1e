using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Tandem.Protocol;

/// <summary>What a command does, as <c>COMMAND INFO</c> reports it.</summary>
[Flags]
public enum CommandFlags
{
    /// <summary>Nothing special.</summary>
    None = 0,
    /// <summary>Changes the data (replicated).</summary>
    Write = 1,
    /// <summary>Reads the data.</summary>
    ReadOnly = 2,
    /// <summary>Answered by any node, whatever its role (PING, ECHO...).</summary>
    Fast = 4,
    /// <summary>Between nodes (replication, coordinator), not for applications.</summary>
    Internal = 8,
    /// <summary>The connection is closed once the reply is written (QUIT).</summary>
    CloseAfterReply = 16,
}

/// <summary>
/// Where a command's keys are among its arguments, as Redis's legacy key specification states it: from
/// <see cref="First"/> to <see cref="Last"/> (negative counts from the end: -1 is the last argument) every
/// <see cref="Step"/>-th argument. <see cref="None"/> (0, 0, 0) for a command without keys.
/// </summary>
public readonly record struct KeySpec(int First, int Last, int Step)
{
    /// <summary>No keys.</summary>
    public static KeySpec None => default;

    /// <summary>One key, the first argument.</summary>
    public static KeySpec One => new(1, 1, 1);

    /// <summary>Every argument is a key.</summary>
    public static KeySpec All => new(1, -1, 1);

    /// <summary>Key-value pairs from the first argument (MSET).</summary>
    public static KeySpec Pairs => new(1, -1, 2);

    /// <summary>
    /// The last key's position in a command of <paramref name="count"/> arguments (the name included); below
    /// <see cref="First"/> when it has no keys. Keys are at <see cref="First"/>, then every <see cref="Step"/>.
    /// </summary>
    public int LastIndex(int count) => Step <= 0 || First <= 0 ? First - 1 : Last < 0 ? count + Last : Math.Min(Last, count - 1);

    /// <summary>Positions of the keys of a command of <paramref name="count"/> arguments (the name included).</summary>
    public IEnumerable<int> Positions(int count)
    {
        for (int i = First, last = LastIndex(count); i <= last; i += Step) yield return i;
    }
}

/// <summary>One entry of a <see cref="CommandTable{THandler}"/>.</summary>
public sealed class CommandSpec<THandler>
{
    internal CommandSpec(string name, int arity, CommandFlags flags, THandler handler, KeySpec keys)
    {
        Keys = keys;
        Name = name.ToUpperInvariant();
        LowerName = name.ToLowerInvariant();
        NameBytes = Encoding.ASCII.GetBytes(Name);
        Arity = arity;
        Flags = flags;
        Handler = handler;
    }

    /// <summary>The name in upper case.</summary>
    public string Name { get; }

    /// <summary>The name in lower case, as Redis names commands in replies and errors.</summary>
    public string LowerName { get; }

    /// <summary>The name's ASCII bytes, upper case.</summary>
    public byte[] NameBytes { get; }

    /// <summary>Arguments, the name included, as Redis states arity: n &gt; 0 exactly n, n &lt; 0 at least -n.</summary>
    public int Arity { get; }

    /// <summary>What the command does.</summary>
    public CommandFlags Flags { get; }

    /// <summary>What runs it.</summary>
    public THandler Handler { get; }

    /// <summary>Where the command's keys are (Redis's first key, last key and step, as <c>COMMAND INFO</c> gives them).</summary>
    public KeySpec Keys { get; }

    /// <summary>One line on what the command does (<c>COMMAND DOCS</c>), or null.</summary>
    public string? Summary { get; internal set; }

    /// <summary>The command's arguments in Redis's documentation syntax (<see cref="CommandSyntax"/>), or null.</summary>
    public string? Syntax { get; internal set; }

    /// <summary>
    /// <see cref="Syntax"/> parsed (once, when the command is described), or null: <c>COMMAND DOCS</c> gives them
    /// as Redis does, and redis-cli shows them as hints while one types.
    /// </summary>
    public IReadOnlyList<CommandSyntax.Argument>? Arguments { get; internal set; }

    /// <summary>What the command has cost so far (<c>INFO commandstats</c>).</summary>
    public CommandStats Stats { get; } = new();

    /// <summary>True when <paramref name="count"/> arguments (the name included) fit the arity.</summary>
    public bool AcceptsCount(int count) => Arity >= 0 ? count == Arity : count >= -Arity;
}

/// <summary>
/// Commands by name: the one place a node looks a command up, with its arity and flags. Lookup takes the name's
/// bytes as they arrived, in any case, and allocates nothing.
/// </summary>
public sealed class CommandTable<THandler>
{
    private const int MaxNameLength = 64;
    private readonly Dictionary<int, CommandSpec<THandler>[]> _byShape = new();
    private readonly List<CommandSpec<THandler>> _all = new();

    /// <summary>Every command, in the order added.</summary>
    public IReadOnlyList<CommandSpec<THandler>> All => _all;

    /// <summary>Adds (or, by the same name, replaces) a command.</summary>
    public CommandTable<THandler> Add(string name, int arity, CommandFlags flags, THandler handler) =>
        Add(name, arity, flags, KeySpec.None, handler);

    /// <summary>Adds (or, by the same name, replaces) a command whose keys are at <paramref name="keys"/>.</summary>
    public CommandTable<THandler> Add(string name, int arity, CommandFlags flags, KeySpec keys, THandler handler)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Length > MaxNameLength || !Ascii.IsValid(name)) throw new ArgumentException("command names are short ASCII words", nameof(name));
        var spec = new CommandSpec<THandler>(name, arity, flags, handler, keys);
        _all.RemoveAll(s => s.Name == spec.Name);
        _all.Add(spec);
        int shape = Shape(spec.NameBytes);
        _byShape.TryGetValue(shape, out CommandSpec<THandler>[]? same);
        _byShape[shape] = [.. (same ?? []).Where(s => s.Name != spec.Name), spec];
        return this;
    }

    /// <summary>Gives the command <paramref name="name"/> (added before) its summary and argument syntax.</summary>
    public CommandTable<THandler> Describe(string name, string? summary, string? syntax)
    {
        CommandSpec<THandler> spec = Described(name);
        spec.Summary = summary;
        spec.Syntax = syntax;
        spec.Arguments = syntax is null ? null : CommandSyntax.Parse(syntax); // a syntax that does not parse fails at start-up
        return this;
    }

    /// <summary>Gives the command named as <paramref name="from"/> (added before) that command's description, as parsed there.</summary>
    public CommandTable<THandler> Describe<TOther>(CommandSpec<TOther> from)
    {
        ArgumentNullException.ThrowIfNull(from);
        CommandSpec<THandler> spec = Described(from.Name);
        spec.Summary = from.Summary;
        spec.Syntax = from.Syntax;
        spec.Arguments = from.Arguments;
        return this;
    }

    private CommandSpec<THandler> Described(string name) =>
        TryFind(System.Text.Encoding.ASCII.GetBytes(name), out CommandSpec<THandler>? spec) ? spec
            : throw new ArgumentException($"no command {name} to describe", nameof(name));

    /// <summary>Finds the command named <paramref name="name"/> (ASCII, any case).</summary>
    public bool TryFind(ReadOnlySpan<byte> name, [NotNullWhen(true)] out CommandSpec<THandler>? spec)
    {
        spec = null;
        if (name.Length == 0 || name.Length > MaxNameLength || !_byShape.TryGetValue(Shape(name), out CommandSpec<THandler>[]? candidates)) return false;
        foreach (CommandSpec<THandler> c in candidates)
        {
            if (Ascii.EqualsIgnoreCase(c.NameBytes, name))
            {
                spec = c;
                return true;
            }
        }
        return false;
    }

    private static int Shape(ReadOnlySpan<byte> name) => (name.Length << 8) | (name[0] & 0xDF);
}

/// <summary>Redis's replies to a command that cannot run, word for word.</summary>
public static class CommandErrors
{
    private const int MaxEchoed = 128;

    /// <summary><c>ERR unknown command 'x', with args beginning with: 'a' 'b' </c></summary>
    public static RespValue Unknown(RespCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        var text = new StringBuilder($"{ErrorCodes.Err} unknown command '{Quote(command.Args[0])}', with args beginning with: ");
        for (int i = 1; i < command.Count && text.Length < 512; i++) text.Append('\'').Append(Quote(command.Args[i])).Append("' ");
        return RespValue.Error(text.ToString());
    }

    /// <summary><c>ERR wrong number of arguments for 'get' command</c></summary>
    public static RespValue WrongArity(string lowerName) => RespValue.Error($"{ErrorCodes.Err} wrong number of arguments for '{lowerName}' command");

    /// <summary>A client's argument as an error reply may quote it, as Redis does: at most 128 bytes, without line breaks.</summary>
    public static string Quote(byte[] arg)
    {
        ArgumentNullException.ThrowIfNull(arg);
        string s = Encoding.UTF8.GetString(arg, 0, Math.Min(arg.Length, MaxEchoed));
        return s.Replace('\r', ' ').Replace('\n', ' ');
    }

    /// <summary>A client's text as an error reply may quote it: at most 128 bytes of its UTF-8 (see <see cref="Quote(byte[])"/>).</summary>
    public static string Quote(string text) => Quote(Encoding.UTF8.GetBytes(text ?? throw new ArgumentNullException(nameof(text))));
}
