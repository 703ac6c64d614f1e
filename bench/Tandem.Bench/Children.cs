using System.ComponentModel;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Tandem.Bench;

/// <summary>An error the harness explains in one line (a missing tool, a step that timed out).</summary>
internal sealed class BenchException(string message) : Exception(message);

/// <summary>
/// Every process the harness starts, so that all of them are killed on exit, on Ctrl-C, on SIGTERM and on an
/// exception. Their PIDs also go to <c>$TANDEM_BENCH_PIDFILE</c> (set by bench/run.sh), whose trap kills what is
/// left if the harness itself is killed with SIGKILL.
/// </summary>
internal static class Children
{
    private static readonly Lock Gate = new();
    private static readonly List<Process> All = [];
    private static readonly string? PidFile = Environment.GetEnvironmentVariable("TANDEM_BENCH_PIDFILE");
    private static readonly List<PosixSignalRegistration> Signals = [];

    public static string LogDirectory { get; set; } = Path.GetTempPath();

    private static volatile bool _stopping;

    public static void InstallExitHandlers()
    {
        if (PidFile is not null)
        {
            try { File.AppendAllText(PidFile, $"{Environment.ProcessId}\n"); } catch (IOException) { }
        }
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        foreach (PosixSignal signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT })
        {
            Signals.Add(PosixSignalRegistration.Create(signal, context =>
            {
                Console.Error.WriteLine($"bench: {context.Signal}: stopping every process it started");
                _stopping = true;
                KillAll();
                context.Cancel = false; // then terminate as the signal would
            }));
        }
    }

    /// <summary>Starts a long-running process; its stdout and stderr go to LOGDIR/<paramref name="name"/>.log.</summary>
    public static Process Start(string name, string file, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = LogDirectory,
        };
        foreach (string a in args) info.ArgumentList.Add(a);
        Process p = StartRegistered(info);
        var log = new StreamWriter(Path.Combine(LogDirectory, $"{name}.log"), append: true) { AutoFlush = true };
        log.WriteLine($"# {file} {string.Join(' ', info.ArgumentList)}  (pid {p.Id})");
        void Write(object _, DataReceivedEventArgs e)
        {
            if (e.Data is null) return;
            lock (log) log.WriteLine(e.Data);
        }
        p.OutputDataReceived += Write;
        p.ErrorDataReceived += Write;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>Runs a tool to its end (killed after <paramref name="timeout"/>); returns its exit code and output.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(string file, IEnumerable<string> args, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args) info.ArgumentList.Add(a);
        using Process p = StartRegistered(info);
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            Kill(p);
            throw new BenchException($"{file} {string.Join(' ', info.ArgumentList)} did not finish within {timeout.TotalSeconds:0} s (killed)");
        }
        p.WaitForExit();
        lock (Gate) All.Remove(p);
        return (p.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
    }

    private static Process StartRegistered(ProcessStartInfo info)
    {
        if (_stopping) throw new BenchException("stopping");
        Process p;
        try
        {
            p = Process.Start(info) ?? throw new BenchException($"could not start {info.FileName}");
        }
        catch (Win32Exception e)
        {
            throw new BenchException($"could not start {info.FileName}: {e.Message} (is it installed and on PATH? bench/run.sh installs what it needs)");
        }
        lock (Gate)
        {
            if (_stopping)
            {
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                throw new BenchException("stopping");
            }
            All.Add(p);
            if (PidFile is not null)
            {
                try { File.AppendAllText(PidFile, $"{p.Id}\n"); } catch (IOException) { }
            }
        }
        return p;
    }

    /// <summary>SIGKILL, and wait for the process to be gone.</summary>
    public static void Kill(Process p)
    {
        try
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
            p.WaitForExit(10_000);
        }
        catch (Exception e) when (e is InvalidOperationException or Win32Exception or NotSupportedException) { }
        lock (Gate) All.Remove(p);
    }

    public static void KillAll()
    {
        Process[] all;
        lock (Gate)
        {
            _stopping = true;
            all = [.. All];
        }
        foreach (Process p in all) Kill(p);
    }

    /// <summary>Resident memory of a process in bytes (VmRSS in /proc/PID/status).</summary>
    public static long Rss(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        throw new BenchException($"no VmRSS for pid {pid}");
    }

    /// <summary>Ports free now on 127.0.0.1 (each bound to port 0 at the same time, then released).</summary>
    public static int[] FreePorts(int n)
    {
        var listeners = Enumerable.Range(0, n).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            listeners.ForEach(l => l.Start());
            return [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
        }
        finally
        {
            listeners.ForEach(l => l.Stop());
        }
    }

    public static int FreePort() => FreePorts(1)[0];
}
