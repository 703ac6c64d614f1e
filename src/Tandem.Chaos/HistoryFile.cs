using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using Tandem.Checker;

namespace Tandem.Chaos;

/// <summary>
/// A history on disk: gzip-compressed JSON, one operation per line, in call order. A Get output that is a prefix of
/// its key's final value (every correct read of an append-only key) is stored as that prefix's length, which keeps
/// the files small; <see cref="ReadAsync"/> restores the full strings.
/// </summary>
internal static class HistoryFile
{
    internal sealed record Line(
        [property: JsonPropertyName("process")] int Process,
        [property: JsonPropertyName("kind")] OpKind Kind,
        [property: JsonPropertyName("key")] string Key,
        [property: JsonPropertyName("input")] string Input,
        [property: JsonPropertyName("output")] string? Output,
        [property: JsonPropertyName("outputPrefixOfFinal")] int? Prefix,
        [property: JsonPropertyName("call")] long Call,
        [property: JsonPropertyName("return")] long Return,
        [property: JsonPropertyName("outcome")] Outcome Outcome,
        [property: JsonPropertyName("options")] string? Options = null);

    internal sealed record Final([property: JsonPropertyName("final")] string Key, [property: JsonPropertyName("value")] string Value);

    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() }, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public static async Task WriteAsync(string path, IEnumerable<HistoryOp> ops, IReadOnlyDictionary<string, string> finals, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
        await using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        await using var writer = new StreamWriter(gzip);
        foreach ((string key, string value) in finals) await writer.WriteLineAsync(JsonSerializer.Serialize(new Final(key, value), Json).AsMemory(), ct);
        foreach (HistoryOp op in ops.OrderBy(o => o.Call))
        {
            int? prefix = null;
            string? output = op.Output;
            if (op.Kind == OpKind.Get && output is { Length: > 64 } && finals.TryGetValue(op.Key, out string? final) && final.StartsWith(output, StringComparison.Ordinal))
            {
                prefix = output.Length;
                output = null;
            }
            var line = new Line(op.Process, op.Kind, op.Key, op.Input, output, prefix, op.Call, op.Return, op.Outcome, op.Options == "" ? null : op.Options);
            await writer.WriteLineAsync(JsonSerializer.Serialize(line, Json).AsMemory(), ct);
        }
    }

    public static async Task<List<HistoryOp>> ReadAsync(string path, CancellationToken ct)
    {
        var finals = new Dictionary<string, string>(StringComparer.Ordinal);
        var ops = new List<HistoryOp>();
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        await using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new StreamReader(gzip);
        while (await reader.ReadLineAsync(ct) is { } text)
        {
            if (text.StartsWith("{\"final\"", StringComparison.Ordinal))
            {
                Final f = JsonSerializer.Deserialize<Final>(text, Json)!;
                finals[f.Key] = f.Value;
                continue;
            }
            Line l = JsonSerializer.Deserialize<Line>(text, Json)!;
            string? output = l.Prefix is int n ? finals[l.Key][..n] : l.Output;
            ops.Add(new HistoryOp(l.Process, l.Kind, l.Key, l.Input, output, l.Call, l.Return, l.Outcome, l.Options ?? ""));
        }
        return ops;
    }
}
