using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Tandem.Chaos;

/// <summary>
/// One <c>tandem coordinator</c> or <c>tandem server</c> child process. It can be killed with SIGKILL and started
/// again with the same arguments (an empty store, same ports), or paused with SIGSTOP and resumed with SIGCONT.
/// Its output goes to a log file, appended across restarts.
/// </summary>
internal sealed class NodeProcess : IDisposable
{
    private const int SigCont = 18, SigStop = 19;

    private readonly TandemCommand _command;
    private readonly string[] _arguments;
    private readonly StreamWriter _log;
    private readonly Lock _lock = new();
    private Process? _process;

    public NodeProcess(string name, TandemCommand command, string logPath, params string[] arguments)
    {
        Name = name;
        _command = command;
        _arguments = arguments;
        _log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
    }

    /// <summary>For logs: <c>coordinator</c>, <c>s1</c>, ...</summary>
    public string Name { get; }

    public bool IsRunning
    {
        get
        {
            lock (_lock) return _process is { HasExited: false };
        }
    }

    public bool IsPaused { get; private set; }

    /// <summary>When the process was last killed (<see cref="Stopwatch"/> timestamp; 0 if never).</summary>
    public long LastKilled { get; private set; }

    /// <summary>Time since the last kill; <see cref="TimeSpan.MaxValue"/> if never killed.</summary>
    public TimeSpan SinceKilled => LastKilled == 0 ? TimeSpan.MaxValue : Stopwatch.GetElapsedTime(LastKilled);

    public void Start()
    {
        var info = new ProcessStartInfo(_command.FileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in _command.Arguments) info.ArgumentList.Add(a);
        foreach (string a in _arguments) info.ArgumentList.Add(a);
        Process p = Process.Start(info) ?? throw new InvalidOperationException($"could not start {_command.FileName}");
        p.OutputDataReceived += (_, e) => Write(e.Data);
        p.ErrorDataReceived += (_, e) => Write(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        Write($"=== {DateTime.Now:HH:mm:ss.fff} started pid {p.Id}: {string.Join(' ', _arguments)}");
        lock (_lock)
        {
            _process = p;
            IsPaused = false;
        }
    }

    /// <summary>SIGKILL, no goodbye. Waits until the process is gone so its ports are free again.</summary>
    public void Kill()
    {
        LastKilled = Stopwatch.GetTimestamp();
        Process? p;
        lock (_lock)
        {
            p = _process;
            _process = null;
            IsPaused = false;
        }
        if (p is null) return;
        try
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        Write($"=== {DateTime.Now:HH:mm:ss.fff} killed");
        p.Dispose();
    }

    /// <summary>SIGSTOP: the process keeps its sockets but runs nothing.</summary>
    public bool Pause() => Signal(SigStop, paused: true);

    /// <summary>SIGCONT.</summary>
    public bool Resume() => Signal(SigCont, paused: false);

    private bool Signal(int signal, bool paused)
    {
        lock (_lock)
        {
            if (_process is not { HasExited: false } p) return false;
            if (kill(p.Id, signal) != 0) return false;
            IsPaused = paused;
            Write($"=== {DateTime.Now:HH:mm:ss.fff} {(paused ? "SIGSTOP" : "SIGCONT")}");
            return true;
        }
    }

    private void Write(string? line)
    {
        if (line is null) return;
        lock (_log)
        {
            try
            {
                _log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    public void Dispose()
    {
        Kill();
        lock (_log) _log.Dispose();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
