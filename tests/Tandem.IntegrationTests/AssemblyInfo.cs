// The scenarios measure failure detection in real time; running them one at a time keeps a loaded
// 2-core machine from starving heartbeats and turning a slow test into a false failure.
[assembly: Xunit.v3.Parallelization(Mode = Xunit.Sdk.ParallelMode.None)]

namespace Tandem.IntegrationTests
{
    internal static class SocketSetup
    {
        /// <summary>The in-process servers run with the socket threading the <c>tandem</c> binary uses (inline completions).</summary>
        [System.Runtime.CompilerServices.ModuleInitializer]
        internal static void UseTheServersThreading() => Tandem.Net.InlineSocketCompletions.Enable();
    }
}
