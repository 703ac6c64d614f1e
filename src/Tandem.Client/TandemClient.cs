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
public sealed partial class TandemClient : IAsyncDisposable
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(5);

    private static readonly byte[][] RegisterCommand = [Encoding.ASCII.GetBytes(Commands.Register)];

    private readonly CancellationTokenSource _disposed = new();
    private readonly Dictionary<string, Task<RespClientConnection>> _connections = new();
    private readonly Lock _viewLock = new();
    private readonly CoordinatorMembers _coordinators;
    private Task<View>? _viewFetch;
    private string? _primary;
    private View _lastView = View.Empty;
    private bool _onAlternate;
    private readonly Lock _sessionLock = new();
    private Task<Session>? _session;

    /// <summary>Creates a client; it connects lazily, on the first call.</summary>
    public TandemClient(TandemClientOptions? options = null)
    {
        Options = options ?? new TandemClientOptions();
        _coordinators = new CoordinatorMembers(Options.Coordinator);
    }

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
    public Task PutAsync(string key, string value, CancellationToken cancellationToken = default) =>
        PutAsync(key, value, null, cancellationToken);

    /// <summary>Sets <paramref name="key"/> as one attempt of <paramref name="request"/> (see <see cref="CreateRequest"/>).</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed: retry with the same request.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    public async Task PutAsync(string key, string value, TandemRequest? request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        Expect(await ExecuteAsync([Commands.Set, key, value], exactlyOnce: true, cancellationToken, request), RespKind.SimpleString);
    }

    /// <summary>
    /// Replaces the value of <paramref name="key"/> by the decimal FNV-1a hash of <c>old + value</c>, exactly once,
    /// and returns the old value (<c>""</c> when unset).
    /// </summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public Task<string> PutHashAsync(string key, string value, CancellationToken cancellationToken = default) =>
        PutHashAsync(key, value, null, cancellationToken);

    /// <summary>PutHash as one attempt of <paramref name="request"/> (see <see cref="CreateRequest"/>).</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed: retry with the same request.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    public async Task<string> PutHashAsync(string key, string value, TandemRequest? request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        RespValue reply = await ExecuteAsync([Commands.PutHash, key, value], exactlyOnce: true, cancellationToken, request);
        return Expect(reply, RespKind.BulkString).Text;
    }

    /// <summary>Appends <paramref name="value"/> to the value of <paramref name="key"/>, exactly once; returns the new length in bytes.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public Task<long> AppendAsync(string key, string value, CancellationToken cancellationToken = default) =>
        AppendAsync(key, value, null, cancellationToken);

    /// <summary>Append as one attempt of <paramref name="request"/> (see <see cref="CreateRequest"/>).</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed: retry with the same request.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    public async Task<long> AppendAsync(string key, string value, TandemRequest? request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        RespValue reply = await ExecuteAsync([Commands.Append, key, value], exactlyOnce: true, cancellationToken, request);
        return Expect(reply, RespKind.Integer).Integer;
    }

    /// <summary>Deletes <paramref name="key"/>, exactly once; returns whether it existed.</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    /// <exception cref="TandemSessionExpiredException">The servers forgot this client while the write was being retried: its outcome is unknown.</exception>
    public Task<bool> DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        DeleteAsync(key, null, cancellationToken);

    /// <summary>Delete as one attempt of <paramref name="request"/> (see <see cref="CreateRequest"/>).</summary>
    /// <exception cref="TimeoutException"><see cref="TandemClientOptions.OperationTimeout"/> passed: retry with the same request.</exception>
    /// <exception cref="TandemException">The request was refused and retrying cannot help.</exception>
    public async Task<bool> DeleteAsync(string key, TandemRequest? request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        RespValue reply = await ExecuteAsync([Commands.Del, key], exactlyOnce: true, cancellationToken, request);
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

    /// <summary>
    /// Starts a new, empty history (<c>VS.NEWHISTORY</c>): the operator's answer when every copy of the data is
    /// gone. The coordinator refuses while a live server holds the last acknowledged view.
    /// </summary>
    /// <returns>The first view of the new history.</returns>
    /// <param name="force">Also when the servers that held the data are only dead (what they hold is given up).</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public Task<View> StartNewHistoryAsync(bool force = false, CancellationToken cancellationToken = default) =>
        RetryAsync(async token => View.FromResp(await AskCoordinatorAsync(Commands.VsNewHistory, token, force ? ["FORCE"] : [])), cancellationToken);

    /// <summary>
    /// Adds (or removes) the coordinator group member whose Raft address is <paramref name="raftAddress"/>, then
    /// waits until every member that answers uses the new configuration (a member still on the old one could
    /// not help elect a leader of the new group).
    /// </summary>
    public async Task ChangeCoordinatorGroupAsync(bool add, string raftAddress, CancellationToken cancellationToken = default)
    {
        await RetryAsync(async token =>
        {
            // Catching a new member up may take longer than one attempt.
            using var longer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
            longer.CancelAfter(TimeSpan.FromSeconds(30));
            return await AskCoordinatorAsync(add ? Commands.VsAddMember : Commands.VsRemoveMember, longer.Token, raftAddress);
        }, cancellationToken);
        await RetryAsync(async token =>
        {
            // Every member that answers and belongs to the leader's configuration must report that configuration.
            MemberReport[] reports = [.. (await AskEveryMemberAsync(token)).Where(r => r.Status.Role != "unreachable")];
            string[]? leader = reports.FirstOrDefault(r => r.Status.Role == "leader")?.Configuration;
            if (leader is null || leader.Contains(raftAddress, StringComparer.Ordinal) != add
                || reports.Any(r => leader.Contains(r.Raft, StringComparer.Ordinal) && !r.Configuration.SequenceEqual(leader, StringComparer.Ordinal)))
                throw new RetryableException("waiting for every coordinator group member to use the new configuration");
            return true;
        }, cancellationToken);
    }

    /// <summary>
    /// Asks every coordinator group member given in <see cref="TandemClientOptions.Coordinator"/> about itself
    /// (<c>VS.MEMBER</c>), each within one attempt timeout, then every other member of the group's configuration
    /// one of them names: one entry per member, in that order.
    /// </summary>
    public async Task<IReadOnlyList<CoordinatorMemberStatus>> GetCoordinatorMembersAsync(CancellationToken cancellationToken = default) =>
        [.. (await AskEveryMemberAsync(cancellationToken)).Select(r => r.Status)];

    /// <summary>What one member says of itself (<c>VS.MEMBER</c>); an unreachable one says nothing.</summary>
    private sealed record MemberReport(CoordinatorMemberStatus Status, string[] Members, string Raft, string[] Configuration);

    private async Task<IReadOnlyList<MemberReport>> AskEveryMemberAsync(CancellationToken cancellationToken)
    {
        var asked = new List<string>(CoordinatorMembers.Parse(Options.Coordinator));
        var answers = new Dictionary<string, MemberReport>(StringComparer.Ordinal);
        while (asked.Where(a => !answers.ContainsKey(a)).ToArray() is { Length: > 0 } next)
        {
            foreach (MemberReport report in await Task.WhenAll(next.Select(a => AskMemberAsync(a, cancellationToken))))
            {
                answers[report.Status.Address] = report;
                asked.AddRange(report.Members.Where(m => !asked.Contains(m)));
            }
        }
        return [.. asked.Select(a => answers[a])];
    }

    private async Task<MemberReport> AskMemberAsync(string address, CancellationToken cancellationToken)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
        attempt.CancelAfter(Options.AttemptTimeout);
        var unreachable = new MemberReport(new CoordinatorMemberStatus(address, "unreachable", null, null), [], "", []);
        try
        {
            RespClientConnection connection = await ConnectAsync(address, attempt.Token);
            RespValue reply = await connection.SendAsync(attempt.Token, Commands.VsMember);
            if (reply.Kind != RespKind.BulkString) return unreachable;
            using var json = System.Text.Json.JsonDocument.Parse(reply.Text);
            System.Text.Json.JsonElement root = json.RootElement;
            string[] Strings(string name) => root.TryGetProperty(name, out System.Text.Json.JsonElement list)
                ? [.. list.EnumerateArray().Select(e => e.GetString() ?? "")]
                : [];
            string leader = root.GetProperty("leader").GetString() ?? "";
            var status = new CoordinatorMemberStatus(address, root.GetProperty("role").GetString() ?? "follower",
                root.GetProperty("term").GetInt64(), leader == "" ? null : leader);
            return new MemberReport(status, [.. Strings("members").Where(RespClientConnection.IsEndPoint)],
                root.TryGetProperty("raft", out System.Text.Json.JsonElement raft) ? raft.GetString() ?? "" : "", Strings("configuration"));
        }
        catch (Exception e) when (IsTransient(e) || e is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return unreachable;
        }
    }

    /// <summary>
    /// A write the caller may retry across its own timeouts and cancellations with the same client id and request
    /// number, so that it still takes effect at most once, and exactly once if retried until it succeeds. Pass it
    /// to <see cref="PutAsync(string, string, TandemRequest?, CancellationToken)"/> (or PutHash, Append, Delete)
    /// with the same arguments every time; a call that throws <see cref="TimeoutException"/> or
    /// <see cref="OperationCanceledException"/> leaves it open for the next try. Dispose it once done with: an
    /// open request holds back the client's acknowledged-through mark.
    /// </summary>
    public TandemRequest CreateRequest() => new();

    private async Task<RespValue> ExecuteAsync(string[] command, bool exactlyOnce, CancellationToken cancellationToken, TandemRequest? request = null)
    {
        byte[][] args = Array.ConvertAll(command, Encoding.UTF8.GetBytes);
        if (!exactlyOnce) return await RetryAsync(token => SendToPrimaryAsync(args, null, token), cancellationToken);
        PendingWrite write = request is null ? new PendingWrite() : request.Enter(args);
        bool keepOpen = false;
        try
        {
            return await RetryAsync(token => SendWriteAsync(args, write, token), cancellationToken);
        }
        catch (Exception e) when (request is not null && e is TimeoutException or OperationCanceledException)
        {
            keepOpen = true; // the caller may try this very request again
            throw;
        }
        finally
        {
            // Given up or answered: either way this number is never sent again, so the server may drop its reply.
            if (!keepOpen) write.Finish();
            request?.Leave(finished: !keepOpen);
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
        RespClientConnection? connection = null;
        long sentAt = 0;
        RespValue reply;
        try
        {
            connection = await ConnectAsync(primary, token);
            byte[][] frame = write is null ? args : write.Frame(args);
            bool mayHaveApplied = write?.MayHaveApplied ?? false;
            if (write is not null) write.MayHaveApplied = true; // from here the request may reach the server
            sentAt = System.Diagnostics.Stopwatch.GetTimestamp();
            reply = await connection.SendAsync(frame, token);
            if (!reply.IsError)
            {
                Volatile.Write(ref _onAlternate, false);
                return reply;
            }
            // These replies promise that this attempt was not applied.
            if (write is not null && reply.ErrorCode is ErrorCodes.NotPrimary or ErrorCodes.ReadOnly or ErrorCodes.NoSession or ErrorCodes.Err)
                write.MayHaveApplied = mayHaveApplied;
        }
        catch (Exception e) when (e is not TandemException)
        {
            // No reply within the attempt: the flow may be dead, and a retry must not queue behind it.
            // Only a connection on which nothing at all arrived since is taken for dead: a busy one that answers
            // other calls is kept, and so is a caller's own cancellation.
            if (sentAt != 0 && e is OperationCanceledException && System.Diagnostics.Stopwatch.GetElapsedTime(sentAt) >= Options.AttemptTimeout * 0.9
                && connection is { } silent && silent.LastReceivedTimestamp < sentAt)
                silent.Abort("nothing received within the attempt timeout");
            Redirect(primary, Volatile.Read(ref _onAlternate) ? null : Alternate(primary));
            if (!IsTransient(e)) throw;
            throw new RetryableException($"waiting for primary {primary}: {Describe(e, token)}", e);
        }
        if (!ErrorCodes.IsRetryable(reply.ErrorCode)) throw new TandemException(reply.ErrorCode, reply.Text);
        // TRYAGAIN comes from a server that takes itself for the primary: stay with it, and ask the coordinator
        // on the side in case it was deposed without knowing (a silent coordinator changes nothing). NOTPRIMARY
        // names the primary when the server knows it.
        if (reply.ErrorCode == ErrorCodes.TryAgain) RefreshPrimary(primary);
        else if (reply.ErrorCode is ErrorCodes.NotPrimary or ErrorCodes.ReadOnly) Redirect(primary, PrimaryNamedIn(reply.Text));
        throw new RetryableException($"waiting for primary {primary}: it answered {reply.Text}");
    }

    /// <summary>Asks the coordinator without waiting; if it names another primary than <paramref name="current"/>, moves there.</summary>
    private void RefreshPrimary(string current) =>
        SharedViewFetch().ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully && t.Result.Primary is not "" and var primary && primary != current) Redirect(current, primary);
        }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);

    /// <summary>The question to the coordinator in progress, or a new one: concurrent askers share one.</summary>
    private Task<View> SharedViewFetch()
    {
        lock (_viewLock)
        {
            if (_viewFetch is not { IsCompleted: false }) _viewFetch = Observed(FetchViewAsync());
            return _viewFetch;
        }
    }

    /// <summary>Moves the cached primary from <paramref name="from"/> to <paramref name="to"/> (null: ask the coordinator).</summary>
    private void Redirect(string from, string? to)
    {
        if (to == from) to = null;
        // After one redirect that fails too, the coordinator is asked (no endless hopping between known servers).
        if (Interlocked.CompareExchange(ref _primary, to, from) == from) Volatile.Write(ref _onAlternate, to is not null);
    }

    /// <summary>The other server of the last known view: the one to try when the primary does not answer.</summary>
    private string? Alternate(string failed)
    {
        View view;
        lock (_viewLock) view = _lastView;
        string other = failed == view.Primary ? view.Backup : view.Primary;
        return other == "" ? null : other;
    }

    /// <summary>The primary a <c>NOTPRIMARY</c> reply names (<c>...; primary: HOST:PORT</c>), or null when unknown.</summary>
    private static string? PrimaryNamedIn(string? error)
    {
        const string Marker = "; primary: ";
        int at = error?.LastIndexOf(Marker, StringComparison.Ordinal) ?? -1;
        if (at < 0) return null;
        string named = error![(at + Marker.Length)..].Trim();
        return named is "" or "unknown" || named.Contains(' ', StringComparison.Ordinal) ? null : named;
    }

    private async Task<string> FindPrimaryAsync(CancellationToken token)
    {
        View view;
        try
        {
            view = await SharedViewFetch().WaitAsync(token);
        }
        catch (RetryableException) when (Alternate("") is { } known)
        {
            // The coordinator does not answer: keep trying the servers of the last view it gave.
            Volatile.Write(ref _primary, known);
            return known;
        }
        if (view.Primary == "") throw new RetryableException($"waiting for a primary (coordinator {_coordinators.Current})");
        Volatile.Write(ref _onAlternate, false);
        Volatile.Write(ref _primary, view.Primary);
        return view.Primary;
    }

    private async Task<View> FetchViewAsync()
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(_disposed.Token);
        attempt.CancelAfter(Options.AttemptTimeout);
        View view = View.FromResp(await AskCoordinatorAsync(Commands.VsView, attempt.Token));
        if (view.Primary != "")
        {
            lock (_viewLock) _lastView = view; // the servers to fall back on while the coordinator is silent
        }
        return view;
    }

    /// <summary>
    /// Asks the coordinator group: the member that led last, else the next one; a member that does not lead names
    /// the leader (followed at once), a member that does not answer is passed over for the next.
    /// </summary>
    private async Task<RespValue> AskCoordinatorAsync(string command, CancellationToken token, params string[] arguments)
    {
        int members = _coordinators.All.Count;
        for (int tries = 1; ; tries++)
        {
            string target = _coordinators.Current;
            try
            {
                RespClientConnection connection = await ConnectAsync(target, token);
                RespValue reply = await connection.SendAsync(token, [command, .. arguments]);
                if (reply.IsError && reply.ErrorCode == ErrorCodes.NotLeader)
                {
                    _coordinators.Redirected(target, reply.Text);
                    if (tries <= 2 * members) continue;
                    throw new RetryableException($"waiting for the coordinator group to elect a leader ({target}: {reply.Text})");
                }
                if (reply.IsError) throw new TandemException(reply.ErrorCode, $"coordinator {target}: {reply.Text}");
                return reply;
            }
            catch (Exception e) when (IsTransient(e) && e is not RetryableException)
            {
                _coordinators.Failed(target);
                if (tries < members && !token.IsCancellationRequested) continue;
                throw new RetryableException($"waiting for the coordinator {target}: {Describe(e, token)}", e);
            }
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
    internal sealed class Session(long id)
    {
        public long Id { get; } = id;
        public RequestWindow Window { get; } = new();
    }

    /// <summary>One exactly-once write across its attempts. Used by one call at a time (attempts are sequential).</summary>
    internal sealed class PendingWrite
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

        /// <summary>Whether a session has been taken (the request number is fixed from then on).</summary>
        public bool Started => Session is not null;
    }

    /// <summary>A failure worth retrying; its message says what the call was waiting for, for the timeout message.</summary>
    private sealed class RetryableException(string message, Exception? inner = null) : Exception(message, inner);
}

/// <summary>
/// One exactly-once write that its caller retries itself (see <see cref="TandemClient.CreateRequest"/>): every
/// call made with it reuses the same client id and request number. Not for concurrent calls.
/// </summary>
public sealed class TandemRequest : IDisposable
{
    private readonly TandemClient.PendingWrite _write = new();
    private byte[][]? _args;
    private int _busy;
    private bool _done;
    private volatile bool _disposeRequested;

    internal TandemRequest()
    {
    }

    /// <summary>True once a call made with this request succeeded or failed for good: it cannot be sent again.</summary>
    public bool IsCompleted => Volatile.Read(ref _done);

    internal TandemClient.PendingWrite Enter(byte[][] args)
    {
        if (Interlocked.Exchange(ref _busy, 1) == 1) throw new InvalidOperationException("this request is already being sent");
        if (_done || (_args is not null && !SameArgs(_args, args)))
        {
            Volatile.Write(ref _busy, 0);
            throw _done
                ? new InvalidOperationException("this request has completed; create a new one")
                : new ArgumentException("a request must be retried with the same command and arguments");
        }
        _args = args;
        return _write;
    }

    internal void Leave(bool finished)
    {
        if (!finished && _disposeRequested) _write.Finish(); // disposed while that call ran: give it up now
        if (finished || _disposeRequested) Volatile.Write(ref _done, true);
        Volatile.Write(ref _busy, 0);
    }

    /// <summary>Gives the request up: the servers may forget its reply.</summary>
    public void Dispose()
    {
        _disposeRequested = true;
        if (Interlocked.Exchange(ref _busy, 1) == 1) return; // the call in progress gives it up as it ends
        if (!_done) _write.Finish();
        Volatile.Write(ref _done, true);
    }

    private static bool SameArgs(byte[][] a, byte[][] b) =>
        a.Length == b.Length && a.Zip(b).All(p => p.First.AsSpan().SequenceEqual(p.Second));
}
