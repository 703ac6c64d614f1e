using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Tandem.Protocol;

namespace Tandem.Net;

/// <summary>
/// Channels and patterns that connections subscribe to (<c>SUBSCRIBE</c>, <c>PSUBSCRIBE</c>), and the messages
/// published to them. A message is queued on each subscribed connection and written by that connection's read loop,
/// between batches of replies, so a push never interleaves with a reply on the wire. Thread-safe.
/// </summary>
public sealed class PubSubHub
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, HashSet<PushChannel>> _channels = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<PushChannel>> _patterns = new(StringComparer.Ordinal);

    /// <summary>
    /// Most bytes of messages one connection may have queued and not yet written (a client that does not read):
    /// past it the connection is closed, as Redis closes a subscriber past its output buffer limit. 8 MiB.
    /// </summary>
    public const long MaxQueuedBytes = 8L * 1024 * 1024;

    /// <summary>Queues <paramref name="message"/> for every connection subscribed to <paramref name="channel"/> or to a matching pattern.</summary>
    /// <returns>How many deliveries were queued (a connection subscribed both ways counts twice, as in Redis).</returns>
    public int Publish(string channel, string message)
    {
        ArgumentNullException.ThrowIfNull(channel);
        ArgumentNullException.ThrowIfNull(message);
        RespValue channelBulk = RespValue.Bulk(channel);
        RespValue messageBulk = RespValue.Bulk(message);
        int delivered = 0;
        lock (_lock)
        {
            if (_channels.TryGetValue(channel, out HashSet<PushChannel>? direct))
            {
                RespValue push = RespValue.Array([Kinds.Message, channelBulk, messageBulk]);
                foreach (PushChannel subscriber in direct) subscriber.EnqueueLocked(push);
                delivered += direct.Count;
            }
            foreach ((string pattern, HashSet<PushChannel> subscribers) in _patterns)
            {
                if (!Glob.Match(pattern, channel)) continue;
                RespValue push = RespValue.Array([Kinds.PMessage, RespValue.Bulk(pattern), channelBulk, messageBulk]);
                foreach (PushChannel subscriber in subscribers) subscriber.EnqueueLocked(push);
                delivered += subscribers.Count;
            }
        }
        return delivered;
    }

    /// <summary>Connections subscribed to <paramref name="channel"/> by name (not by pattern).</summary>
    public int SubscriberCount(string channel)
    {
        lock (_lock) return _channels.TryGetValue(channel, out HashSet<PushChannel>? set) ? set.Count : 0;
    }

    internal PushChannel Open(ConnectionContext connection, PipeReader input) => new(this, connection, input);

    internal RespValue Subscribe(PushChannel subscriber, RespCommand command, bool pattern)
    {
        var replies = new RespValue[command.Count - 1];
        lock (_lock)
        {
            Dictionary<string, HashSet<PushChannel>> index = pattern ? _patterns : _channels;
            HashSet<string> mine = pattern ? subscriber.Patterns : subscriber.Channels;
            for (int i = 1; i < command.Count; i++)
            {
                string name = command.Text(i);
                if (mine.Add(name))
                {
                    if (!index.TryGetValue(name, out HashSet<PushChannel>? set)) index[name] = set = [];
                    set.Add(subscriber);
                }
                replies[i - 1] = RespValue.Array([pattern ? Kinds.PSubscribe : Kinds.Subscribe, RespValue.Bulk(command[i]), RespValue.Int(subscriber.CountLocked)]);
            }
        }
        return RespConnectionHandler.Frames(replies);
    }

    internal RespValue Unsubscribe(PushChannel subscriber, RespCommand command, bool pattern)
    {
        RespValue kind = pattern ? Kinds.PUnsubscribe : Kinds.Unsubscribe;
        var replies = new List<RespValue>();
        lock (_lock)
        {
            HashSet<string> mine = pattern ? subscriber.Patterns : subscriber.Channels;
            string[] names = command.Count > 1 ? Enumerable.Range(1, command.Count - 1).Select(command.Text).ToArray() : mine.ToArray();
            foreach (string name in names)
            {
                if (mine.Remove(name)) RemoveLocked(pattern ? _patterns : _channels, name, subscriber);
                replies.Add(RespValue.Array([kind, RespValue.Bulk(name), RespValue.Int(subscriber.CountLocked)]));
            }
            // Redis answers an unsubscribe from nothing with one reply naming no channel.
            if (replies.Count == 0) replies.Add(RespValue.Array([kind, RespValue.NullBulk, RespValue.Int(subscriber.CountLocked)]));
        }
        return RespConnectionHandler.Frames([.. replies]);
    }

    internal void Close(PushChannel subscriber)
    {
        lock (_lock)
        {
            foreach (string name in subscriber.Channels) RemoveLocked(_channels, name, subscriber);
            foreach (string name in subscriber.Patterns) RemoveLocked(_patterns, name, subscriber);
            subscriber.Channels.Clear();
            subscriber.Patterns.Clear();
            subscriber.ClearLocked();
        }
    }

    internal bool IsSubscribed(PushChannel subscriber)
    {
        lock (_lock) return subscriber.CountLocked > 0;
    }

    internal RespValue[] TakePending(PushChannel subscriber)
    {
        lock (_lock) return subscriber.TakeLocked();
    }

    private static void RemoveLocked(Dictionary<string, HashSet<PushChannel>> index, string name, PushChannel subscriber)
    {
        if (!index.TryGetValue(name, out HashSet<PushChannel>? set)) return;
        set.Remove(subscriber);
        if (set.Count == 0) index.Remove(name);
    }

    private static class Kinds
    {
        public static readonly RespValue Subscribe = RespValue.Bulk("subscribe");
        public static readonly RespValue PSubscribe = RespValue.Bulk("psubscribe");
        public static readonly RespValue Unsubscribe = RespValue.Bulk("unsubscribe");
        public static readonly RespValue PUnsubscribe = RespValue.Bulk("punsubscribe");
        public static readonly RespValue Message = RespValue.Bulk("message");
        public static readonly RespValue PMessage = RespValue.Bulk("pmessage");
    }
}

/// <summary>
/// One connection's subscriptions and the messages queued for it. Its state is guarded by its hub's lock; only the
/// connection's read loop takes messages out and writes them.
/// </summary>
internal sealed class PushChannel(PubSubHub hub, ConnectionContext connection, PipeReader input)
{
    private Queue<RespValue> _pending = new();
    private long _pendingBytes;
    private volatile bool _woken;

    public PubSubHub Hub => hub;

    public HashSet<string> Channels { get; } = new(StringComparer.Ordinal);

    public HashSet<string> Patterns { get; } = new(StringComparer.Ordinal);

    public int CountLocked => Channels.Count + Patterns.Count;

    /// <summary>True once a message woke the read loop: a cancelled read may be this channel's doing.</summary>
    public bool MayHaveWoken => _woken;

    public void EnqueueLocked(RespValue push)
    {
        _pending.Enqueue(push);
        _pendingBytes += 64 + push.Items!.Sum(i => (long)i.Payload.Length);
        if (_pendingBytes > PubSubHub.MaxQueuedBytes)
        {
            _pending.Clear();
            // Not under the hub's lock: closing runs the connection's clean-up, which takes it.
            ThreadPool.UnsafeQueueUserWorkItem(static c => c.Abort(new ConnectionAbortedException(
                $"the subscriber did not read {PubSubHub.MaxQueuedBytes} bytes of messages")), connection, preferLocal: false);
            return;
        }
        _woken = true;
        try
        {
            input.CancelPendingRead(); // wake the read loop, which writes the message between batches of replies
        }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
        {
            // The connection is finishing.
        }
    }

    public RespValue[] TakeLocked()
    {
        if (_pending.Count == 0) return [];
        RespValue[] taken = _pending.ToArray();
        _pending = new Queue<RespValue>();
        _pendingBytes = 0;
        return taken;
    }

    public void ClearLocked()
    {
        _pending.Clear();
        _pendingBytes = 0;
    }
}

public abstract partial class RespConnectionHandler
{
    /// <summary>Marks a reply made of several top-level frames (a <c>SUBSCRIBE</c> of several channels): its first item.</summary>
    private static readonly RespValue FramesMarker = RespValue.Simple("frames");

    private static readonly RespValue SubscribedPong = RespValue.Bulk("pong");

    private PubSubHub? _pubSub;

    /// <summary>The channels this node's connections subscribe to; null until <see cref="AddPubSubCommands"/>.</summary>
    protected PubSubHub? PubSub => _pubSub;

    /// <summary>
    /// Adds <c>SUBSCRIBE</c>, <c>PSUBSCRIBE</c>, <c>UNSUBSCRIBE</c>, <c>PUNSUBSCRIBE</c> and <c>RESET</c> over
    /// <paramref name="hub"/>, with Redis's replies: one confirmation array per channel, then <c>message</c> and
    /// <c>pmessage</c> arrays as they are published. A subscribed connection may run only those commands,
    /// <c>PING</c> (answered <c>["pong", msg]</c>) and <c>QUIT</c>; a handler that overrides
    /// <see cref="ExecuteAsync"/> calls <see cref="SubscribedContextReply"/> first to get that rule.
    /// </summary>
    protected void AddPubSubCommands(PubSubHub hub)
    {
        ArgumentNullException.ThrowIfNull(hub);
        _pubSub = hub;
        Table.Add("SUBSCRIBE", -2, CommandFlags.Fast, (command, connection) => new(Subscription(command, connection, hub, subscribe: true, pattern: false)));
        Table.Add("PSUBSCRIBE", -2, CommandFlags.Fast, (command, connection) => new(Subscription(command, connection, hub, subscribe: true, pattern: true)));
        Table.Add("UNSUBSCRIBE", -1, CommandFlags.Fast, (command, connection) => new(Subscription(command, connection, hub, subscribe: false, pattern: false)));
        Table.Add("PUNSUBSCRIBE", -1, CommandFlags.Fast, (command, connection) => new(Subscription(command, connection, hub, subscribe: false, pattern: true)));
        Table.Add("RESET", 1, CommandFlags.Fast, (_, connection) =>
        {
            if (ChannelOf(connection) is { } channel) hub.Close(channel);
            return new(RespValue.Simple("RESET"));
        });
    }

    /// <summary>
    /// The reply a subscribed connection gets instead of running <paramref name="command"/>, as Redis 7 gives it
    /// (RESP2): <c>PING</c> answers <c>["pong", msg]</c>, anything but the subscription commands, <c>QUIT</c> and
    /// <c>RESET</c> an error; null when the command runs as usual (the connection is not subscribed, or the command
    /// is allowed).
    /// </summary>
    protected RespValue? SubscribedContextReply(RespCommand command, CommandSpec<CommandHandler>? spec, ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (_pubSub is null || spec is null || ChannelOf(connection) is not { } channel || !_pubSub.IsSubscribed(channel)) return null;
        switch (spec.Name)
        {
            case "SUBSCRIBE" or "PSUBSCRIBE" or "UNSUBSCRIBE" or "PUNSUBSCRIBE" or "QUIT" or "RESET":
                return null;
            case "PING" when spec.AcceptsCount(command.Count) && command.Count <= 2:
                return RespValue.Array([SubscribedPong, RespValue.Bulk(command.Count == 2 ? command[1] : [])]);
            default:
                return RespValue.Error($"{ErrorCodes.Err} Can't execute '{spec.LowerName}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
        }
    }

    /// <summary>A reply written as several top-level frames, in order (one confirmation per channel of a <c>SUBSCRIBE</c>).</summary>
    internal static RespValue Frames(RespValue[] frames) => RespValue.Array([FramesMarker, .. frames]);

    private static RespValue Subscription(RespCommand command, ConnectionContext connection, PubSubHub hub, bool subscribe, bool pattern)
    {
        if (ChannelOf(connection) is not { } channel)
            return RespValue.Error($"{ErrorCodes.Err} subscriptions need a connection");
        return subscribe ? hub.Subscribe(channel, command, pattern) : hub.Unsubscribe(channel, command, pattern);
    }

    private static PushChannel? ChannelOf(ConnectionContext? connection) =>
        connection is not null && connection.Items.TryGetValue(typeof(PushChannel), out object? channel) ? channel as PushChannel : null;

    /// <summary>The read loop's channel for pushed messages on <paramref name="connection"/>: null when this node has no pub/sub.</summary>
    private PushChannel? OpenPushChannel(ConnectionContext connection, PipeReader input)
    {
        if (_pubSub is null) return null;
        PushChannel channel = _pubSub.Open(connection, input);
        connection.Items[typeof(PushChannel)] = channel;
        return channel;
    }

    /// <summary>Writes the messages queued for this connection (unflushed); false when the client is gone.</summary>
    private static async ValueTask<bool> WritePushesAsync(PushChannel? channel, ReplyWriter output)
    {
        if (channel is null) return true;
        foreach (RespValue push in channel.Hub.TakePending(channel))
            if (!await output.WriteAsync(push, 2)) return false; // pushes are RESP2 arrays, on RESP3 connections too (see docs/protocol.md)
        return true;
    }

    /// <summary>Writes one reply: several frames for a <see cref="Frames"/> reply, else the reply itself.</summary>
    private static async ValueTask<bool> WriteReplyAsync(ReplyWriter output, RespValue reply, int protocol)
    {
        if (reply.Kind != RespKind.Array || reply.Items is not [var first, ..] items || !ReferenceEquals(first, FramesMarker))
            return await output.WriteAsync(reply, protocol);
        for (int i = 1; i < items.Length; i++)
            if (!await output.WriteAsync(items[i], protocol)) return false;
        return true;
    }

    private static void ClosePushChannel(PushChannel? channel) => channel?.Hub.Close(channel);
}
