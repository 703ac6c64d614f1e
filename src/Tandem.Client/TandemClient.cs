using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Tandem.Net;
using Tandem.Protocol;

namespace Tandem.Client;

/// <summary>
/// A client of a Tandem cluster. It finds the primary through the coordinator, caches it, and retries every call
/// (on another server if the view changed) until it succeeds, so each call takes effect exactly once: writes are
/// sent as <c>XREQ</c> requests whose number a retry reuses, under a client id the servers issue (<c>XCLIENT</c>)
/// before the first write. Safe for many concurrent calls, which share one pipelined connection per server.
/// </summary>
public sealed class TandemClient : IAsyncDisposable
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(5);

    private static readonly byte[][] RegisterCommand = [Encoding.ASCII.GetBytes(Commands.Register)];

    private readonly CancellationTokenSource _disposed = new();
    private readonly Dictionary<string, Task<RespClientConnection>> _connections = new();
    private readonly Lock _viewLock = new();
    private Task<View>? _viewFetch;
    private string? _primary;
    private readonly Lock _sessionLock = new();
    private Task<Session>? _session;

    /// <summary>Creates a client; it connects lazily, on the first call.</summary>
    public TandemClient(TandemClientOptions? options = null) => Options = options ?? new TandemClientOptions();

    /// <summary>The settings.</summary>
    public TandemClientOptions Options { get; }

    /// <summary>
    /// This client's identity in the servers' duplicate tables: 0 until the first write, which first asks the
    /// cluster for an id (<c>XCLIENT</c>). When the servers have dropped the session it is 0 again until the next
    /// write registers a new (higher) id.
    /// </summary>
    public long ClientId => Volatile.Read(ref _session) is { IsCompletedSuccessfully: true } s ? s.Result.Id : 0;

    /// <summary>Reads <paramref name="key"/>; returns <c>""</c> when it was never set.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    public async Task<string> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        RespValue reply = await ExecuteAsync([Commands.Get, key], exactlyOnce: false, cancellationToken);
        return Expect(reply, RespKind.BulkString).Text;
    }

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/>, exactly once.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task PutAsync(string key, string value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        Expect(await ExecuteAsync([Commands.Set, key, value], exactlyOnce: true, cancellationToken), RespKind.SimpleString);
    }

    /// <summary>
    /// Replaces the value of <paramref name="key"/> by the decimal FNV-1a hash of <c>old + value</c>, exactly once,
    /// and returns the old value (<c>""</c> when unset).
    /// </summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task<string> PutHashAsync(string key, string value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        RespValue reply = await ExecuteAsync([Commands.PutHash, key, value], exactlyOnce: true, cancellationToken);
        return Expect(reply, RespKind.BulkString).Text;
    }

    /// <summary>Appends <paramref name="value"/> to the value of <paramref name="key"/>, exactly once; returns the new length in bytes.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task<long> AppendAsync(string key, string value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        RespValue reply = await ExecuteAsync([Commands.Append, key, value], exactlyOnce: true, cancellationToken);
        return Expect(reply, RespKind.Integer).Integer;
    }

    /// <summary>Deletes <paramref name="key"/>, exactly once; returns whether it existed.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public async Task<bool> DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        RespValue reply = await ExecuteAsync([Commands.Del, key], exactlyOnce: true, cancellationToken);
        return Expect(reply, RespKind.Integer).Integer != 0;
    }

    /// <summary>Asks the coordinator for the current view (retrying until it answers).</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    public Task<View> GetViewAsync(CancellationToken cancellationToken = default) =>
        RetryAsync(async token => View.FromResp(await AskCoordinatorAsync(Commands.VsView, token)), cancellationToken);

    /// <summary>
    /// Asks the coordinator for its status: one JSON object with the view, whether the primary acknowledged it,
    /// and every known server (the reply to <c>VS.STATUS</c>, unchanged).
    /// </summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    public Task<string> GetStatusJsonAsync(CancellationToken cancellationToken = default) =>
        RetryAsync(async token => Expect(await AskCoordinatorAsync(Commands.VsStatus, token), RespKind.BulkString).Text,
            cancellationToken);

    private async Task<RespValue> ExecuteAsync(string[] command, bool exactlyOnce, CancellationToken cancellationToken)
    {
        byte[][] args = Array.ConvertAll(command, Encoding.UTF8.GetBytes);
        if (!exactlyOnce) return await RetryAsync(token => SendToPrimaryAsync(args, null, token), cancellationToken);
        var write = new PendingWrite();
        try
        {
            return await RetryAsync(token => SendWriteAsync(args, write, token), cancellationToken);
        }
        finally
        {
            // Given up or answered: either way this number is never sent again, so the server may drop its reply.
            write.Finish();
        }
    }

    private async Task<RespValue> SendWriteAsync(byte[][] args, PendingWrite write, CancellationToken token)
    {
        if (write.Session is null)
        {
            Session session = await CurrentSessionAsync().WaitAsync(token);
            write.Start(session);
        }
        try
        {
            return await SendToPrimaryAsync(args, write, token);
        }
        catch (TandemException e) when (e.Code == ErrorCodes.NoSession)
        {
            Forget(write.Session!);
            if (write.MayHaveApplied)
                throw new TandemSessionExpiredException($"the outcome of this write is unknown: an earlier attempt may have taken effect; {e.Message}");
            // No attempt can have been applied: the same write under a new id and number is still exactly once.
            write.Finish();
            throw new RetryableException($"registering a new client id: {e.Message}");
        }
    }

    /// <summary>The current session, registering one first if there is none.</summary>
    private Task<Session> CurrentSessionAsync()
    {
        lock (_sessionLock)
        {
            // Concurrent writes share one registration; a failed one is tried again by the next write.
            if (_session is null || _session.IsFaulted || _session.IsCanceled) _session = Observed(RegisterAsync());
            return _session;
        }
    }

    /// <summary>The servers dropped <paramref name="expired"/>: the next write registers a new id.</summary>
    private void Forget(Session expired)
    {
        lock (_sessionLock)
        {
            if (_session is { IsCompletedSuccessfully: true } current && current.Result == expired) _session = null;
        }
    }

    private async Task<Session> RegisterAsync()
    {
        // A lost reply just wastes an id: the retry gets another one.
        RespValue reply = await RetryAsync(token => SendToPrimaryAsync(RegisterCommand, null, token), CancellationToken.None);
        long id = Expect(reply, RespKind.Integer).Integer;
        if (id <= 0) throw new TandemException(ErrorCodes.Err, $"the server issued the client id {id}");
        return new Session(id);
    }

    private async Task<RespValue> SendToPrimaryAsync(byte[][] args, PendingWrite? write, CancellationToken token)
    {
        string primary = Volatile.Read(ref _primary) ?? await FindPrimaryAsync(token);
        try
        {
            RespClientConnection connection = await ConnectAsync(primary, token);
            byte[][] frame = write is null ? args : write.Frame(args);
            bool mayHaveApplied = write?.MayHaveApplied ?? false;
            if (write is not null) write.MayHaveApplied = true; // from here the request may reach the server
            RespValue reply = await connection.SendAsync(frame, token);
            if (!reply.IsError) return reply;
            // These replies promise that this attempt was not applied.
            if (write is not null && reply.ErrorCode is ErrorCodes.NotPrimary or ErrorCodes.NoSession or ErrorCodes.Err)
                write.MayHaveApplied = mayHaveApplied;
            if (!ErrorCodes.IsRetryable(reply.ErrorCode)) throw new TandemException(reply.ErrorCode, reply.Text);
            throw new RetryableException($"waiting for primary {primary}: it answered {reply.Text}");
        }
        catch (Exception e) when (e is not TandemException)
        {
            Interlocked.CompareExchange(ref _primary, null, primary);
            if (e is RetryableException || !IsTransient(e)) throw;
            throw new RetryableException($"waiting for primary {primary}: {Describe(e, token)}", e);
        }
    }

    private async Task<string> FindPrimaryAsync(CancellationToken token)
    {
        Task<View> fetch;
        lock (_viewLock)
        {
            // Concurrent calls that all lost the primary share one question to the coordinator.
            if (_viewFetch is not { IsCompleted: false }) _viewFetch = Observed(FetchViewAsync());
            fetch = _viewFetch;
        }
        View view = await fetch.WaitAsync(token);
        if (view.Primary == "") throw new RetryableException($"waiting for a primary (coordinator {Options.Coordinator})");
        Volatile.Write(ref _primary, view.Primary);
        return view.Primary;
    }

    private async Task<View> FetchViewAsync()
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(_disposed.Token);
        attempt.CancelAfter(Options.AttemptTimeout);
        return View.FromResp(await AskCoordinatorAsync(Commands.VsView, attempt.Token));
    }

    private async Task<RespValue> AskCoordinatorAsync(string command, CancellationToken token)
    {
        try
        {
            RespClientConnection connection = await ConnectAsync(Options.Coordinator, token);
            RespValue reply = await connection.SendAsync(token, command);
            if (reply.IsError) throw new TandemException(reply.ErrorCode, $"coordinator {Options.Coordinator}: {reply.Text}");
            return reply;
        }
        catch (Exception e) when (IsTransient(e) && e is not RetryableException)
        {
            throw new RetryableException($"waiting for the coordinator {Options.Coordinator}: {Describe(e, token)}", e);
        }
    }

    private async Task<RespClientConnection> ConnectAsync(string address, CancellationToken token)
    {
        Task<RespClientConnection>? open;
        lock (_connections)
        {
            ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
            if (!_connections.TryGetValue(address, out open) || open.IsFaulted || open.IsCanceled
                || open.IsCompletedSuccessfully && open.Result.IsBroken)
            {
                open = Observed(OpenAsync(address));
                _connections[address] = open;
            }
        }
        return await open.WaitAsync(token);
    }

    private async Task<RespClientConnection> OpenAsync(string address)
    {
        // Shared by every caller, so bounded by the client's own timeout rather than one caller's token.
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(_disposed.Token);
        attempt.CancelAfter(Options.AttemptTimeout);
        return await RespClientConnection.ConnectAsync(address, attempt.Token, Options.ReplyLimits);
    }

    /// <summary>Runs <paramref name="attempt"/> until it succeeds, backing off between tries, each bounded by the attempt timeout.</summary>
    private async Task<T> RetryAsync<T>(Func<CancellationToken, Task<T>> attempt, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        using var operation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
        if (Options.OperationTimeout is { } total) operation.CancelAfter(total);
        string lastFailure = "waiting for a reply";
        for (int failures = 0; ; failures++)
        {
            using (var once = CancellationTokenSource.CreateLinkedTokenSource(operation.Token))
            {
                once.CancelAfter(Options.AttemptTimeout);
                try
                {
                    return await attempt(once.Token);
                }
                catch (Exception e) when (IsTransient(e))
                {
                    if (e is RetryableException) lastFailure = e.Message;
                }
            }
            if (!operation.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(Backoff(failures), operation.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
            if (operation.IsCancellationRequested)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
                throw new TimeoutException($"timed out after {DurationParser.Format(Options.OperationTimeout!.Value)} {lastFailure}");
            }
        }
    }

    private TimeSpan Backoff(int failures)
    {
        double ceiling = Math.Min(Options.MaxBackoff.TotalMilliseconds, MinBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(failures, 30)));
        return TimeSpan.FromMilliseconds(ceiling / 2 + Random.Shared.NextDouble() * ceiling / 2);
    }

    /// <summary>Callers may stop waiting for a shared task; this keeps its failure from going unobserved.</summary>
    private static Task<T> Observed<T>(Task<T> task)
    {
        task.ContinueWith(t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        return task;
    }

    private static bool IsTransient(Exception e) =>
        e is IOException or SocketException or OperationCanceledException or RespProtocolException or RetryableException;

    private static string Describe(Exception e, CancellationToken token) =>
        e is OperationCanceledException && token.IsCancellationRequested ? "no reply" : e.Message;

    private static RespValue Expect(RespValue reply, RespKind kind) =>
        reply.Kind == kind ? reply : throw new TandemException(ErrorCodes.Err, $"unexpected reply {reply}");

    private static byte[] Ascii(long n) => Encoding.ASCII.GetBytes(n.ToString(CultureInfo.InvariantCulture));

    /// <summary>Stops every call in progress (they throw <see cref="ObjectDisposedException"/>) and closes all connections.</summary>
    public async ValueTask DisposeAsync()
    {
        Task<RespClientConnection>[] open;
        lock (_connections)
        {
            if (_disposed.IsCancellationRequested) return;
            _disposed.Cancel();
            open = [.. _connections.Values];
            _connections.Clear();
        }
        foreach (Task<RespClientConnection> task in open)
        {
            try
            {
                await (await task).DisposeAsync();
            }
            catch (Exception e) when (IsTransient(e))
            {
            }
        }
    }

    /// <summary>A client id the servers issued, and the numbering of the requests sent under it.</summary>
    private sealed class Session(long id)
    {
        public long Id { get; } = id;
        public RequestWindow Window { get; } = new();
    }

    /// <summary>One exactly-once write across its attempts. Used by one call at a time (attempts are sequential).</summary>
    private sealed class PendingWrite
    {
        public Session? Session { get; private set; }
        public long Seq { get; private set; }

        /// <summary>False while every attempt so far was never sent or got a reply that promises it was not applied.</summary>
        public bool MayHaveApplied { get; set; }

        public void Start(Session session)
        {
            Session = session;
            Seq = session.Window.Begin();
        }

        public byte[][] Frame(byte[][] args)
        {
            Session s = Session!;
            var frame = new byte[args.Length + 4][];
            frame[0] = Encoding.ASCII.GetBytes(Commands.ExactlyOnce);
            frame[1] = Ascii(s.Id);
            frame[2] = Ascii(Seq);
            frame[3] = Ascii(s.Window.AckedThrough);
            args.CopyTo(frame, 4);
            return frame;
        }

        public void Finish()
        {
            Session?.Window.Complete(Seq);
            Session = null;
        }
    }

    /// <summary>A failure worth retrying; its message says what the call was waiting for, for the timeout message.</summary>
    private sealed class RetryableException(string message, Exception? inner = null) : Exception(message, inner);
}
