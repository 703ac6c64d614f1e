using System.Diagnostics;
using System.Globalization;
using Tandem.Fuzzing;

// Tandem.Fuzz: long fuzz runs of the RESP reader and of command dispatch (docs/fuzzing.md).
//   parser   [--inputs N] [--seed S] [--threads T] [--no-alloc-check] [--corpus DIR]
//   dispatch [--commands N] [--seed S] [--connections C] [--forge]
// Exit code 0 when no property broke, 1 when there were findings, 2 on bad arguments.

string mode = args.Length > 0 ? args[0] : "";
string? Opt(string name) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
bool Flag(string name) => args.Contains(name);
long Long(string name, long fallback) => Opt(name) is string v ? long.Parse(v.Replace("_", "", StringComparison.Ordinal), CultureInfo.InvariantCulture) : fallback;

switch (mode)
{
    case "parser":
        return RunParser(Long("--inputs", 10_000_000), (int)Long("--seed", 1), (int)Long("--threads", 1), !Flag("--no-alloc-check"), Opt("--corpus"));
    case "dispatch":
        DispatchFuzzReport report = await DispatchFuzzer.RunAsync(new DispatchFuzzOptions
        {
            Commands = Long("--commands", 10_000_000),
            Seed = (int)Long("--seed", 1),
            Connections = (int)Long("--connections", 5),
            Forge = Flag("--forge"),
            Progress = Console.WriteLine,
        });
        Console.WriteLine(report);
        Console.WriteLine($"peak working set  {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:0} MiB");
        return report.Findings.IsEmpty ? 0 : 1;
    default:
        Console.Error.WriteLine("usage: Tandem.Fuzz parser [--inputs N] [--seed S] [--threads T] [--no-alloc-check] [--corpus DIR]");
        Console.Error.WriteLine("       Tandem.Fuzz dispatch [--commands N] [--seed S] [--connections C] [--forge]");
        return 2;
}

static int RunParser(long inputs, int seed, int threads, bool checkAllocation, string? corpusFolder)
{
    List<byte[]> corpus = FuzzCorpus.Load(corpusFolder);
    Console.WriteLine($"parser fuzz: {inputs:N0} inputs, seed {seed}, {threads} thread(s), {corpus.Count} seed frames, allocation check {(checkAllocation ? "on" : "off")}");
    var clock = Stopwatch.StartNew();
    var findings = new System.Collections.Concurrent.ConcurrentDictionary<string, (long Count, string Example)>();
    long done = 0, frames = 0, errors = 0, incomplete = 0, bytes = 0;
    var workers = Enumerable.Range(0, threads).Select(t => Task.Run(() =>
    {
        var mutator = new RespMutator(seed + t, corpus);
        var fuzzer = new ParserFuzzer { CheckAllocation = checkAllocation };
        long mine = inputs / threads + (t < inputs % threads ? 1 : 0);
        for (long i = 0; i < mine; i++)
        {
            byte[] input = mutator.Next();
            Interlocked.Add(ref bytes, input.Length);
            string? finding = fuzzer.Check(input, mutator.Random);
            if (finding is not null)
            {
                // One bucket per kind of finding (the message without numbers), with its first reproduction.
                string kind = new string(finding.Where(c => !char.IsDigit(c)).ToArray());
                findings.AddOrUpdate(kind, _ => (1, $"{finding}\n    input {ParserFuzzer.Show(input)}"), (_, old) => (old.Count + 1, old.Example));
            }
            long n = Interlocked.Increment(ref done);
            if (n % 1_000_000 == 0)
                Console.WriteLine($"{clock.Elapsed.TotalSeconds,6:0} s  {n,12:N0} inputs  {n / clock.Elapsed.TotalSeconds,10:N0}/s  findings {findings.Values.Sum(f => f.Count)}  heap {GC.GetTotalMemory(false) / 1048576.0:0} MiB");
        }
        Interlocked.Add(ref frames, fuzzer.Frames);
        Interlocked.Add(ref errors, fuzzer.ProtocolErrors);
        Interlocked.Add(ref incomplete, fuzzer.Incomplete);
    })).ToArray();
    Task.WaitAll(workers);
    TimeSpan elapsed = clock.Elapsed;
    Console.WriteLine($"inputs            {done:N0} ({bytes / 1048576.0:0.0} MiB) in {elapsed.TotalSeconds:0.0} s ({done / elapsed.TotalSeconds:N0}/s)");
    Console.WriteLine($"outcomes (as commands and as values, default limits): {frames:N0} frames parsed, {errors:N0} parses ended in a protocol error, {incomplete:N0} waiting for more");
    Console.WriteLine($"peak working set  {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:0} MiB");
    Console.WriteLine($"findings          {findings.Values.Sum(f => f.Count):N0} in {findings.Count} kind(s)");
    foreach ((string _, (long count, string example)) in findings.OrderByDescending(f => f.Value.Count))
        Console.WriteLine($"  {count:N0} x {example}");
    return findings.IsEmpty ? 0 : 1;
}
