using System.Text;
using Tandem.Protocol;

namespace Tandem.UnitTests;

public class Fnv1aTests
{
    [Fact]
    public void PutHashValue_OfXb_MatchesReference()
    {
        Assert.Equal("1063475327", Encoding.ASCII.GetString(Fnv1a.PutHashValue("x"u8, "b"u8)));
    }

    [Fact]
    public void PutHashChain_ZeroToNinetyNine_EndsAtReference()
    {
        byte[] value = [];
        for (int i = 0; i < 100; i++)
        {
            value = Fnv1a.PutHashValue(value, Encoding.ASCII.GetBytes(i.ToString()));
            if (i == 0) Assert.Equal("890022063", Encoding.ASCII.GetString(value));
        }
        Assert.Equal("3868028174", Encoding.ASCII.GetString(value));
    }
}
