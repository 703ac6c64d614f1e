using System.CommandLine;
using System.Globalization;
using System.Net;
using Tandem.Client;
using Tandem.Net;

namespace Tandem.Cli;

/// <summary>Option factories and value parsers shared by the commands.</summary>
internal static class CliParsers
{
    /// <summary>
    /// Adds <paramref name="error"/> when <paramref name="bad"/> holds for the option's value. A value that is not
    /// a number at all is left to the parser, which reports it (reading it here would throw).
    /// </summary>
    public static void Reject<T>(Option<T> option, Func<System.CommandLine.Parsing.OptionResult, bool> bad, string error) =>
        option.Validators.Add(r =>
        {
            if (r.Errors.Any()) return;
            bool rejected;
            try
            {
                rejected = bad(r);
            }
            catch (InvalidOperationException)
            {
                return; // not a value of T: the parse error says so
            }
            if (rejected) r.AddError(error);
        });

    /// <summary>A duration option (<c>500ms</c>, <c>2s</c>, <c>1m</c>); read it with <see cref="GetDuration"/>.</summary>
    public static Option<TimeSpan?> Duration(string name, TimeSpan defaultValue, string description, bool positive = true) => new(name)
    {
        // No DefaultValueFactory: help would show it as 00:00:10; the description says it instead.
        Description = $"{description} Default {DurationParser.Format(defaultValue)}.",
        HelpName = "DURATION",
        CustomParser = result =>
        {
            string text = result.Tokens.Single().Value;
            if (!DurationParser.TryParse(text, out TimeSpan value))
                result.AddError($"{name}: '{text}' is not a duration; use a number with a unit, such as 500ms, 2s or 1m");
            else if (positive && value <= TimeSpan.Zero)
                result.AddError($"{name} must be more than 0");
            return value;
        },
    };

    /// <summary>The value of a <see cref="Duration"/> option, or <paramref name="defaultValue"/> when it was not given.</summary>
    public static TimeSpan GetDuration(this ParseResult parse, Option<TimeSpan?> option, TimeSpan defaultValue) =>
        parse.GetValue(option) ?? defaultValue;

    /// <summary>An address to listen on: an IP literal or <c>localhost</c>, then a port (0 picks a free one).</summary>
    public static Option<IPEndPoint> Listen(string description) => new("--listen")
    {
        Description = description,
        HelpName = "HOST:PORT",
        Required = true,
        CustomParser = result =>
        {
            string text = result.Tokens.Single().Value;
            if (TryParseListen(text, out IPEndPoint? endPoint)) return endPoint;
            result.AddError($"--listen: '{text}' is not HOST:PORT (HOST an IP address or localhost, PORT 0-65535)");
            return null;
        },
    };

    /// <summary>A node to connect to: <c>HOST:PORT</c> with a host name or IP literal.</summary>
    public static Option<string> Remote(string name, string description, Func<string>? defaultValue = null)
    {
        var option = new Option<string>(name) { Description = description, HelpName = "HOST:PORT" };
        if (defaultValue is null) option.Required = true;
        else option.DefaultValueFactory = _ => defaultValue();
        option.Validators.Add(result =>
        {
            string? text = result.GetValueOrDefault<string>();
            if (!IsRemote(text)) result.AddError($"{name}: '{text}' is not HOST:PORT");
        });
        return option;
    }

    /// <summary>A list of nodes: <c>HOST:PORT[,HOST:PORT...]</c> (one address is a list of one).</summary>
    public static Option<string> RemoteList(string name, string description, Func<string>? defaultValue = null)
    {
        var option = new Option<string>(name) { Description = description, HelpName = "HOST:PORT[,HOST:PORT...]" };
        if (defaultValue is null) option.Required = true;
        else option.DefaultValueFactory = _ => defaultValue();
        option.Validators.Add(result =>
        {
            string? text = result.GetValueOrDefault<string>();
            try
            {
                CoordinatorMembers.Parse(text ?? "");
            }
            catch (FormatException e)
            {
                result.AddError($"{name}: {e.Message}");
            }
        });
        return option;
    }

    public static bool IsRemote(string? text) => RespClientConnection.IsEndPoint(text);

    public static bool TryParseListen(string text, out IPEndPoint? endPoint)
    {
        endPoint = null;
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !ushort.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ushort port))
            return false;
        string host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        IPAddress? address = host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback
            : host == "*" ? IPAddress.Any
            // IPAddress.TryParse also takes shorthands such as "1.2.3" or "123"; only full literals are meant here.
            : IPAddress.TryParse(host, out IPAddress? ip) && (host.Contains(':') || host.Count(c => c == '.') == 3) ? ip : null;
        if (address is null) return false;
        endPoint = new IPEndPoint(address, port);
        return true;
    }
}
