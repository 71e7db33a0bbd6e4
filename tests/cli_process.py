"""Run ``python -m wsproto_core ...`` as a subprocess and watch its output, for the CLI and browser tests."""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

COMMAND = [sys.executable, "-m", "wsproto_core"]


class Process:
    """A ``python -m wsproto_core ...`` subprocess whose output is collected line by line."""

    def __init__(self, *args: str, stdin: int | None = subprocess.DEVNULL) -> None:
        self.popen = subprocess.Popen(
            [*COMMAND, *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            start_new_session=True,  # a Ctrl-C in the terminal running pytest does not reach it
        )
        self.lines: dict[str, queue.Queue[str]] = {"stdout": queue.Queue(), "stderr": queue.Queue()}
        self.output: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._threads = [
            threading.Thread(target=self._collect, args=(name, stream), daemon=True)
            for name, stream in (("stdout", self.popen.stdout), ("stderr", self.popen.stderr))
        ]
        for thread in self._threads:
            thread.start()

    def _collect(self, name: str, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.output[name].append(line)
            self.lines[name].put(line)

    def wait_for_line(self, pattern: str, stream: str = "stdout", timeout: float = 20.0) -> re.Match[str]:
        """The first line (not yet consumed) of ``stream`` that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines[stream].get(timeout=max(0.0, remaining))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {stream}:\n{self.text()}") from None
            match = re.search(pattern, line)
            if match:
                return match

    def finish(self, timeout: float = 20.0) -> int:
        code = self.popen.wait(timeout)
        self._close_streams()
        return code

    def _close_streams(self) -> None:
        # The collectors end at end of file; the pipes are then closed here, not left to the garbage
        # collector (a ResourceWarning, an error under -W error).
        for thread in self._threads:
            thread.join(5)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()

    def text(self, stream: str | None = None) -> str:
        if stream is not None:
            return "".join(self.output[stream])
        return f"stdout:\n{''.join(self.output['stdout'])}\nstderr:\n{''.join(self.output['stderr'])}"

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._close_streams()


@contextlib.contextmanager
def serving(*args: str) -> Iterator[tuple[Process, str]]:
    """``serve --port 0 ...``: yields the process and its ``host:port``; kills it if the test did not stop it."""
    process = Process("serve", "--port", "0", *args)
    try:
        match = process.wait_for_line(r"open https?://([^/\s]+)/ in a browser")
        yield process, match.group(1)
    finally:
        process.kill()


def stop(process: Process, signum: int = signal.SIGINT) -> int:
    process.popen.send_signal(signum)
    return process.finish()
