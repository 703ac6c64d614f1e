using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Tandem.Protocol;

namespace Tandem.Net;

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
    /// Runs one command. Returning null closes the connection without a reply (used to inject lost replies).
    /// Must not throw for bad input: answer an error reply instead.
    /// </summary>
    protected abstract ValueTask<RespValue?> ExecuteAsync(RespCommand command, ConnectionContext connection);

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
                try
                {
                    while (RespReader.TryReadCommand(ref buffer, Limits, out RespCommand? command))
                    {
                        if (command!.Count == 0) continue; // empty inline line
                        started.Add(ExecuteAsync(command, connection));
                    }
                }
                catch (RespProtocolException e)
                {
                    protocolError = e.Message;
                }
                input.AdvanceTo(buffer.Start, buffer.End);

                foreach (ValueTask<RespValue?> task in started)
                {
                    RespValue? reply = await task;
                    if (reply is null)
                    {
                        await output.FlushAsync();
                        return;
                    }
                    RespWriter.WriteValue(output, reply);
                }
                started.Clear();

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
