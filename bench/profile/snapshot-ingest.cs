// A new backup's side of a state transfer, with no network: snapshot ENTRIES chunks laid out as the primary
// sends them (at most 1,024 entries or 60 KiB each) are parsed with the server's RESP reader, 64 KiB of input at a
// time, and put into a store. Prints MB/s and the GC's share of the time, per round (round 0 is a fresh process,
// like a new backup; later rounds also collect the store before them, like a backup that still holds a state):
//   cd bench/profile && dotnet run -c Release snapshot-ingest.cs [KEYS]
// (-c Release builds the referenced projects in Release too; the property below only sets this file's own build)
// The GC settings tried in docs/benchmarks.md are environment variables of this process, for example
//   DOTNET_gcConcurrent=0 dotnet run -c Release snapshot-ingest.cs
#:project ../../src/Tandem.Storage/Tandem.Storage.csproj
#:project ../../src/Tandem.Protocol/Tandem.Protocol.csproj
#:property Configuration=Release
using System.Buffers;
using System.Diagnostics;
using System.Text;
using Tandem.Protocol;
using Tandem.Storage;

int keys = args.Length > 0 ? int.Parse(args[0]) : 1_900_000;
byte[] value = new byte[256];
Array.Fill(value, (byte)'x');

// The wire: what a primary holding `keys` keys of 16 B with 256-byte values sends after BEGIN.
var wire = new ArrayBufferWriter<byte>(keys * 300);
byte[][] entries = new byte[keys][];
for (int i = 0; i < keys; i++) entries[i] = KeyValueStore.MakeEntry(Encoding.ASCII.GetBytes($"key:{i:D12}"), value);
for (int start = 0; start < keys;)
{
    int stop = start;
    long size = 0;
    while (stop < keys && stop - start < 1024 && size < 60 * 1024) size += entries[stop++].Length;
    RespWriter.WriteArrayHeader(wire, 5 + (stop - start));
    RespWriter.WriteBulk(wire, "REPL.SNAPSHOT"u8);
    RespWriter.WriteBulk(wire, 2);
    RespWriter.WriteBulk(wire, "127.0.0.1:7001");
    RespWriter.WriteBulk(wire, "0123456789abcdef");
    RespWriter.WriteBulk(wire, "ENTRIES"u8);
    for (int i = start; i < stop; i++) RespWriter.WriteBulk(wire, entries[i]);
    start = stop;
}
byte[] bytes = wire.WrittenSpan.ToArray();
entries = [];
wire = null;
GC.Collect();
Console.WriteLine($"{keys:N0} keys, {bytes.Length / 1e6:N0} MB of ENTRIES chunks; GC: {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")}, "
    + $"latency mode {System.Runtime.GCSettings.LatencyMode} (Batch: not concurrent)");

KeyValueStore? previous = null;
for (int round = 0; round < 3; round++)
{
    var store = new KeyValueStore(keys);
    var state = new RespScanState();
    int gen0 = GC.CollectionCount(0), gen2 = GC.CollectionCount(2);
    TimeSpan paused = GC.GetTotalPauseDuration();
    var watch = Stopwatch.StartNew();
    int offset = 0, pending = 0;
    while (offset < bytes.Length)
    {
        int available = Math.Min(bytes.Length - offset, pending + 64 * 1024);
        var input = new ReadOnlySequence<byte>(bytes, offset, available);
        while (RespReader.TryReadCommand(ref input, RespLimits.Default, ref state, out RespCommand? command))
        {
            for (int i = 5; i < command!.Count; i++)
            {
                if (!KeyValueStore.IsEntry(command[i])) throw new InvalidDataException($"argument {i} is not an entry");
                store.Put(command[i]);
            }
        }
        int used = available - (int)input.Length;
        offset += used;
        pending = available - used;
    }
    watch.Stop();
    if (store.Count != keys) throw new InvalidDataException($"{store.Count} keys installed, not {keys}");
    double gcMs = (GC.GetTotalPauseDuration() - paused).TotalMilliseconds;
    Console.WriteLine($"round {round}: {watch.ElapsedMilliseconds:N0} ms, {bytes.Length / 1e6 / watch.Elapsed.TotalSeconds:N0} MB/s; "
        + $"GC paused {gcMs:N0} ms ({gcMs / watch.Elapsed.TotalMilliseconds:P0}), {GC.CollectionCount(0) - gen0} collections ({GC.CollectionCount(2) - gen2} of the old generation)");
    previous = store; // kept until the next round's store is built, as a backup keeps its state until END
}
GC.KeepAlive(previous);
