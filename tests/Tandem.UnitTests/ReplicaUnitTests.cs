using System.Buffers.Binary;
using System.Net;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Tandem.Protocol;
using Tandem.Server;
using Tandem.Storage;

namespace Tandem.UnitTests;

/// <summary>The replica's role rules and the backup side of replication, driven directly (no network).</summary>
public class ReplicaUnitTests
{
    private const string A = "10.0.0.1:1", B = "10.0.0.2:1";

    private static Replica NewReplica(string me) =>
        new(me, new ServerNodeOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0), Coordinator = "10.0.0.9:1" });

    private static RespValue Repl(Replica r, params string[] args) => r.HandleReplication(RespCommand.From(args));

    /// <summary>Like <see cref="Repl"/>, as if it came on <paramref name="connection"/>.</summary>
    private static RespValue ReplOn(object connection, Replica r, params string[] args) => r.HandleReplication(RespCommand.From(args), connection);

    /// <summary>The count of an answer to <c>RESUME</c> for a transfer in progress (<c>*2 parts n</c>).</summary>
    private static long PartsOf(RespValue answer)
    {
        Assert.Equal(RespKind.Array, answer.Kind);
        Assert.Equal(2, answer.Items!.Length);
        Assert.Equal("parts", answer.Items[0].Text);
        return answer.Items[1].Integer;
    }

    /// <summary>
    /// <c>REPL.APPLY view from session first-seq 1024</c> carrying <paramref name="ops"/>, each laid out as on the
    /// wire: its 36 bytes of fields (now, client id, request number, acked-through, argument count; little-endian),
    /// then its arguments.
    /// </summary>
    private static RespValue Apply(Replica r, string view, string session, string first, params string[][] ops) =>
        ApplyWithFields(r, view, session, first, [.. ops.Select(op => (Fields(op.Length), op))]);

    /// <summary>Fields of zeros but the argument count <paramref name="argc"/>.</summary>
    private static byte[] Fields(int argc)
    {
        byte[] fields = new byte[36];
        BinaryPrimitives.WriteInt32LittleEndian(fields.AsSpan(32), argc);
        return fields;
    }

    /// <summary>Like <see cref="Apply"/>, each operation with the fields argument given as it is.</summary>
    private static RespValue ApplyWithFields(Replica r, string view, string session, string first, params (byte[] Fields, string[] Args)[] ops)
    {
        var args = new List<byte[]>();
        foreach (string a in new[] { "REPL.APPLY", view, A, session, first, "1024" }) args.Add(Encoding.UTF8.GetBytes(a));
        foreach ((byte[] fields, string[] op) in ops)
        {
            args.Add(fields);
            foreach (string a in op) args.Add(Encoding.UTF8.GetBytes(a));
        }
        return r.HandleReplication(new RespCommand([.. args]));
    }

    private static void InstallSnapshot(Replica backup, long view, string session, long seq, params string[] keyValues)
    {
        Assert.Equal("+OK", Repl(backup, "REPL.SNAPSHOT", view.ToString(), A, session, "BEGIN", seq.ToString()).ToString());
        Assert.Equal("+OK", Repl(backup, ["REPL.SNAPSHOT", view.ToString(), A, session, "DATA", .. keyValues]).ToString());
        Assert.Equal($":{seq}", Repl(backup, "REPL.SNAPSHOT", view.ToString(), A, session, "END", (keyValues.Length / 2).ToString(), "0", "0", "0").ToString());
    }

    [Fact]
    public async Task Backup_TakesFloorAndHighestIdFromTheSnapshot_AndAppliesRegistrations()
    {
        Replica backup = NewReplica(B);
        backup.OnView(new View(2, A, B));
        Assert.Equal("+OK", Repl(backup, "REPL.SNAPSHOT", "2", A, "s1", "BEGIN", "3").ToString());
        Assert.Equal("+OK", Repl(backup, "REPL.SNAPSHOT", "2", A, "s1", "DUPS", "40", "0", "1", "1", "2", "+OK\r\n").ToString());
        Assert.Equal("+OK", Repl(backup, "REPL.SNAPSHOT", "2", A, "s1", "DUPS", "40", "0", "1", "2", "3", ":5\r\n").ToString()); // a second part
        Assert.Equal(":3", Repl(backup, "REPL.SNAPSHOT", "2", A, "s1", "END", "0", "1", "30", "40").ToString());
        Assert.Equal(":4", Apply(backup, "2", "s1", "4", ["XCLIENT"]).ToString()); // XCLIENT: issues 41

        backup.OnView(new View(3, B, ""));
        backup.OnView(new View(3, B, ""), acked: true, lastAckedView: 3); // replies go out once the ack is recorded
        Assert.True(backup.IsServingPrimary);
        Assert.Equal(ErrorCodes.NoSession, (await backup.WriteAsync(Operation.Of("SET", "k", "v") with { ClientId = 30, RequestSeq = 1 })).ErrorCode);
        Assert.Equal(":5", (await backup.WriteAsync(Operation.Of("APPEND", "k", "v") with { ClientId = 40, RequestSeq = 2 })).ToString());
        Assert.Equal("+OK", (await backup.WriteAsync(Operation.Of("SET", "k", "v") with { ClientId = 31, RequestSeq = 1 })).ToString());
        Assert.Equal(":42", (await backup.WriteAsync(Operation.Of("XCLIENT"))).ToString());
        Assert.Equal(1, backup.KeyCount);
    }

    [Fact]
    public async Task FreshServer_NamedPrimaryOfUnackedViewOne_AcksThenAnswersOnlyOnceTheAckIsRecorded()
    {
        Replica fresh = NewReplica(A);
        fresh.OnView(View.Empty);
        fresh.OnView(new View(1, A, ""), acked: false, lastAckedView: 0);
        Assert.Equal(1, fresh.ViewNumberForPing());
        Assert.False(fresh.ViewAcknowledged);
        ValueTask<RespValue> write = fresh.WriteAsync(Operation.Of("SET", "k", "v"));
        ValueTask<RespValue> read = fresh.ReadAsync("k"u8.ToArray());
        Assert.False(write.IsCompleted);
        Assert.False(read.IsCompleted);
        fresh.OnView(new View(1, A, ""), acked: true, lastAckedView: 1);
        Assert.True(fresh.ViewAcknowledged);
        Assert.Equal("+OK", (await write).ToString());
        Assert.Equal("\"v\"", (await read).ToString());
        Assert.Equal(1, fresh.HeldView);
    }

    [Fact]
    public void RestartedServer_NamedPrimaryOfAcknowledgedViewOne_NeverServesAndPingsZero()
    {
        Replica restarted = NewReplica(A);
        restarted.OnView(new View(1, A, ""), acked: true); // its predecessor acknowledged view 1 and may have served
        Assert.False(restarted.IsServingPrimary);
        Assert.Equal(0, restarted.ViewNumberForPing());
    }

    [Fact]
    public void Backup_RefusesReplication_FromWrongViewOrSender()
    {
        Replica backup = NewReplica(B);
        backup.OnView(new View(2, A, B));
        Assert.Equal(ErrorCodes.StaleView, Repl(backup, "REPL.SNAPSHOT", "3", A, "s", "BEGIN", "0").ErrorCode);
        Assert.Equal(ErrorCodes.StaleView, Repl(backup, "REPL.SNAPSHOT", "1", A, "s", "BEGIN", "0").ErrorCode);
        Assert.Equal(ErrorCodes.StaleView, Repl(backup, "REPL.SNAPSHOT", "2", "10.0.0.3:1", "s", "BEGIN", "0").ErrorCode);
        Assert.Equal(ErrorCodes.StaleView, Apply(backup, "2", "s", "1", ["SET", "k", "v"]).ErrorCode);
    }

    [Fact]
    public void Backup_AppliesBatchesInSequence_AndRefusesGaps()
    {
        Replica backup = NewReplica(B);
        backup.OnView(new View(2, A, B));
        InstallSnapshot(backup, 2, "s1", 5, "k", "v");
        Assert.Equal(ErrorCodes.StaleView, Apply(backup, "2", "s1", "7", ["SET", "k", "x"]).ErrorCode);
        Assert.Equal(":6", Apply(backup, "2", "s1", "6", ["SET", "k", "x"]).ToString());
        Assert.Equal(":6", Repl(backup, "REPL.APPLY", "2", A, "s1", "7", "1024").ToString()); // empty batch: a read confirmation
        Assert.Equal(ErrorCodes.StaleView, Repl(backup, "REPL.APPLY", "2", A, "other-session", "7", "1024").ErrorCode);
    }

    [Fact]
    public void Backup_RefusesABatch_WhoseOperationFieldsAreNotItsLayout_AndAppliesNothingOfIt()
    {
        Replica backup = NewReplica(B);
        backup.OnView(new View(2, A, B));
        InstallSnapshot(backup, 2, "s1", 5, "k", "v");
        // Fields of 35 bytes, and the decimal fields of a primary of an older layout: both are refused whole.
        RespValue shortFields = ApplyWithFields(backup, "2", "s1", "6", (new byte[35], ["SET", "k", "x"]));
        Assert.Equal("ERR malformed REPL.APPLY: operation fields of 35 bytes, not 36", shortFields.ToString()[1..]);
        RespValue decimals = Repl(backup, "REPL.APPLY", "2", A, "s1", "6", "1024", "0", "0", "0", "0", "3", "SET", "k", "x");
        Assert.StartsWith("ERR malformed REPL.APPLY: operation fields of 1 bytes", decimals.ToString()[1..]);
        // A well-formed batch whose argument count overruns the command is refused too.
        RespValue overrun = ApplyWithFields(backup, "2", "s1", "6", (Fields(4), ["SET", "k", "x"]));
        Assert.Equal("ERR malformed REPL.APPLY: bad argument count", overrun.ToString()[1..]);
        Assert.Equal(":6", Apply(backup, "2", "s1", "6", ["SET", "k", "x"]).ToString()); // nothing of them was applied
    }

    [Fact]
    public void Backup_RefusesSnapshotMissingAChunk()
    {
        Replica backup = NewReplica(B);
        backup.OnView(new View(2, A, B));
        Repl(backup, "REPL.SNAPSHOT", "2", A, "s", "BEGIN", "3");
        RespValue end = Repl(backup, "REPL.SNAPSHOT", "2", A, "s", "END", "2", "0");
        Assert.True(end.IsError);
        backup.OnView(new View(3, B, ""));
        Assert.False(backup.IsServingPrimary);
    }

    [Fact]
    public void Resume_AnswersTheLastWriteOfTheSessionTheBackupHolds_AndNilForAnyOther()
    {
        Replica backup = NewReplica(B);
        backup.OnView(new View(2, A, B));
        Repl(backup, "REPL.SNAPSHOT", "2", A, "s0", "BEGIN", "4");
        Assert.True(Repl(backup, "REPL.SNAPSHOT", "2", A, "s1", "RESUME").IsNull); // neither installed nor in progress

        InstallSnapshot(backup, 2, "s1", 4, "k", "v");
        Assert.Equal(":5", Apply(backup, "2", "s1", "5", ["SET", "k", "w"]).ToString());
        Assert.Equal(":5", Repl(backup, "REPL.SNAPSHOT", "2", A, "s1", "RESUME").ToString());
        Assert.True(Repl(backup, "REPL.SNAPSHOT", "2", A, "s0", "RESUME").IsNull);
        Assert.Equal(ErrorCodes.StaleView, Repl(backup, "REPL.SNAPSHOT", "3", A, "s1", "RESUME").ErrorCode);

        Repl(backup, "REPL.SNAPSHOT", "2", A, "s2", "BEGIN", "9"); // a new transfer: the old session is gone
        Assert.True(Repl(backup, "REPL.SNAPSHOT", "2", A, "s1", "RESUME").IsNull);
    }

    [Fact]
    public void Resume_OfATransferInProgress_AnswersThePartsApplied_AndTheResumingConnectionTakesTheRestOver()
    {
        Replica backup = NewReplica(B);
        backup.OnView(new View(2, A, B));
        object first = new(), second = new();
        Assert.Equal("+OK", ReplOn(first, backup, "REPL.SNAPSHOT", "2", A, "s1", "BEGIN", "4").ToString());
        Assert.Equal("+OK", ReplOn(first, backup, "REPL.SNAPSHOT", "2", A, "s1", "DATA", "k1", "v1").ToString());
        Assert.Equal(ErrorCodes.Err, ReplOn(first, backup, "REPL.SNAPSHOT", "2", A, "s1", "NOSUCHPART").ErrorCode); // not counted

        // The first connection broke after two parts; a second one resumes the transfer.
        Assert.Equal(2, PartsOf(ReplOn(second, backup, "REPL.SNAPSHOT", "2", A, "s1", "RESUME")));
        // A part still arriving on the first connection is refused: it would be counted twice.
        Assert.Equal(ErrorCodes.StaleView, ReplOn(first, backup, "REPL.SNAPSHOT", "2", A, "s1", "DATA", "k2", "v2").ErrorCode);
        Assert.Equal("+OK", ReplOn(second, backup, "REPL.SNAPSHOT", "2", A, "s1", "DATA", "k2", "v2").ToString());
        Assert.Equal(3, PartsOf(ReplOn(second, backup, "REPL.SNAPSHOT", "2", A, "s1", "RESUME")));
        Assert.Equal(":4", ReplOn(second, backup, "REPL.SNAPSHOT", "2", A, "s1", "END", "2", "0", "0", "0").ToString());

        Assert.Equal(":4", ReplOn(second, backup, "REPL.SNAPSHOT", "2", A, "s1", "RESUME").ToString()); // installed now
        Assert.Equal(2, backup.KeyCount);
        Assert.Equal(4, backup.LastApplied);
    }

    [Fact]
    public void SyncedBackup_WhoseNextTransferBreaksHalfway_IsStillPromotable()
    {
        Replica backup = NewReplica(B);
        backup.OnView(new View(2, A, B));
        InstallSnapshot(backup, 2, "s1", 4, "k", "v");
        Repl(backup, "REPL.SNAPSHOT", "2", A, "s2", "BEGIN", "9"); // a resync that never ends

        backup.OnView(new View(3, B, ""));
        Assert.True(backup.IsServingPrimary);
        Assert.Equal(1, backup.KeyCount);
        Assert.Equal(4, backup.LastApplied);
    }

    [Fact]
    public void BackupOfNewView_IsNotPromotable_UntilThatViewsSnapshotArrives()
    {
        Replica backup = NewReplica(B);
        backup.OnView(new View(2, A, B));
        InstallSnapshot(backup, 2, "s1", 4, "k", "v");
        backup.OnView(new View(3, A, B));
        backup.OnView(new View(4, B, ""), lastAckedView: 3); // view 3 was acknowledged: B lacks its writes
        Assert.False(backup.IsServingPrimary);
        Assert.Equal(0, backup.ViewNumberForPing());
        Assert.Equal(0, backup.HeldView);
    }

    [Fact]
    public void SyncedBackup_OfTheLastAckedView_IsPromotable_EvenAfterAnUnackedViewDroppedIt()
    {
        Replica backup = NewReplica(B);
        backup.OnView(new View(2, A, B));
        InstallSnapshot(backup, 2, "s1", 4, "k", "v");
        backup.OnView(new View(3, A, "10.0.0.3:1")); // replaced while view 2 was still the last acknowledged
        Assert.Equal(2, backup.HeldView);
        backup.OnView(new View(4, B, ""), lastAckedView: 2); // A died before acknowledging view 3: fall back
        Assert.True(backup.IsServingPrimary);
        Assert.Equal(4, backup.LastApplied);
    }

    [Fact]
    public async Task WriteWaitingForItsBackup_WhenThePrimaryIsDeposed_IsAnsweredTryAgainNotNotPrimary()
    {
        // Found by the fault campaign (seed 2026): such a write may already be on the backup that now leads, so
        // NOTPRIMARY ("not applied") would be a lie that a plain client cannot recover from.
        const string refusing = "127.0.0.1:1";
        // (A primary whose last acknowledged view had no backup answers on its own while a new backup syncs, and
        // cannot be deposed before it acknowledges; so here the history starts with a backup that never confirms.)
        Replica primary = NewReplica(A);
        primary.OnView(new View(1, A, refusing), acked: false, lastAckedView: 0);
        ValueTask<RespValue> write = primary.WriteAsync(Operation.Of("SET", "k", "v"));
        Assert.False(write.IsCompleted);

        primary.OnView(new View(2, refusing, ""));
        RespValue reply = await write;
        Assert.Equal(ErrorCodes.TryAgain, reply.ErrorCode);
        Assert.Equal(ErrorCodes.ReadOnly, (await primary.WriteAsync(Operation.Of("SET", "k", "w"))).ErrorCode);
    }

    [Fact]
    public async Task WaitsStillOpenAfterTheCommitTimeout_AreAnsweredTryAgain_ByTheSweep()
    {
        // The coordinator never records this primary's ack, so its write and its read both wait; no timer is made
        // per wait: the replica's one sweep answers them once the commit timeout has passed.
        var clock = new FakeTimeProvider();
        Replica primary = new(A, new ServerNodeOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0), Coordinator = "10.0.0.9:1", TimeProvider = clock,
            CommitTimeout = TimeSpan.FromSeconds(2),
        });
        primary.OnView(new View(1, A, ""), acked: false, lastAckedView: 0);
        ValueTask<RespValue> write = primary.WriteAsync(Operation.Of("SET", "k", "v"));
        clock.Advance(TimeSpan.FromMilliseconds(500));
        ValueTask<RespValue> read = primary.ReadAsync("k"u8.ToArray());

        clock.Advance(TimeSpan.FromMilliseconds(1400)); // 1.9 s after the write
        Assert.False(write.IsCompleted);
        Assert.False(read.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(400)); // past the commit timeout (and the sweep's period) for the write only
        RespValue written = await write;
        Assert.Equal(ErrorCodes.TryAgain, written.ErrorCode);
        Assert.Contains("did not confirm within 2000 ms", written.Text);
        Assert.False(read.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal(ErrorCodes.TryAgain, (await read).ErrorCode);
        primary.Dispose();
    }

    [Fact]
    public async Task LonePrimary_CommitsAtOnce_AndRetriedRequestReturnsSavedReply()
    {
        Replica primary = NewReplica(A);
        primary.OnView(new View(1, A, ""), acked: false, lastAckedView: 0);
        primary.OnView(new View(1, A, ""), acked: true);
        var op = Operation.Of("PUTHASH", "k", "v") with { ClientId = 5, RequestSeq = 1 };
        Assert.Equal("\"\"", (await primary.WriteAsync(op)).ToString());
        Assert.Equal("\"\"", (await primary.WriteAsync(op)).ToString());
        Assert.Equal(1, primary.LastApplied);
    }

    [Fact]
    public async Task ServerTakingThePrimaryRoleAfresh_OnAnotherHistory_DoesNotKeepItsOldCommitIndex()
    {
        // R committed writes 1-5 alone in its own history, which a fallback then abandoned; it becomes the backup
        // of the history that won (a snapshot at write 2), and later primary again with a backup that never
        // confirms. Its old commit index (5) must not answer writes 3-5 of the new history early.
        const string R = "10.0.0.1:1", Q = "10.0.0.2:1", Unreachable = "127.0.0.1:1";
        Replica r = NewReplica(R);
        r.OnView(new View(1, R, ""), acked: false, lastAckedView: 0);
        r.OnView(new View(1, R, ""), acked: true, lastAckedView: 1);
        for (int i = 0; i < 5; i++) await r.WriteAsync(Operation.Of("SET", "k", "old"));
        Assert.Equal(5, r.CommitIndex);

        r.OnView(new View(4, Q, R));
        Assert.Equal("+OK", Repl(r, "REPL.SNAPSHOT", "4", Q, "s", "BEGIN", "2").ToString());
        Assert.Equal("+OK", Repl(r, "REPL.SNAPSHOT", "4", Q, "s", "DATA", "k", "new").ToString());
        Assert.Equal(":2", Repl(r, "REPL.SNAPSHOT", "4", Q, "s", "END", "1", "0", "0", "0").ToString());

        r.OnView(new View(5, R, Unreachable), lastAckedView: 4);
        Assert.True(r.IsServingPrimary);
        Assert.InRange(r.CommitIndex, 0, r.LastApplied);
        r.OnView(new View(5, R, Unreachable), acked: true, lastAckedView: 5);
        ValueTask<RespValue> write = r.WriteAsync(Operation.Of("SET", "k", "w3"));
        Assert.False(write.IsCompleted, "write 3 was answered although no backup has it");
        r.Dispose();
        Assert.Equal(ErrorCodes.TryAgain, (await write).ErrorCode);
    }
}
