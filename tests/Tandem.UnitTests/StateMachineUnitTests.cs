using System.Text;
using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.UnitTests;

public class StateMachineUnitTests
{
    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public void Apply_AllOperations_ReplyLikeRedis()
    {
        var sm = new StateMachine();
        Assert.Equal("+OK", sm.Apply(new Operation(OpCode.Set, B("k"), B("x")), 1).ToString());
        Assert.Equal("\"x\"", sm.Apply(new Operation(OpCode.PutHash, B("k"), B("b")), 2).ToString());
        Assert.Equal("1063475327", Encoding.ASCII.GetString(sm.Get(B("k"))!));
        Assert.Equal(":12", sm.Apply(new Operation(OpCode.Append, B("k"), B("!!")), 3).ToString());
        Assert.Equal(":1", sm.Apply(new Operation(OpCode.Delete, B("k"), []), 4).ToString());
        Assert.Equal(":0", sm.Apply(new Operation(OpCode.Delete, B("k"), []), 5).ToString());
        Assert.Null(sm.Get(B("k")));
        Assert.Equal(5, sm.LastApplied);
    }

    [Fact]
    public void Apply_OutOfSequence_Throws()
    {
        var sm = new StateMachine();
        sm.Apply(new Operation(OpCode.Set, B("a"), B("1")), 1);
        Assert.Throws<InvalidOperationException>(() => sm.Apply(new Operation(OpCode.Set, B("a"), B("2")), 3));
        Assert.Throws<InvalidOperationException>(() => sm.Apply(new Operation(OpCode.Set, B("a"), B("2")), 1));
    }

    [Fact]
    public void Snapshot_InstalledElsewhere_GivesIdenticalStateAndReplies()
    {
        var primary = new StateMachine();
        primary.Apply(new Operation(OpCode.Set, B("a"), B("1")), 1);
        primary.Apply(new Operation(OpCode.PutHash, B("a"), B("2"), ClientId: 9, RequestSeq: 1), 2);
        Snapshot snapshot = primary.CreateSnapshot();
        primary.Apply(new Operation(OpCode.Set, B("a"), B("later")), 3);

        var backup = new StateMachine();
        backup.Install(snapshot);
        Assert.Equal(2, backup.LastApplied);
        Assert.Equal(Fnv1a.PutHashValue(B("1"), B("2")), backup.Get(B("a")));
        Assert.Equal(DuplicateCheck.Duplicate, backup.Duplicates.Check(9, 1, 0, out SavedReply saved));
        Assert.Equal("\"1\"", saved.Reply.ToString());

        backup.Apply(new Operation(OpCode.Set, B("a"), B("later")), 3);
        Assert.Equal(primary.Get(B("a")), backup.Get(B("a")));
    }

    [Fact]
    public void Register_IsAWrite_ThatIssuesTheSameIdsOnEveryCopy()
    {
        var primary = new StateMachine();
        Assert.Equal(":1", primary.Apply(new Operation(OpCode.Register, [], []), 1).ToString());
        primary.Apply(new Operation(OpCode.Set, B("a"), B("1"), ClientId: 500, RequestSeq: 1), 2);
        var backup = new StateMachine();
        backup.Install(primary.CreateSnapshot());

        Assert.Equal(":501", primary.Apply(new Operation(OpCode.Register, [], []), 3).ToString());
        Assert.Equal(":501", backup.Apply(new Operation(OpCode.Register, [], []), 3).ToString());
        Assert.Equal(1, primary.Count);
    }
}
