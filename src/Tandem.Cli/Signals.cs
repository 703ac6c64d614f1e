using System.Runtime.InteropServices;

namespace Tandem.Cli;

/// <summary>Waits for SIGINT or SIGTERM, so a node can stop cleanly instead of being killed.</summary>
internal static class Signals
{
    /// <summary>Completes on the first SIGINT/SIGTERM (or when <paramref name="cancellationToken"/> fires). A second signal kills the process.</summary>
    public static async Task WaitForShutdownAsync(CancellationToken cancellationToken)
    {
        var signalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            signalled.TrySetResult();
        }
        using (PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal))
        using (PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal))
        using (cancellationToken.Register(() => signalled.TrySetResult()))
        {
            await signalled.Task;
        }
    }
}
