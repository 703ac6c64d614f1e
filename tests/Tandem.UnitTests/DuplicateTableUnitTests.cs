using Tandem.Protocol;
using Tandem.Storage;

namespace Tandem.UnitTests;

public class DuplicateTableUnitTests
{
    [Fact]
    public void Check_UnknownClient_IsNew()
    {
        var table = new DuplicateTable();
        Assert.Equal(DuplicateCheck.New, table.Check(1, 1, 0, out _));
    }

    [Fact]
    public void Check_AppliedRequest_IsDuplicateWithSavedReply()
    {
        var table = new DuplicateTable();
        table.Record(1, 1, 0, RespValue.Bulk("old"), logSeq: 10);
        Assert.Equal(DuplicateCheck.Duplicate, table.Check(1, 1, 0, out SavedReply saved));
        Assert.Equal("old", saved.Reply.Text);
        Assert.Equal(10, saved.LogSeq);
    }

    [Fact]
    public void Record_ManyInFlight_KeepsEveryReplyAboveAckedThrough()
    {
        var table = new DuplicateTable();
        for (int seq = 1; seq <= 5; seq++) table.Record(1, seq, 0, RespValue.Int(seq), seq);
        for (int seq = 1; seq <= 5; seq++) Assert.Equal(DuplicateCheck.Duplicate, table.Check(1, seq, 0, out _));

        table.Record(1, 6, 3, RespValue.Int(6), 6);
        Assert.Equal(3, table.Clients[1].Replies.Count(r => r.Key >= 4));
        Assert.DoesNotContain(table.Clients[1].Replies.Keys, s => s <= 3);
        Assert.Equal(DuplicateCheck.AlreadyAcknowledged, table.Check(1, 2, 3, out _));
        Assert.Equal(DuplicateCheck.Duplicate, table.Check(1, 5, 3, out _));
    }

    [Fact]
    public void Check_BeyondWindow_IsWindowFull()
    {
        var table = new DuplicateTable(new DuplicateTableOptions { MaxInFlightPerClient = 4 });
        table.Record(1, 1, 0, RespValue.Ok, 1);
        Assert.Equal(DuplicateCheck.New, table.Check(1, 4, 0, out _));
        Assert.Equal(DuplicateCheck.WindowFull, table.Check(1, 5, 0, out _));
        Assert.Equal(DuplicateCheck.New, table.Check(1, 5, 1, out _));
    }

    [Fact]
    public void Record_MoreClientsThanLimit_EvictsLeastRecentlyUsedDeterministically()
    {
        var a = new DuplicateTable(new DuplicateTableOptions { MaxClients = 10 });
        var b = new DuplicateTable(new DuplicateTableOptions { MaxClients = 10 });
        for (int c = 1; c <= 11; c++)
        {
            a.Record(c, 1, 0, RespValue.Ok, c);
            b.Record(c, 1, 0, RespValue.Ok, c);
        }
        Assert.Equal(10, a.ClientCount);
        Assert.False(a.Clients.ContainsKey(1));
        Assert.Equal(a.Clients.Keys.Order(), b.Clients.Keys.Order());
    }

    [Fact]
    public void Clone_IsIndependentOfTheOriginal()
    {
        var table = new DuplicateTable();
        table.Record(1, 1, 0, RespValue.Ok, 1);
        DuplicateTable copy = table.Clone();
        table.Record(1, 2, 1, RespValue.Ok, 2);
        Assert.Equal(DuplicateCheck.Duplicate, copy.Check(1, 1, 0, out _));
        Assert.Equal(DuplicateCheck.New, copy.Check(1, 2, 0, out _));
    }

    [Fact]
    public void Options_OutOfRange_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DuplicateTableOptions { MaxClients = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new DuplicateTableOptions { MaxInFlightPerClient = 0 });
    }
}
