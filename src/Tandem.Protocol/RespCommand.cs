using System.Text;

namespace Tandem.Protocol;

/// <summary>One client command: an array of binary-safe arguments, the first being the command name.</summary>
public sealed class RespCommand(byte[][] args)
{
    /// <summary>All arguments, including the command name at index 0.</summary>
    public byte[][] Args { get; } = args;

    /// <summary>Number of arguments including the command name.</summary>
    public int Count => Args.Length;

    /// <summary>Argument <paramref name="i"/> as raw bytes.</summary>
    public byte[] this[int i] => Args[i];

    /// <summary>The command name in upper case (ASCII).</summary>
    public string Name => Args.Length == 0 ? "" : Encoding.ASCII.GetString(Args[0]).ToUpperInvariant();

    /// <summary>Argument <paramref name="i"/> decoded as UTF-8.</summary>
    public string Text(int i) => Encoding.UTF8.GetString(Args[i]);

    /// <summary>Argument <paramref name="i"/> parsed as a signed 64-bit decimal, or false.</summary>
    public bool TryLong(int i, out long value) =>
        System.Buffers.Text.Utf8Parser.TryParse(Args[i], out value, out int used) && used == Args[i].Length;

    /// <summary>Builds a command from text arguments (UTF-8).</summary>
    public static RespCommand From(params string[] args) =>
        new(Array.ConvertAll(args, a => Encoding.UTF8.GetBytes(a)));

    /// <inheritdoc />
    public override string ToString() => string.Join(' ', Args.Select(a => Encoding.UTF8.GetString(a)));
}
