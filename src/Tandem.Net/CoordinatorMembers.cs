namespace Tandem.Net;

/// <summary>
/// The coordinator group's members as a server or a client knows them (<c>--coordinator A,B,C</c>), and which
/// one to ask next: the leader once a member named it (<c>NOTLEADER leader X</c>), else the next member after
/// one that failed. Thread-safe.
/// </summary>
public sealed class CoordinatorMembers
{
    private const string LeaderMarker = "leader ";
    private readonly Lock _lock = new();
    private readonly List<string> _members;
    private int _current;

    /// <summary>Parses <c>HOST:PORT[,HOST:PORT...]</c>; throws <see cref="FormatException"/> on a bad entry.</summary>
    public CoordinatorMembers(string list)
    {
        ArgumentNullException.ThrowIfNull(list);
        _members = Parse(list).ToList();
    }

    /// <summary>Every member given, in order (plus any leader named since that was not among them).</summary>
    public IReadOnlyList<string> All
    {
        get { lock (_lock) return _members.ToArray(); }
    }

    /// <summary>The member to ask now.</summary>
    public string Current
    {
        get { lock (_lock) return _members[_current]; }
    }

    /// <summary>
    /// Parses and checks a member list: one or more <c>HOST:PORT</c> separated by commas; throws
    /// <see cref="FormatException"/> naming the bad entry.
    /// </summary>
    public static IReadOnlyList<string> Parse(string list)
    {
        ArgumentNullException.ThrowIfNull(list);
        string[] entries = list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (entries.Length == 0) throw new FormatException("expected HOST:PORT[,HOST:PORT...]");
        foreach (string entry in entries) RespClientConnection.ParseEndPoint(entry);
        return entries.Distinct(StringComparer.Ordinal).ToArray();
    }

    /// <summary><paramref name="address"/> did not answer: if it is still the current member, move to the next.</summary>
    public void Failed(string address)
    {
        lock (_lock)
        {
            if (_members[_current] == address) _current = (_current + 1) % _members.Count;
        }
    }

    /// <summary>
    /// A member replied <paramref name="error"/>. If it is <c>NOTLEADER leader X</c>, X becomes the current member
    /// (true); if it names no leader, the next member is tried (false).
    /// </summary>
    public bool Redirected(string answeredBy, string error)
    {
        string? leader = LeaderNamedIn(error);
        lock (_lock)
        {
            if (leader is null || leader == answeredBy)
            {
                if (_members[_current] == answeredBy) _current = (_current + 1) % _members.Count;
                return false;
            }
            int at = _members.IndexOf(leader);
            if (at < 0)
            {
                _members.Add(leader);
                at = _members.Count - 1;
            }
            _current = at;
            return true;
        }
    }

    /// <summary>The leader a <c>NOTLEADER leader HOST:PORT</c> reply names, or null.</summary>
    public static string? LeaderNamedIn(string? error)
    {
        int at = error?.IndexOf(LeaderMarker, StringComparison.Ordinal) ?? -1;
        if (at < 0) return null;
        string named = error![(at + LeaderMarker.Length)..].Trim();
        return RespClientConnection.IsEndPoint(named) ? named : null;
    }

    /// <inheritdoc />
    public override string ToString()
    {
        lock (_lock) return string.Join(',', _members);
    }
}
