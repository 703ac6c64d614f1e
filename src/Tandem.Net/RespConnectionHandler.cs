using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Tandem.Protocol;

namespace Tandem.Net;

/// <summary>What the network does with one request (see <see cref="RespConnectionHandler.Admit"/>).</summary>
public enum Delivery
{
    /// <summary>Run it and reply.</summary>
    Deliver,
    /// <summary>Never run it (nor anything after it); close the connection.</summary>
    Drop,
    /// <summary>Run it, then close the connection instead of replying.</summary>
    LoseReply,
}

/// <summary>
/// The read loop every Tandem node uses: read from the pipe, parse every complete command in the buffer,
/// start each one in order, then write all their replies in order and flush once. Commands of one read
/// therefore share one flush (and, on a primary, one forwarded batch).
/// </summary>
public abstract class RespConnectionHandler : ConnectionHandler
{
    /// <summary>Input bounds applied to every connection.</summary>
    protected virtual RespLimits Limits => RespLimits.Default;

    /// <summary>
    /// Runs one command. Returning null closes the connection without a reply (a node that was killed).
    /// Must not throw for bad input: answer an error reply instead.
    /// </summary>
    protected abstract ValueTask<RespValue?> ExecuteAsync(RespCommand command, ConnectionContext connection);

    /// <summary>
    /// Decides, before a command runs, whether the network delivers it (fault injection). A dropped command
    /// and every command after it on the connection never run, as when a TCP stream breaks; a command whose
    /// reply is lost runs, and the connection closes before its reply.
    /// </summary>
    protected virtual Delivery Admit(RespCommand command) => Delivery.Deliver;

    /// <inheritdoc />
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        PipeReader input = connection.Transport.Input;
        PipeWriter output = connection.Transport.Output;
        var started = new List<ValueTask<RespValue?>>();
        try
        {
            while (true)
            {
                ReadResult result = await input.ReadAsync(connection.ConnectionClosed);
                ReadOnlySequence<byte> buffer = result.Buffer;
                string? protocolError = null;
                bool closeAfterReplies = false;
                int replies = 0;
                try
                {
                    while (!closeAfterReplies && RespReader.TryReadCommand(ref buffer, Limits, out RespCommand? command))
                    {
                        if (command!.Count == 0) continue; // empty inline line
                        Delivery delivery = Admit(command);
                        closeAfterReplies = delivery != Delivery.Deliver;
                        if (delivery == Delivery.Drop) break;
                        started.Add(ExecuteAsync(command, connection));
                        if (delivery == Delivery.Deliver) replies++;
                    }
                }
                catch (RespProtocolException e)
                {
                    protocolError = e.Message;
                }
                input.AdvanceTo(buffer.Start, buffer.End);

                for (int i = 0; i < started.Count; i++)
                {
                    RespValue? reply = await started[i];
                    if (reply is null || i >= replies)
                    {
                        await output.FlushAsync();
                        return;
                    }
                    RespWriter.WriteValue(output, reply);
                }
                started.Clear();
                if (closeAfterReplies)
                {
                    await output.FlushAsync();
                    return;
                }

                if (protocolError is not null)
                {
                    RespWriter.WriteError(output, $"{ErrorCodes.Err} Protocol error: {protocolError}");
                    await output.FlushAsync();
                    return;
                }
                FlushResult flush = await output.FlushAsync();
                if (result.IsCompleted || result.IsCanceled || flush.IsCompleted) return;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionResetException
                                     or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException)
        {
            // The peer went away or the node is stopping: nothing to answer.
        }
        finally
        {
            await input.CompleteAsync();
            await output.CompleteAsync();
        }
    }
}
