"""Types each argument after a command into an interactive redis-cli (on a pseudo-terminal) and prints the hint
redis-cli shows for it, one line per argument: "<typed> -> <hint>". Usage: hints.py PORT 'SET k' 'GETEX k' ..."""
import fcntl, os, pty, select, struct, sys, termios, time

port = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    os.execvp("redis-cli", ["redis-cli", "-p", port])


def drain(seconds):
    out, end = b"", time.time() + seconds
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return out


start = drain(3.0)
for typed in sys.argv[2:]:
    os.write(fd, b"\x15" + typed.encode() + b" ")  # ^U clears the line first
    shown = drain(1.5)
    hint = shown.split(b"\x1b[0;90;49m")[-1].split(b"\x1b[0m")[0] if b"\x1b[0;90;49m" in shown else b""
    print(typed, "->", hint.decode(errors="replace"), flush=True)
os.kill(pid, 9)
