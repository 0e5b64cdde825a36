"""The GitHub emulator (tests/accounts/emulators.py) in a process of its own, so that a
benchmark's client does not share its interpreter lock with the server it measures.

    with GitHubProcess(1000, public_key, delay=0.1) as github:
        ... github.base_url ...
        github.token_requests()  # {"17": 1, ...}: per installation, counted by the server

The child (``python -m bench.emulator``: no Django, no database) reads its settings as
one JSON line on stdin, prints its URL, then answers one line per command: ``counts``
(token requests per installation, JSON), ``cpu`` (its CPU seconds so far), ``reset``;
end of input stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

API = "/api/v3"
ROOT = Path(__file__).resolve().parents[1]


def serve() -> None:
    """The child: run the emulator until stdin ends."""
    from tests.accounts.emulators import GitHubEmulator

    settings = json.loads(sys.stdin.readline())
    installations = {n: f"acct-{n}" for n in range(1, settings["count"] + 1)}
    emulator = GitHubEmulator(
        installations,
        delay=settings["delay"],
        token_delay=settings["token_delay"],
        public_key=settings["public_key"],
    )
    with emulator:
        print(emulator.url, flush=True)
        for line in sys.stdin:
            with emulator.lock:
                if line.strip() == "reset":
                    emulator.token_requests.clear()
                    print("ok", flush=True)
                elif line.strip() == "cpu":
                    print(json.dumps(time.process_time()), flush=True)
                else:
                    print(json.dumps(dict(emulator.token_requests)), flush=True)


class GitHubProcess:
    """``count`` installations (id N for login ``acct-N``) whose app JWT verifies with
    ``public_key``; the API answers after ``delay`` s, token requests after
    ``token_delay`` s."""

    def __init__(
        self, count: int, public_key: str, *, delay: float, token_delay: float = 0.0
    ) -> None:
        self.settings = {
            "count": count, "public_key": public_key, "delay": delay, "token_delay": token_delay
        }
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        return f"{self.url}{API}/"

    def _ask(self, command: str) -> str:
        assert self._process is not None and self._process.stdin and self._process.stdout
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return self._process.stdout.readline().strip()

    def token_requests(self) -> dict[str, int]:
        """Token requests per installation id, as the emulator counted them."""
        counts: dict[str, int] = json.loads(self._ask("counts"))
        return counts

    def cpu(self) -> float:
        """The emulator process's CPU seconds so far (all its threads)."""
        return float(self._ask("cpu"))

    def reset(self) -> None:
        self._ask("reset")

    def __enter__(self) -> GitHubProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.emulator"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdin and self._process.stdout
        self._process.stdin.write(json.dumps(self.settings) + "\n")
        self._process.stdin.flush()
        self.url = self._process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.__exit__()
            raise RuntimeError("the emulator process did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        process = self._process
        if process is None:
            return
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


if __name__ == "__main__":
    serve()
