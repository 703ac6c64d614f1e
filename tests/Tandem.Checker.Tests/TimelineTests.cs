using Tandem.Checker;

namespace Tandem.Checker.Tests;

public class TimelineTests
{
    [Fact]
    public void WriteTimelineHtml_WritesTheKeyAndOpLabels()
    {
        var ops = new HistoryBuilder()
            .Put(1, "alpha", 0, 10)
            .Get(2, "alpha", 5, 20)
            .Append(3, "<b>", null, 8, 0, Outcome.Unknown)
            .Put(1, "beta", 30, 40, Outcome.Failed)
            .Put(1, "elsewhere", 0, 10, key: "other")
            .Ops;
        string path = Path.Combine(Path.GetTempPath(), $"tandem-timeline-{Guid.NewGuid():N}.html");
        try
        {
            LinearizabilityChecker.WriteTimelineHtml(ops, "k", path);
            string html = File.ReadAllText(path);
            Assert.StartsWith("<!DOCTYPE html>", html, StringComparison.Ordinal);
            Assert.Contains("<svg", html, StringComparison.Ordinal);
            Assert.Contains("Key k", html, StringComparison.Ordinal);
            Assert.Contains("Put alpha", html, StringComparison.Ordinal);
            Assert.Contains("Get → alpha", html, StringComparison.Ordinal);
            Assert.Contains("Append &lt;b&gt;", html, StringComparison.Ordinal); // escaped
            Assert.Contains("(unknown)", html, StringComparison.Ordinal);
            Assert.Contains("(failed)", html, StringComparison.Ordinal);
            Assert.Contains("process 3", html, StringComparison.Ordinal);
            Assert.DoesNotContain("elsewhere", html, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void WriteTimelineHtml_ForAKeyWithNoOps_SaysSo()
    {
        string path = Path.Combine(Path.GetTempPath(), $"tandem-timeline-{Guid.NewGuid():N}.html");
        try
        {
            LinearizabilityChecker.WriteTimelineHtml([], "missing", path);
            Assert.Contains("No operations", File.ReadAllText(path), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
