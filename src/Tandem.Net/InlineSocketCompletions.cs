namespace Tandem.Net;

/// <summary>
/// Where socket completions run. On Linux the runtime's epoll thread hands each completed socket operation to the
/// thread pool by default, so every read of a request, and every acknowledgement from the backup, costs a thread
/// switch before any handler runs. Inline, the epoll thread runs the handler itself: a request is read, applied,
/// forwarded and answered on one thread, as an event loop would (docs/design.md, "Hot path"). That is safe here
/// because no handler blocks a thread: they take short locks only and wait asynchronously.
/// </summary>
public static class InlineSocketCompletions
{
    /// <summary>The runtime's switch: <c>1</c> runs completions on the epoll thread.</summary>
    public const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// Turns inline completions on for this process and the processes it starts, unless <see cref="Variable"/> is
    /// set already (an operator's <c>0</c> wins). The runtime reads the variable once, when the first socket is
    /// made, so this must run before that: first thing in <c>Main</c>.
    /// </summary>
    public static void Enable()
    {
        if (Environment.GetEnvironmentVariable(Variable) is null) Environment.SetEnvironmentVariable(Variable, "1");
    }
}
