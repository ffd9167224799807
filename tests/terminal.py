"""The command line run as on a terminal: stderr on a pseudo-terminal, for progress bars."""

import fcntl
import os
import pty
import struct
import subprocess
import termios

from tests.test_cli import CLI, REPO, clean_env


def on_a_terminal(*args: str) -> tuple[subprocess.CompletedProcess[str], bytes]:
    """The command with stderr on a pseudo-terminal, and what the terminal showed."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's size
    try:
        run = subprocess.run(
            [*CLI, *args],
            env=clean_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            timeout=180,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    return run, shown
