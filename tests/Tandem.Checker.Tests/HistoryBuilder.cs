using Tandem.Checker;

namespace Tandem.Checker.Tests;

/// <summary>Terse construction of hand-written histories (one key unless given).</summary>
internal sealed class HistoryBuilder
{
    private readonly List<HistoryOp> _ops = [];

    public IReadOnlyList<HistoryOp> Ops => _ops;

    public HistoryBuilder Add(int process, OpKind kind, string input, string? output, long call, long ret,
        Outcome outcome = Outcome.Ok, string key = "k")
    {
        _ops.Add(new HistoryOp(process, kind, key, input, output, call, ret, outcome));
        return this;
    }

    public HistoryBuilder Get(int p, string output, long call, long ret, string key = "k") => Add(p, OpKind.Get, "", output, call, ret, key: key);
    public HistoryBuilder Put(int p, string input, long call, long ret, Outcome outcome = Outcome.Ok, string key = "k") => Add(p, OpKind.Put, input, null, call, ret, outcome, key);
    public HistoryBuilder PutHash(int p, string input, string? old, long call, long ret, Outcome outcome = Outcome.Ok) => Add(p, OpKind.PutHash, input, old, call, ret, outcome);
    public HistoryBuilder Append(int p, string input, string? length, long call, long ret, Outcome outcome = Outcome.Ok) => Add(p, OpKind.Append, input, length, call, ret, outcome);
    public HistoryBuilder Delete(int p, string? result, long call, long ret, Outcome outcome = Outcome.Ok) => Add(p, OpKind.Delete, "", result, call, ret, outcome);

    public HistoryBuilder Incr(int p, string by, string? result, long call, long ret, Outcome outcome = Outcome.Ok) => Add(p, OpKind.Incr, by, result, call, ret, outcome);
    public HistoryBuilder Set(int p, string value, string options, string? result, long call, long ret, Outcome outcome = Outcome.Ok)
    {
        _ops.Add(new HistoryOp(p, OpKind.Set, "k", value, result, call, ret, outcome, options));
        return this;
    }
    public HistoryBuilder GetDel(int p, string? old, long call, long ret, Outcome outcome = Outcome.Ok) => Add(p, OpKind.GetDel, "", old, call, ret, outcome);
    public HistoryBuilder Expire(int p, string options, string? result, long call, long ret, Outcome outcome = Outcome.Ok)
    {
        _ops.Add(new HistoryOp(p, OpKind.Expire, "k", "", result, call, ret, outcome, options));
        return this;
    }
    public HistoryBuilder Persist(int p, string? result, long call, long ret, Outcome outcome = Outcome.Ok) => Add(p, OpKind.Persist, "", result, call, ret, outcome);
    public HistoryBuilder Ttl(int p, string result, long call, long ret) => Add(p, OpKind.Ttl, "", result, call, ret);

    public CheckResult Check() => LinearizabilityChecker.Check(_ops, TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
}
