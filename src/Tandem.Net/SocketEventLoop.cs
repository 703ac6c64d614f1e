namespace Tandem.Net;

/// <summary>
/// How the runtime runs socket completions. On Linux its epoll threads hand each completed socket operation to the
/// thread pool by default, so every read of a request, and every acknowledgement from the backup, costs a thread
/// switch before any handler runs. Inline, the epoll thread runs the handler itself; with one epoll thread, a
/// request is read, applied, forwarded and answered on one thread, as in an event loop (docs/design.md, "Hot
/// path"). That is safe here because no handler blocks a thread: they take short locks only and wait
/// asynchronously.
/// </summary>
public static class SocketEventLoop
{
    /// <summary>The runtime's switch: <c>1</c> runs completions on the epoll threads.</summary>
    public const string InlineVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>The runtime's number of epoll threads (by default about one per two to four cores).</summary>
    public const string ThreadsVariable = "DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT";

    /// <summary>
    /// Runs socket completions inline on one epoll thread, in this process and the processes it starts, unless the
    /// operator set either variable already (their value wins). The runtime reads them once, when the first socket
    /// is made, so this must run before that: first thing in <c>Main</c>.
    /// </summary>
    public static void Enable()
    {
        if (Environment.GetEnvironmentVariable(InlineVariable) is null) Environment.SetEnvironmentVariable(InlineVariable, "1");
        if (Environment.GetEnvironmentVariable(ThreadsVariable) is null) Environment.SetEnvironmentVariable(ThreadsVariable, "1");
    }
}
