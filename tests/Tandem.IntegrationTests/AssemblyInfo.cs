// The scenarios measure failure detection in real time; running them one at a time keeps a loaded
// 2-core machine from starving heartbeats and turning a slow test into a false failure.
[assembly: Xunit.v3.Parallelization(Mode = Xunit.Sdk.ParallelMode.None)]

namespace Tandem.IntegrationTests
{
    internal static class SocketSetup
    {
        /// <summary>
        /// The in-process servers run their socket completions inline, as the <c>tandem</c> binary does; on the
        /// runtime's epoll threads, not one: here one process holds every node of a cluster, and the test clients.
        /// </summary>
        [System.Runtime.CompilerServices.ModuleInitializer]
        internal static void UseTheServersThreading() => Tandem.Net.SocketEventLoop.Enable(threads: null);
    }
}
