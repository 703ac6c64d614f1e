namespace Tandem.Protocol;

/// <summary>Command names spoken on the wire. Every one is documented in docs/protocol.md.</summary>
public static class Commands
{
    // Client commands on a server.
    /// <summary><c>GET key</c></summary>
    public const string Get = "GET";
    /// <summary><c>SET key value</c></summary>
    public const string Set = "SET";
    /// <summary><c>PUTHASH key value</c>: stores fnv1a32(old + value) in decimal, replies the old value.</summary>
    public const string PutHash = "PUTHASH";
    /// <summary><c>APPEND key value</c></summary>
    public const string Append = "APPEND";
    /// <summary><c>DEL key</c></summary>
    public const string Del = "DEL";
    /// <summary><c>XREQ client-id seq acked-through COMMAND args...</c>: an exactly-once write.</summary>
    public const string ExactlyOnce = "XREQ";
    /// <summary><c>XCLIENT</c>: issues a new client id for <c>XREQ</c> (a replicated write); replies the id.</summary>
    public const string Register = "XCLIENT";

    // Replication between servers.
    /// <summary><c>REPL.SNAPSHOT view from session BEGIN|DATA|DUPS|END ...</c>: state transfer.</summary>
    public const string ReplSnapshot = "REPL.SNAPSHOT";
    /// <summary><c>REPL.APPLY view from session first-seq [op key value client seq acked]...</c>: a forwarded batch.</summary>
    public const string ReplApply = "REPL.APPLY";

    // Coordinator.
    /// <summary><c>VS.PING server-address view-number</c>: heartbeat; replies the current view.</summary>
    public const string VsPing = "VS.PING";
    /// <summary>
    /// <c>VS.UNREACHABLE primary view-number backup</c>: the primary reports that its backup does not acknowledge;
    /// replies 1 if that is the current view (its backup will be replaced), else 0.
    /// </summary>
    public const string VsUnreachable = "VS.UNREACHABLE";
    /// <summary><c>VS.VIEW</c>: the current view, without pinging.</summary>
    public const string VsView = "VS.VIEW";
    /// <summary><c>VS.STATUS</c>: the view and every known server, as one JSON bulk string.</summary>
    public const string VsStatus = "VS.STATUS";
    /// <summary>
    /// <c>VS.MEMBER</c>: this coordinator group member, as one JSON bulk string
    /// (<c>{"address","role","term","leader","view","members"}</c>, members being the addresses in the group's
    /// configuration); any member answers.
    /// </summary>
    public const string VsMember = "VS.MEMBER";
    /// <summary>
    /// <c>VS.NEWHISTORY</c>: the operator gives up the data (every copy is gone) and starts a new, empty history
    /// on a live server; refused while a live server holds the last acknowledged view.
    /// </summary>
    public const string VsNewHistory = "VS.NEWHISTORY";
    /// <summary><c>VS.ADDMEMBER raft-address</c>: adds a member to the coordinator group (leader only; it is caught up first).</summary>
    public const string VsAddMember = "VS.ADDMEMBER";
    /// <summary><c>VS.REMOVEMEMBER raft-address</c>: removes a member from the coordinator group (leader only).</summary>
    public const string VsRemoveMember = "VS.REMOVEMEMBER";
}

/// <summary>First words of error replies. A client retries on every code but <see cref="Err"/>.</summary>
public static class ErrorCodes
{
    /// <summary>Bad request: unknown command, wrong arity, value too large. Retrying cannot help.</summary>
    public const string Err = "ERR";
    /// <summary>This node is not the primary (the message names the primary when known).</summary>
    public const string NotPrimary = "NOTPRIMARY";
    /// <summary>This node may be primary but cannot commit or confirm right now (backup unreachable or syncing).</summary>
    public const string TryAgain = "TRYAGAIN";
    /// <summary>A replication message from a view or primary this node does not accept (fencing).</summary>
    public const string StaleView = "STALEVIEW";
    /// <summary>
    /// An exactly-once request whose client session was dropped from the duplicate table: it was not applied now,
    /// but an earlier attempt may have been. The client needs a new id (<c>XCLIENT</c>).
    /// </summary>
    public const string NoSession = "NOSESSION";
    /// <summary>
    /// This coordinator group member does not lead: <c>NOTLEADER leader HOST:PORT</c> names the leader, or
    /// <c>NOTLEADER no leader is known</c> during an election.
    /// </summary>
    public const string NotLeader = "NOTLEADER";

    /// <summary>True when a client should retry the request (possibly on another node).</summary>
    public static bool IsRetryable(string code) => code is NotPrimary or ReadOnly or TryAgain or StaleView or NotLeader;

    /// <summary>
    /// A write sent to a server that is not the primary, in Redis's words for a replica
    /// (<c>READONLY You can't write against a read only replica.</c>), followed by Tandem's detail and, when known,
    /// <c>primary: HOST:PORT</c>. Nothing was applied. Client libraries take it as "the primary moved".
    /// </summary>
    public const string ReadOnly = "READONLY";
}
