namespace Tandem.Protocol;

/// <summary>
/// A command's arguments written as Redis documents them, turned into the argument list of <c>COMMAND DOCS</c>.
/// The syntax: words separated by spaces; an UPPER-CASE word is a token (alone a flag such as <c>NX</c>, before a
/// lower-case word the token of that argument, as in <c>EX seconds</c>); a lower-case word is an argument
/// (<c>key</c> is a key, <c>pattern</c> a pattern, names ending in <c>-time-*</c> a time, <c>float</c> a
/// double, a known number name such as <c>seconds</c> or <c>offset</c> an integer, anything else a string;
/// <c>name:type</c> gives the type outright);
/// <c>[a | b]</c> is optional, with alternatives; <c>(a b)</c> groups arguments into one; a trailing
/// <c>...</c> repeats the item before it.
/// </summary>
public static class CommandSyntax
{
    private static readonly HashSet<string> Integers =
    [
        "seconds", "milliseconds", "offset", "start", "end", "count", "increment", "decrement", "numreplicas",
        "timeout", "cursor", "bit", "len", "destination-db", "index", "value-bit",
    ];

    /// <summary>One argument of a command, as <c>COMMAND DOCS</c> describes it.</summary>
    public sealed record Argument(string Name, string Type, string? Token, bool Optional, bool Multiple, IReadOnlyList<Argument> Arguments);

    /// <summary>Parses <paramref name="syntax"/>.</summary>
    /// <exception cref="FormatException">The syntax is malformed.</exception>
    public static IReadOnlyList<Argument> Parse(string syntax)
    {
        ArgumentNullException.ThrowIfNull(syntax);
        List<string> words = Tokenize(syntax);
        int at = 0;
        List<Argument> args = Sequence(words, ref at);
        if (at != words.Count) throw new FormatException($"unexpected '{words[at]}' in '{syntax}'");
        return args;
    }

    /// <summary>The arguments as the maps of <c>COMMAND DOCS</c> (name, type, token, flags, arguments).</summary>
    public static RespValue ToDocs(IReadOnlyList<Argument> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        return RespValue.Array([.. args.Select(Doc)]);
    }

    private static RespValue Doc(Argument a)
    {
        var fields = new List<RespValue> { RespValue.Bulk("name"), RespValue.Bulk(a.Name), RespValue.Bulk("type"), RespValue.Bulk(a.Type) };
        if (a.Token is not null)
        {
            fields.Add(RespValue.Bulk("token"));
            fields.Add(RespValue.Bulk(a.Token));
        }
        var flags = new List<RespValue>();
        if (a.Optional) flags.Add(RespValue.Simple("optional"));
        if (a.Multiple) flags.Add(RespValue.Simple("multiple"));
        if (flags.Count > 0)
        {
            fields.Add(RespValue.Bulk("flags"));
            fields.Add(RespValue.Set([.. flags]));
        }
        if (a.Arguments.Count > 0)
        {
            fields.Add(RespValue.Bulk("arguments"));
            fields.Add(ToDocs(a.Arguments));
        }
        return RespValue.Map([.. fields]);
    }

    private static List<string> Tokenize(string syntax)
    {
        var words = new List<string>();
        foreach (string raw in syntax.Replace("[", " [ ").Replace("]", " ] ").Replace("(", " ( ").Replace(")", " ) ").Replace("|", " | ")
                     .Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (raw.Length > 3 && raw.EndsWith("...", StringComparison.Ordinal))
            {
                words.Add(raw[..^3]);
                words.Add("...");
            }
            else words.Add(raw);
        }
        return words;
    }

    // Items up to a closing bracket, a bar or the end.
    private static List<Argument> Sequence(List<string> words, ref int at)
    {
        var items = new List<Argument>();
        while (at < words.Count && words[at] is not ("]" or ")" or "|"))
        {
            Argument item = Item(words, ref at);
            if (at < words.Count && words[at] == "...")
            {
                item = item with { Multiple = true };
                at++;
            }
            items.Add(item);
        }
        return items;
    }

    private static Argument Item(List<string> words, ref int at)
    {
        string word = words[at++];
        if (word is "[" or "(")
        {
            string close = word == "[" ? "]" : ")";
            var alternatives = new List<List<Argument>> { Sequence(words, ref at) };
            while (at < words.Count && words[at] == "|")
            {
                at++;
                alternatives.Add(Sequence(words, ref at));
            }
            if (at >= words.Count || words[at] != close) throw new FormatException($"'{word}' is not closed");
            at++;
            bool optional = word == "[";
            if (alternatives.Count > 1)
                return new Argument(NameOf(alternatives), "oneof", null, optional, false, [.. alternatives.Select(Block)]);
            Argument one = Block(alternatives[0]);
            return one with { Optional = optional };
        }
        if (word == "...") throw new FormatException("'...' after nothing");
        if (IsToken(word))
        {
            // A token before an argument names that argument's token (EX seconds); alone it is a flag (NX).
            if (at < words.Count && !IsToken(words[at]) && words[at] is not ("[" or "(" or "]" or ")" or "|" or "..."))
                return Plain(words[at++]) with { Token = word };
            return new Argument(word.ToLowerInvariant(), "pure-token", word, false, false, []);
        }
        return Plain(word);
    }

    private static Argument Block(List<Argument> items) => items.Count switch
    {
        0 => throw new FormatException("an empty group"),
        1 => items[0],
        _ => new Argument(string.Join('-', items.Select(i => i.Name)), "block", null, false, false, items),
    };

    private static string NameOf(List<List<Argument>> alternatives) =>
        alternatives.All(a => a.Count == 1 && a[0].Type == "pure-token") ? "condition" : "option";

    private static Argument Plain(string word)
    {
        // name:type gives the type outright (increment:double).
        int colon = word.IndexOf(':', StringComparison.Ordinal);
        string name = colon < 0 ? word : word[..colon];
        string type = colon >= 0 ? word[(colon + 1)..] : name switch
        {
            "key" or "source" or "destination" or "newkey" or "key1" or "key2" => "key",
            "pattern" => "pattern",
            "float" => "double",
            _ when name.Contains("-time-", StringComparison.Ordinal) => "unix-time",
            _ when Integers.Contains(name) => "integer",
            _ => "string",
        };
        return new Argument(name, type, null, false, false, []);
    }

    private static bool IsToken(string word) => word.Any(char.IsLetter) && word.All(c => !char.IsLetter(c) || char.IsUpper(c));
}
