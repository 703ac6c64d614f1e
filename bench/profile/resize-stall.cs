// The longest single write into the store while it grows to 4M keys of 256 B (a resize that moved the whole
// table at once stopped one write for most of a second at 3M keys):
//   cd bench/profile && dotnet run -c Release resize-stall.cs
// (-c Release: without it the store project it references is built in Debug)
#:project ../../src/Tandem.Storage/Tandem.Storage.csproj
#:property Configuration=Release
using System.Diagnostics;
using Tandem.Storage;

var store = new KeyValueStore();
var value = new byte[256];
var watch = new Stopwatch();
double worst = 0;
int worstAt = 0;
for (int i = 0; i < 4_000_000; i++)
{
    byte[] key = System.Text.Encoding.ASCII.GetBytes($"key:{i:D12}");
    watch.Restart();
    store.Set(key, value);
    double ms = watch.Elapsed.TotalMilliseconds;
    if (ms >= 50) Console.WriteLine($"write {i}: {ms:F0} ms");
    if (ms > worst) (worst, worstAt) = (ms, i);
}
Console.WriteLine($"longest write {worst:F0} ms (write {worstAt}); gen2 collections {GC.CollectionCount(2)}");
