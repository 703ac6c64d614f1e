using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Tandem.Checker;

/// <summary>
/// The search for one key: depth-first, in the manner of Wing and Gong with just-in-time linearization.
/// Completed operations live in a doubly linked list of call and return events in time order; an operation may be
/// linearized next when its call comes before the first return event still in the list. Operations with an
/// Unknown outcome are kept apart: they may be linearized at any point after their call, or never, so they never
/// block progress and the search succeeds once every completed operation is placed. Completed candidates are tried
/// before unknown ones.
/// </summary>
/// <remarks>
/// Memoization: a configuration is (set of completed ops linearized, key state, set of unknown ops used). Having
/// used fewer unknown ops never hurts (they can still be used later, or never), so a configuration is skipped when
/// one with the same completed set and state and a subset of its unknown ops was already visited.
/// Unknown ops never expire, so they are pruned further (see <see cref="Redundant"/> and <see cref="MayEnable"/>),
/// and the first pass limits runs of consecutive unknown ops; see <see cref="Run()"/>.
/// </remarks>
internal sealed class KeySearch
{
    private const int Head = 0; // sentinel of the event list; events are 1..2n
    private const int MaxStatesShown = 8;
    private const int PrefixShown = 12;
    private const int CandidatesShown = 16;

    private readonly string _key;
    private readonly int _operations;
    private readonly KeyOp[] _ops;       // completed ops, sorted by call; index = bit
    private readonly KeyOp[] _unknowns;  // unknown-outcome ops that change state, sorted by call
    private readonly int[] _evOp;        // event -> op index (>= 0: call, encoded ~op: return)
    private readonly long[] _evTime;
    private readonly int[] _next, _prev;
    private readonly long _deadline;     // Stopwatch timestamp
    private readonly long _maxMemoBytes;
    private readonly CancellationToken _ct;

    // Search state.
    private readonly ulong[] _done;      // completed ops linearized
    private readonly ulong[] _used;      // unknown ops linearized
    private ulong _zobrist;              // hash of _done
    private int _firstHint, _lastHint;   // no word below _firstHint is partly empty; none above _lastHint has a bit set
    private readonly HashSet<Memo> _memo = new(Memo.Comparer.Instance);
    private readonly Memo _probe = new();
    private long _memoBytes;

    // Deepest point reached, for the explanation.
    private int _maxDepth = -1;
    private ulong _maxZobrist;
    private int[] _rec;                  // linearized ops at the deepest point: i (completed) or ~j (unknown)
    private int _recLen, _lowWater;
    private readonly List<KeyState> _recStates = [];

    public KeySearch(string key, List<HistoryOp> history, long deadline, long maxMemoBytes, CancellationToken ct)
    {
        _key = key;
        _operations = history.Count;
        _deadline = deadline;
        _maxMemoBytes = maxMemoBytes;
        _ct = ct;
        var prepared = history.Select(KeyOp.From).ToList();
        _ops = prepared.Where(o => !o.IsUnknown).OrderBy(o => o.Call).ToArray();
        // An unknown read (Get, Ttl) has no effect and no checked output: it can always be left out.
        _unknowns = prepared.Where(o => o.IsUnknown && o.Kind is not (OpKind.Get or OpKind.Ttl)).OrderBy(o => o.Call).ToArray();

        int n = _ops.Length;
        var events = new List<(long Time, int Order, int Code)>(2 * n);
        for (int i = 0; i < n; i++)
        {
            // At equal times calls sort before returns: touching intervals count as concurrent (the lenient reading).
            events.Add((_ops[i].Call, 0, i));
            events.Add((_ops[i].Return, 1, ~i));
        }
        events.Sort((a, b) => a.Time != b.Time ? a.Time.CompareTo(b.Time) : a.Order.CompareTo(b.Order));
        _evOp = new int[2 * n + 1];
        _evTime = new long[2 * n + 1];
        _next = new int[2 * n + 1];
        _prev = new int[2 * n + 1];
        _callEvent = new int[n];
        _returnEvent = new int[n];
        for (int e = 1; e <= 2 * n; e++)
        {
            var (time, _, code) = events[e - 1];
            _evOp[e] = code;
            _evTime[e] = time;
            if (code >= 0) _callEvent[code] = e; else _returnEvent[~code] = e;
        }
        for (int e = 0; e <= 2 * n; e++)
        {
            _next[e] = e == 2 * n ? Head : e + 1;
            _prev[e] = e == 0 ? 2 * n : e - 1;
        }
        _done = new ulong[(n + 63) / 64];
        _used = new ulong[(_unknowns.Length + 63) / 64];
        _rec = new int[Math.Max(16, n + _unknowns.Length)];
    }

    private readonly int[] _callEvent, _returnEvent;

    private struct Frame
    {
        public int Candidate;   // call event (>= 1) of a completed op, or ~j for unknown op j
        public KeyState Previous;
        public long Frontier;   // time of the first return event when the candidate was an unknown op
        public KeyState RunStart;
        public int RunLength;
    }

    /// <summary>
    /// Searches first with runs of at most <see cref="ShortRun"/> consecutive unknown ops, which is quick and finds
    /// a linearization of almost every correct history; only if that fails having cut some longer run short does
    /// it search again without the limit. A found linearization is always valid; a failure is reported only from a
    /// search that cut nothing.
    /// </summary>
    public KeyResult Run()
    {
        if (_unknowns.Length == 0) return Run(int.MaxValue, out _);
        KeyResult first = Run(ShortRun, out bool truncated);
        if (first.Verdict != Verdict.NotLinearizable || !truncated) return first;
        _memo.Clear();
        _memoBytes = 0;
        _zobrist = 0;
        _firstHint = _lastHint = 0;
        _maxDepth = -1;
        _recLen = _lowWater = 0;
        _recStates.Clear();
        return Run(int.MaxValue, out _);
    }

    private const int ShortRun = 2;

    private KeyResult Run(int maxRun, out bool truncated)
    {
        truncated = false;
        int n = _ops.Length;
        var stack = new Frame[n + _unknowns.Length + 1];
        int sp = 0;
        int remaining = n;
        KeyState state = KeyState.Missing;
        bool inList = true;
        int cursor = _next[Head];
        int uj = 0;
        long frontier = 0;
        long steps = 0;
        int runLength = 0;           // unknown ops placed since the last completed one
        KeyState runStart = state;   // the state before the current run of unknown ops
        Remember(state);
        Record(state, 0, stack, 0);

        while (true)
        {
            if (remaining == 0) return new KeyResult(_key, Verdict.Linearizable, _operations, null);
            if ((++steps & 1023) == 0)
            {
                _ct.ThrowIfCancellationRequested();
                if (Stopwatch.GetTimestamp() > _deadline) return OutOfBudget($"the time budget ran out after {steps} search steps");
                if (_memoBytes > _maxMemoBytes) return OutOfBudget($"the memo grew past {_maxMemoBytes >> 20} MiB after {steps} search steps");
            }

            int candidate;
            if (inList)
            {
                if (cursor != Head && _evOp[cursor] >= 0)
                {
                    candidate = cursor;
                    cursor = _next[cursor];
                }
                else
                {
                    frontier = cursor == Head ? long.MaxValue : _evTime[cursor];
                    inList = false;
                    uj = 0;
                    continue;
                }
            }
            else
            {
                while (uj < _unknowns.Length && IsSet(_used, uj)) uj++;
                if (uj < _unknowns.Length && _unknowns[uj].Call <= frontier)
                {
                    candidate = ~uj;
                    uj++;
                }
                else
                {
                    if (sp == 0) return Violation();
                    Frame f = stack[--sp];
                    _lowWater = Math.Min(_lowWater, sp);
                    state = f.Previous;
                    runLength = f.RunLength;
                    runStart = f.RunStart;
                    if (f.Candidate >= 0)
                    {
                        int i = _evOp[f.Candidate];
                        Unlift(i);
                        FlipDone(i);
                        _zobrist ^= Zobrist(i);
                        remaining++;
                        inList = true;
                        cursor = _next[f.Candidate];
                    }
                    else
                    {
                        Flip(_used, ~f.Candidate);
                        inList = false;
                        uj = ~f.Candidate + 1;
                        frontier = f.Frontier;
                    }
                    continue;
                }
            }

            bool completed = candidate >= 0;
            int index = completed ? _evOp[candidate] : ~candidate;
            KeyOp op = completed ? _ops[index] : _unknowns[index];
            if (!KeyModel.Step(op, state, out KeyState next)) continue;
            if (runLength > 0 && Redundant(op, completed, runStart, next)) continue;
            if (!completed && !MayEnable(next, index, frontier)) continue;
            if (!completed && runLength >= maxRun) { truncated = true; continue; }
            if (completed) { FlipDone(index); _zobrist ^= Zobrist(index); }
            else Flip(_used, index);
            if (!Remember(next))
            {
                if (completed) { FlipDone(index); _zobrist ^= Zobrist(index); }
                else Flip(_used, index);
                continue;
            }
            stack[sp++] = new Frame { Candidate = candidate, Previous = state, Frontier = frontier, RunStart = runStart, RunLength = runLength };
            if (!completed && runLength == 0) runStart = state;
            runLength = completed ? 0 : runLength + 1;
            state = next;
            if (completed) { Lift(index); remaining--; }
            Record(state, n - remaining, stack, sp);
            inList = true;
            cursor = _next[Head];
        }
    }

    /// <summary>
    /// Pruning of runs of unknown ops (a run: unknown ops placed one after another, starting from state
    /// <paramref name="runStart"/>). Each rule skips an order for which another order reaches the same
    /// configuration, or one that has used fewer unknown ops, so nothing reachable is lost:
    /// <list type="bullet">
    /// <item>an unknown op that overwrites (<see cref="KeyOp.Overwrites"/>: Put, Delete, GetDel, Set without NX, XX or
    /// KEEPTTL) inside a run: it overwrites the whole run, which could have been left out;</item>
    /// <item>a completed read (Get, Ttl) right after a run that it also fits before the run: place it first, then the run;</item>
    /// <item>a completed op right after a run that fits before the run and leaves the same state either way (Put,
    /// Delete with the same answer): the run could have been left out.</item>
    /// </list>
    /// </summary>
    private static bool Redundant(KeyOp op, bool completed, in KeyState runStart, in KeyState next)
    {
        if (!completed) return op.Overwrites;
        if (!KeyModel.Step(op, runStart, out KeyState without)) return false;
        return op.Kind is OpKind.Get or OpKind.Ttl || without == next;
    }


    /// <summary>
    /// A run of unknown ops is only worth placing if a completed op that could come next (a candidate now) will
    /// accept the state at its end. This over-approximates, from state <paramref name="x"/> (just after an unknown op,
    /// so the rest of the run has no op that overwrites) and the unknown ops still available (other than
    /// <paramref name="exclude"/>), whether some candidate could be satisfied.
    /// </summary>
    private bool MayEnable(in KeyState x, int exclude, long frontier)
    {
        for (int e = _next[Head]; e != Head && _evOp[e] >= 0; e = _next[e])
        {
            if (CanReach(_ops[_evOp[e]], x, exclude, frontier)) return true;
        }
        return false;
    }

    private bool CanReach(KeyOp o, in KeyState x, int exclude, long frontier)
    {
        switch (o.Kind)
        {
            case OpKind.Put:
                return false; // fits before the run too, same state: the run is redundant
            case OpKind.Get:
            case OpKind.PutHash:
            {
                if (o.Output is null) return o.Kind == OpKind.PutHash;
                string v = o.Output;
                if (string.Equals(x.Value, v, StringComparison.Ordinal)) return true;
                bool decimalValue = v.Length is > 0 and <= 10 && v.All(char.IsAsciiDigit);
                for (int j = 0; j < _unknowns.Length && _unknowns[j].Call <= frontier; j++)
                {
                    if (j == exclude || IsSet(_used, j)) continue;
                    KeyOp u = _unknowns[j];
                    // Ops that overwrite cannot come later in this run (they are only placed first in a run); Expire and
                    // Persist leave the value as it is.
                    bool produces = u.Kind switch
                    {
                        OpKind.PutHash => decimalValue,
                        OpKind.Append => v.EndsWith(u.Input, StringComparison.Ordinal),
                        OpKind.Incr => KeyModel.TryParseRedisInteger(v, out _),
                        OpKind.Set => string.Equals(v, u.Input, StringComparison.Ordinal),
                        _ => false,
                    };
                    if (produces) return true;
                }
                return false;
            }
            case OpKind.Append:
            {
                if (o.Output is null) return true;
                long target = o.OutputNumber - o.InputBytes; // bytes needed before it
                if (target < 0) return false;
                if (x.Bytes == target) return true;
                long appendable = 0;
                bool putHash = false;
                for (int j = 0; j < _unknowns.Length && _unknowns[j].Call <= frontier; j++)
                {
                    if (j == exclude || IsSet(_used, j)) continue;
                    KeyOp u = _unknowns[j];
                    if (u.Kind == OpKind.Append) appendable += u.InputBytes;
                    else if (u.Kind == OpKind.PutHash) putHash = true; // leaves 1 to 10 bytes
                    else if (u.Kind is OpKind.Set or OpKind.Incr) return true; // any length: not worth bounding
                }
                return (target > x.Bytes && target <= x.Bytes + appendable) || (putHash && target >= 1 && target <= 10 + appendable);
            }
            case OpKind.Delete:
            {
                if (o.Output is null) return false; // fits before the run too, same state
                bool wantPresent = o.OutputNumber == 1;
                if (o.OutputNumber is not (0 or 1)) return false;
                if (x.Present == wantPresent) return true;
                if (!wantPresent) return false; // only a Delete could remove it, and a Delete is never placed mid-run
                for (int j = 0; j < _unknowns.Length && _unknowns[j].Call <= frontier; j++)
                {
                    if (j == exclude || IsSet(_used, j)) continue;
                    if (_unknowns[j].Kind is OpKind.Append or OpKind.PutHash or OpKind.Incr or OpKind.Set) return true;
                }
                return false;
            }
            default:
                return true;
        }
    }

    private void Lift(int i)
    {
        int c = _callEvent[i], r = _returnEvent[i];
        _next[_prev[c]] = _next[c]; _prev[_next[c]] = _prev[c];
        _next[_prev[r]] = _next[r]; _prev[_next[r]] = _prev[r];
    }

    private void Unlift(int i)
    {
        int c = _callEvent[i], r = _returnEvent[i];
        _next[_prev[r]] = r; _prev[_next[r]] = r;
        _next[_prev[c]] = c; _prev[_next[c]] = c;
    }

    private void FlipDone(int i)
    {
        int w = i >> 6;
        _done[w] ^= 1UL << i;
        if (w < _firstHint) _firstHint = w;
        if (w > _lastHint) _lastHint = w;
    }

    private static bool IsSet(ulong[] bits, int i) => (bits[i >> 6] & (1UL << i)) != 0;
    private static void Flip(ulong[] bits, int i) => bits[i >> 6] ^= 1UL << i;

    private static ulong Zobrist(int i)
    {
        ulong z = (ulong)i * 0x9E3779B97F4A7C15UL + 0x632BE59BD9B4E019UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Adds the current configuration with state <paramref name="s"/>; false if it (or a better one) was seen.</summary>
    private bool Remember(in KeyState s)
    {
        // Canonical window of _done: words below are all ones, words above all zeros.
        int first = _firstHint;
        while (first < _done.Length && _done[first] == ulong.MaxValue) first++;
        _firstHint = first;
        int last = Math.Min(_lastHint, _done.Length - 1);
        while (last >= first && _done[last] == 0) last--;
        _lastHint = Math.Max(last, 0);
        _probe.Words = _done;
        _probe.Start = first;
        _probe.Offset = first;
        _probe.Count = last - first + 1;
        _probe.Present = s.Present;
        _probe.HasTtl = s.HasTtl;
        _probe.Value = s.Value;
        _probe.Hash = HashCode.Combine(_zobrist, s.Present, s.HasTtl, s.Value);

        if (_memo.TryGetValue(_probe, out Memo? seen))
        {
            if (_used.Length == 0) return false;
            foreach (ulong[] other in seen.UnknownSets!)
            {
                if (IsSubset(other, _used)) return false;
            }
            seen.UnknownSets!.RemoveAll(other => IsSubset(_used, other));
            seen.UnknownSets.Add((ulong[])_used.Clone());
            _memoBytes += 32 + 8L * _used.Length;
            return true;
        }
        var stored = new Memo
        {
            Words = _done.AsSpan(first, _probe.Count).ToArray(),
            Start = 0,
            Offset = first,
            Count = _probe.Count,
            Present = s.Present,
            HasTtl = s.HasTtl,
            Value = s.Value,
            Hash = _probe.Hash,
            UnknownSets = _used.Length == 0 ? null : [(ulong[])_used.Clone()],
        };
        _memo.Add(stored);
        _memoBytes += 120 + 8L * stored.Count + (_used.Length == 0 ? 0 : 64 + 8L * _used.Length);
        return true;
    }

    private static bool IsSubset(ulong[] a, ulong[] b)
    {
        for (int w = 0; w < a.Length; w++)
        {
            if ((a[w] & ~b[w]) != 0) return false;
        }
        return true;
    }

    private void Record(in KeyState s, int depth, Frame[] stack, int sp)
    {
        if (depth > _maxDepth)
        {
            for (int k = _lowWater; k < sp; k++)
            {
                int c = stack[k].Candidate;
                _rec[k] = c >= 0 ? _evOp[c] : c;
            }
            _recLen = sp;
            _lowWater = sp;
            _maxDepth = depth;
            _maxZobrist = _zobrist;
            _recStates.Clear();
            _recStates.Add(s);
        }
        else if (depth == _maxDepth && _zobrist == _maxZobrist && _recStates.Count < MaxStatesShown && !_recStates.Contains(s))
        {
            _recStates.Add(s);
        }
    }

    private KeyResult OutOfBudget(string why)
    {
        string text = $"key {KeyState.Quote(_key)}: undecided: {why}; deepest point: {_maxDepth} of {_ops.Length} completed operations linearized " +
            $"({_unknowns.Length} unknown-outcome writes, {_memo.Count} configurations memoized).";
        return new KeyResult(_key, Verdict.Unknown, _operations, text);
    }

    private KeyResult Violation()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture,
            $"key {KeyState.Quote(_key)}: not linearizable. Longest linearizable prefix: {_maxDepth} of {_ops.Length} completed operations");
        int unknownUsed = 0;
        for (int k = 0; k < _recLen; k++) if (_rec[k] < 0) unknownUsed++;
        if (unknownUsed > 0) sb.Append(CultureInfo.InvariantCulture, $" (plus {unknownUsed} unknown-outcome writes)");
        sb.Append(_recLen > PrefixShown ? $"; its last {PrefixShown}:" : ":").Append('\n');
        if (_recLen == 0) sb.Append("  (empty)\n");
        for (int k = Math.Max(0, _recLen - PrefixShown); k < _recLen; k++)
        {
            int code = _rec[k];
            sb.Append("  ").Append(Describe(code >= 0 ? _ops[code] : _unknowns[~code])).Append('\n');
        }

        sb.Append(_recStates.Count == 1 ? "State reachable after it: " : "States reachable after it: ");
        sb.Append(string.Join(", ", _recStates.Select(s => s.ToString()))).Append('\n');

        // Pending completed ops: the ones not in the prefix. Those called before the earliest pending return are
        // the only ones that could come next; none of them leads to a full linearization.
        var inPrefix = new bool[_ops.Length];
        var usedUnknown = new bool[_unknowns.Length];
        for (int k = 0; k < _recLen; k++)
        {
            if (_rec[k] >= 0) inPrefix[_rec[k]] = true; else usedUnknown[~_rec[k]] = true;
        }
        long deadline = long.MaxValue;
        int blocking = -1;
        for (int i = 0; i < _ops.Length; i++)
        {
            if (!inPrefix[i] && _ops[i].Return < deadline) { deadline = _ops[i].Return; blocking = i; }
        }
        if (blocking >= 0)
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"Could not place next (called before the earliest pending return, {deadline}, of {Label(_ops[blocking])}):\n");
            int shown = 0;
            for (int i = 0; i < _ops.Length && shown < CandidatesShown; i++)
            {
                if (inPrefix[i] || _ops[i].Call > deadline) continue;
                shown++;
                sb.Append("  ").Append(Describe(_ops[i])).Append(": ").Append(WhyNot(_ops[i])).Append('\n');
            }
        }
        int available = 0;
        for (int j = 0; j < _unknowns.Length; j++) if (!usedUnknown[j] && _unknowns[j].Call <= deadline) available++;
        if (available > 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{available} unknown-outcome writes could also have been placed there; no choice of them helps.\n");
        }
        return new KeyResult(_key, Verdict.NotLinearizable, _operations, sb.ToString().TrimEnd('\n'));
    }

    private string WhyNot(KeyOp op)
    {
        var expected = new List<string>();
        foreach (KeyState s in _recStates)
        {
            if (KeyModel.Step(op, s, out _)) return "fits the model here, but no continuation after it works";
            expected.Add(KeyModel.ExpectedOutput(op, s));
        }
        return "the model would return " + string.Join(" or ", expected.Distinct());
    }

    internal static string Label(KeyOp op) => Label(op.Source);

    internal static string Label(HistoryOp op)
    {
        string input = KeyState.Quote(op.Input ?? "");
        bool valueOutput = op.Kind is OpKind.Get or OpKind.PutHash or OpKind.GetDel || (op.Kind == OpKind.Set && op.Options.Contains("GET", StringComparison.OrdinalIgnoreCase));
        string output = op.Output is null ? "?" : valueOutput ? KeyState.Quote(op.Output) : op.Output;
        string options = string.IsNullOrEmpty(op.Options) ? "" : " " + op.Options;
        string call = op.Kind switch
        {
            OpKind.Get or OpKind.Delete or OpKind.GetDel or OpKind.Persist or OpKind.Ttl => $"{op.Kind}()",
            OpKind.Incr => $"Incr({op.Input})",
            OpKind.Expire => $"Expire({options.Trim()})",
            _ => $"{op.Kind}({input}{options})",
        };
        return op.Kind == OpKind.Put || op.Outcome != Outcome.Ok ? call : $"{call} -> {output}";
    }

    private static string Describe(KeyOp op)
    {
        HistoryOp h = op.Source;
        string ret = h.Outcome == Outcome.Unknown ? "unknown outcome" : $"return {h.Return}";
        return $"p{h.Process} {Label(h)} [call {h.Call}, {ret}]";
    }

    private sealed class Memo
    {
        public ulong[] Words = [];
        public int Start, Offset, Count;
        public bool Present;
        public bool HasTtl;
        public string Value = "";
        public int Hash;
        public List<ulong[]>? UnknownSets;

        public sealed class Comparer : IEqualityComparer<Memo>
        {
            public static readonly Comparer Instance = new();

            public bool Equals(Memo? a, Memo? b) =>
                a is not null && b is not null && a.Hash == b.Hash && a.Offset == b.Offset && a.Count == b.Count &&
                a.Present == b.Present && a.HasTtl == b.HasTtl && string.Equals(a.Value, b.Value, StringComparison.Ordinal) &&
                a.Words.AsSpan(a.Start, a.Count).SequenceEqual(b.Words.AsSpan(b.Start, b.Count));

            public int GetHashCode(Memo m) => m.Hash;
        }
    }
}
