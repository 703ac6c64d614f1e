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
    public void Record_MoreClientsThanLimit_DropsTheLowestIds_AndRaisesTheFloor()
    {
        var table = new DuplicateTable(new DuplicateTableOptions { MaxClients = 10 });
        foreach (long c in new long[] { 50, 3, 40, 7, 30, 1, 20, 9, 10, 60 }) table.Record(c, 1, 0, RespValue.Ok, c);
        Assert.Equal(0, table.Floor);
        table.Record(70, 1, 0, RespValue.Ok, 11);

        Assert.Equal(9, table.ClientCount); // down to 90% of the bound
        Assert.Equal(3, table.Floor);
        Assert.False(table.Clients.ContainsKey(1));
        Assert.False(table.Clients.ContainsKey(3));
        Assert.All(table.Clients.Keys, id => Assert.True(id > table.Floor));
    }

    [Fact]
    public void Check_AbsentIdAtOrBelowTheFloor_IsSessionExpired_AndAboveItIsNew()
    {
        var table = new DuplicateTable(new DuplicateTableOptions { MaxClients = 2 });
        table.Record(5, 1, 0, RespValue.Int(1), 1);
        table.Record(8, 1, 0, RespValue.Ok, 2);
        table.Record(12, 1, 0, RespValue.Ok, 3); // drops 5 and 8

        Assert.Equal(8, table.Floor);
        Assert.Equal(DuplicateCheck.SessionExpired, table.Check(5, 1, 0, out _)); // the dropped retry
        Assert.Equal(DuplicateCheck.SessionExpired, table.Check(8, 2, 1, out _));
        Assert.Equal(DuplicateCheck.SessionExpired, table.Check(6, 1, 0, out _)); // never seen, but may have been
        Assert.Equal(DuplicateCheck.New, table.Check(9, 1, 0, out _));
        Assert.Equal(DuplicateCheck.Duplicate, table.Check(12, 1, 0, out _));
    }

    [Fact]
    public void Register_IssuesIdsAboveEveryIdSeenAndTheFloor()
    {
        var table = new DuplicateTable(new DuplicateTableOptions { MaxClients = 1 });
        Assert.Equal(1, table.Register());
        Assert.Equal(2, table.Register());
        table.Record(100, 1, 0, RespValue.Ok, 1);
        Assert.Equal(100, table.HighestId);
        Assert.Equal(101, table.Register());
        table.Record(101, 1, 0, RespValue.Ok, 2); // drops 100 and 101: MaxClients 1 evicts down to 0
        Assert.Equal(101, table.Floor);
        long next = table.Register();
        Assert.Equal(102, next);
        Assert.Equal(DuplicateCheck.New, table.Check(next, 1, 0, out _));
    }

    [Fact]
    public void Record_OverTheByteBound_DropsSessions_AndTracksBytesIncrementally()
    {
        var table = new DuplicateTable(new DuplicateTableOptions { MaxBytes = 10_000 });
        byte[] big = new byte[3_000];
        table.Record(1, 1, 0, RespValue.Bulk(big), 1);
        table.Record(2, 1, 0, RespValue.Bulk(big), 2);
        table.Record(3, 1, 0, RespValue.Bulk(big), 3);
        Assert.Equal(3, table.ClientCount);
        long expected = 3 * (DuplicateTable.SessionOverheadBytes + DuplicateTable.ReplyBytes(RespValue.Bulk(big)));
        Assert.Equal(expected, table.Bytes);

        table.Record(4, 1, 0, RespValue.Bulk(big), 4); // over 10,000: drop the lowest ids until at most 9,000
        Assert.True(table.Bytes <= 9_000, $"{table.Bytes} bytes kept");
        Assert.Equal([3L, 4L], table.Clients.Keys.Order());
        Assert.Equal(2, table.Floor);
        Assert.Equal(table.Clients.Values.Sum(s => s.Bytes), table.Bytes);

        // Acknowledged replies stop counting.
        table.Record(4, 2, 1, RespValue.Ok, 5);
        Assert.Equal(table.Clients.Values.Sum(s => DuplicateTable.SessionOverheadBytes + s.Replies.Values.Sum(r => DuplicateTable.ReplyBytes(r.Reply))), table.Bytes);
        Assert.True(table.Bytes < 5_000);
    }

    [Fact]
    public void TwoTables_GivenTheSameWrites_Agree()
    {
        var options = new DuplicateTableOptions { MaxClients = 16, MaxBytes = 20_000 };
        var a = new DuplicateTable(options);
        var b = new DuplicateTable(options);
        var rng = new Random(7);
        for (int i = 1; i <= 2_000; i++)
        {
            long client;
            if (rng.Next(3) == 0)
            {
                client = a.Register();
                Assert.Equal(client, b.Register());
            }
            else client = rng.Next(1, 400);
            RespValue reply = RespValue.Bulk(new byte[rng.Next(0, 2_000)]);
            DuplicateCheck check = a.Check(client, 1, 0, out _);
            Assert.Equal(check, b.Check(client, 1, 0, out _));
            if (check != DuplicateCheck.New) continue;
            a.Record(client, 1, 0, reply, i);
            b.Record(client, 1, 0, reply, i);
        }
        Assert.True(a.Floor > 0);
        Assert.Equal(a.Floor, b.Floor);
        Assert.Equal(a.HighestId, b.HighestId);
        Assert.Equal(a.Bytes, b.Bytes);
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
    public void Clone_AndRestore_KeepFloorHighestIdAndBytes()
    {
        var table = new DuplicateTable(new DuplicateTableOptions { MaxClients = 2 });
        for (long c = 1; c <= 3; c++) table.Record(c, 1, 0, RespValue.Bulk("reply"), c);
        table.Register();
        DuplicateTable copy = table.Clone();
        Assert.Equal((table.Floor, table.HighestId, table.Bytes), (copy.Floor, copy.HighestId, copy.Bytes));

        // As the backup rebuilds it from DUPS and END parts (a session may come in several parts).
        var rebuilt = new DuplicateTable(new DuplicateTableOptions { MaxClients = 2 });
        foreach ((long id, DuplicateTable.ClientSession s) in table.Clients)
        {
            foreach ((long seq, SavedReply r) in s.Replies)
            {
                DuplicateTable.ClientSession part = DuplicateTable.NewSession(s.AckedThrough);
                part.Replies[seq] = r;
                rebuilt.Restore(id, part);
            }
        }
        rebuilt.RestoreMarks(table.Floor, table.HighestId);
        Assert.Equal((table.Floor, table.HighestId, table.Bytes, table.ClientCount), (rebuilt.Floor, rebuilt.HighestId, rebuilt.Bytes, rebuilt.ClientCount));
        Assert.Equal(DuplicateCheck.SessionExpired, rebuilt.Check(1, 1, 0, out _));
        Assert.Equal(table.Register(), rebuilt.Register());
    }

    [Fact]
    public void Options_OutOfRange_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DuplicateTableOptions { MaxClients = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new DuplicateTableOptions { MaxInFlightPerClient = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new DuplicateTableOptions { MaxBytes = 0 });
        Assert.Equal(256L * 1024 * 1024, new DuplicateTableOptions().MaxBytes);
    }
}
