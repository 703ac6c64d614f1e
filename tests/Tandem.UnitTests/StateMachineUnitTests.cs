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
        Assert.Equal("+OK", sm.Apply(Operation.Of("SET", "k", "x"), 1).ToString());
        Assert.Equal("\"x\"", sm.Apply(Operation.Of("PUTHASH", "k", "b"), 2).ToString());
        Assert.Equal("1063475327", Encoding.ASCII.GetString(sm.Get(B("k"))!));
        Assert.Equal(":12", sm.Apply(Operation.Of("APPEND", "k", "!!"), 3).ToString());
        Assert.Equal(":1", sm.Apply(Operation.Of("DEL", "k"), 4).ToString());
        Assert.Equal(":0", sm.Apply(Operation.Of("DEL", "k"), 5).ToString());
        Assert.Null(sm.Get(B("k")));
        Assert.Equal(5, sm.LastApplied);
    }

    [Fact]
    public void Apply_OutOfSequence_Throws()
    {
        var sm = new StateMachine();
        sm.Apply(Operation.Of("SET", "a", "1"), 1);
        Assert.Throws<InvalidOperationException>(() => sm.Apply(Operation.Of("SET", "a", "2"), 3));
        Assert.Throws<InvalidOperationException>(() => sm.Apply(Operation.Of("SET", "a", "2"), 1));
    }

    [Fact]
    public void Snapshot_InstalledElsewhere_GivesIdenticalStateAndReplies()
    {
        var primary = new StateMachine();
        primary.Apply(Operation.Of("SET", "a", "1"), 1);
        primary.Apply(Operation.Of("PUTHASH", "a", "2") with { ClientId = 9, RequestSeq = 1 }, 2);
        Snapshot snapshot = primary.CreateSnapshot();
        primary.Apply(Operation.Of("SET", "a", "later"), 3);

        var backup = new StateMachine();
        backup.Install(snapshot);
        Assert.Equal(2, backup.LastApplied);
        Assert.Equal(Fnv1a.PutHashValue(B("1"), B("2")), backup.Get(B("a")));
        Assert.Equal(DuplicateCheck.Duplicate, backup.Duplicates.Check(9, 1, 0, out SavedReply saved));
        Assert.Equal("\"1\"", saved.Reply.ToString());

        backup.Apply(Operation.Of("SET", "a", "later"), 3);
        Assert.Equal(primary.Get(B("a")), backup.Get(B("a")));
    }

    [Fact]
    public void Register_IsAWrite_ThatIssuesTheSameIdsOnEveryCopy()
    {
        var primary = new StateMachine();
        Assert.Equal(":1", primary.Apply(Operation.Of("XCLIENT"), 1).ToString());
        primary.Apply(Operation.Of("SET", "a", "1") with { ClientId = 500, RequestSeq = 1 }, 2);
        var backup = new StateMachine();
        backup.Install(primary.CreateSnapshot());

        Assert.Equal(":501", primary.Apply(Operation.Of("XCLIENT"), 3).ToString());
        Assert.Equal(":501", backup.Apply(Operation.Of("XCLIENT"), 3).ToString());
        Assert.Equal(1, primary.Count);
    }
}
