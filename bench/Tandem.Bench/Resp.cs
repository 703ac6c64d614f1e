using System.Buffers;
using System.Buffers.Text;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Tandem.Bench;

/// <summary>One RESP2 reply: its type byte, its text (simple string, error, bulk string; null for a null bulk) and
/// its integer (an integer reply, a bulk's length, an array's count). Array elements are read and dropped.</summary>
internal readonly record struct Reply(char Type, string? Text, long Integer)
{
    public bool IsOk => Type == '+' && Text == "OK";
    public bool IsError => Type == '-';
    public override string ToString() => Type switch
    {
        '+' or '-' or '$' => $"{Type}{Text}",
        _ => $"{Type}{Integer}",
    };
}

/// <summary>
/// A blocking RESP2 connection on loopback, small enough to measure with: no pipelines or tasks between the loop and
/// the socket. Used for the one-at-a-time latency loops, the pipelined loaders and the failover client.
/// </summary>
internal sealed class RespConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[1 << 16];
    private int _start, _end;

    private RespConnection(Socket socket) => _socket = socket;

    public int Port { get; private init; }

    public static RespConnection Connect(int port, TimeSpan timeout)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var cts = new CancellationTokenSource(timeout);
            socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cts.Token).AsTask().GetAwaiter().GetResult();
            socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
            socket.SendTimeout = (int)timeout.TotalMilliseconds;
        }
        catch (OperationCanceledException)
        {
            socket.Dispose();
            throw new TimeoutException($"connect to 127.0.0.1:{port} timed out");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new RespConnection(socket) { Port = port };
    }

    /// <summary>Connects, retrying until <paramref name="timeout"/> passes (for a process that is starting).</summary>
    public static RespConnection ConnectRetrying(int port, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try { return Connect(port, TimeSpan.FromSeconds(5)); }
            catch (Exception e) when (e is SocketException or TimeoutException && DateTime.UtcNow < deadline) { Thread.Sleep(50); }
        }
    }

    public TimeSpan ReceiveTimeout { set => _socket.ReceiveTimeout = (int)value.TotalMilliseconds; }

    public void Send(ReadOnlySpan<byte> data)
    {
        while (data.Length > 0) data = data[_socket.Send(data)..];
    }

    public Reply Call(params string[] args)
    {
        Send(Encode(args));
        return Read();
    }

    public Reply Read()
    {
        char type = (char)ReadByte();
        switch (type)
        {
            case '+':
            case '-':
                return new Reply(type, ReadLine(), 0);
            case ':':
                return new Reply(type, null, long.Parse(ReadLine()));
            case '$':
            {
                long length = long.Parse(ReadLine());
                if (length < 0) return new Reply('$', null, -1);
                string text = ReadBulk((int)length);
                return new Reply('$', text, length);
            }
            case '*':
            {
                long count = long.Parse(ReadLine());
                for (long i = 0; i < count; i++) Read();
                return new Reply('*', null, count);
            }
            default:
                throw new IOException($"not a RESP reply from 127.0.0.1:{Port}: byte 0x{(int)type:x2}");
        }
    }

    public static byte[] Encode(params string[] args)
    {
        var writer = new ArrayBufferWriter<byte>(64);
        AppendCommand(writer, args.Select(Encoding.UTF8.GetBytes).ToArray());
        return writer.WrittenSpan.ToArray();
    }

    public static void AppendCommand(ArrayBufferWriter<byte> writer, params byte[][] args)
    {
        Tandem.Protocol.RespWriter.WriteArrayHeader(writer, args.Length);
        foreach (byte[] arg in args) Tandem.Protocol.RespWriter.WriteBulk(writer, arg);
    }

    /// <summary>Appends <c>SET key value</c> without allocating.</summary>
    public static void AppendSet(ArrayBufferWriter<byte> writer, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        Tandem.Protocol.RespWriter.WriteArrayHeader(writer, 3);
        Tandem.Protocol.RespWriter.WriteBulk(writer, "SET"u8);
        Tandem.Protocol.RespWriter.WriteBulk(writer, key);
        Tandem.Protocol.RespWriter.WriteBulk(writer, value);
    }

    private int ReadByte()
    {
        if (_start == _end) Fill();
        return _buffer[_start++];
    }

    private string ReadLine()
    {
        var line = new StringBuilder();
        while (true)
        {
            if (_start == _end) Fill();
            int cr = Array.IndexOf(_buffer, (byte)'\r', _start, _end - _start);
            if (cr < 0)
            {
                line.Append(Encoding.UTF8.GetString(_buffer, _start, _end - _start));
                _start = _end;
                continue;
            }
            if (line.Length == 0 && cr - _start == 2 && _buffer[_start] == 'O' && _buffer[_start + 1] == 'K')
            {
                _start = cr + 1;
                ExpectNewline();
                return "OK";
            }
            line.Append(Encoding.UTF8.GetString(_buffer, _start, cr - _start));
            _start = cr + 1;
            ExpectNewline();
            return line.ToString();
        }
    }

    private void ExpectNewline()
    {
        if (ReadByte() != '\n') throw new IOException("RESP line without LF");
    }

    private string ReadBulk(int length)
    {
        byte[] bytes = new byte[length];
        int have = 0;
        while (have < length)
        {
            if (_start == _end) Fill();
            int n = Math.Min(length - have, _end - _start);
            Buffer.BlockCopy(_buffer, _start, bytes, have, n);
            have += n;
            _start += n;
        }
        if (ReadByte() != '\r') throw new IOException("bulk string without CRLF");
        ExpectNewline();
        return Encoding.UTF8.GetString(bytes);
    }

    private void Fill()
    {
        _start = 0;
        _end = 0;
        int n = _socket.Receive(_buffer, 0, _buffer.Length, SocketFlags.None);
        if (n == 0) throw new IOException($"127.0.0.1:{Port} closed the connection");
        _end = n;
    }

    public void Dispose() => _socket.Dispose();
}
