using Microsoft.Extensions.Logging;

namespace Tandem.Testing;

/// <summary>
/// Appends log lines to one file. Test runners swallow console output, so a failing scenario is easier to
/// read from a file: set <c>TANDEM_TEST_LOG=Information</c> (and optionally <c>TANDEM_TEST_LOG_FILE</c>).
/// </summary>
public sealed class FileLoggerProvider(string path) : ILoggerProvider
{
    private readonly StreamWriter _writer = new(path, append: true) { AutoFlush = true };

    /// <inheritdoc />
    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName);

    /// <inheritdoc />
    public void Dispose() { lock (_writer) _writer.Dispose(); }

    private void Write(string line)
    {
        lock (_writer)
        {
            try { _writer.WriteLine(line); } catch (ObjectDisposedException) { }
        }
    }

    private sealed class FileLogger(FileLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            provider.Write($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel,-11} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}");
    }
}
