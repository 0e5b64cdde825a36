"""``make bench``: run every benchmark module in turn (or those named on the command line)."""

from __future__ import annotations

import importlib
import os
import sys

MODULES = [
    "bench.tokens", "bench.calls", "bench.scale", "bench.admin", "bench.signers", "bench.dpop",
    "bench.telemetry",
    "bench.accounts",
]


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    wanted = [f"bench.{name}" for name in argv] or MODULES
    for name in wanted:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not written yet
            raise
        print(f"\n## {name}\n", flush=True)
        module.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
