"""Run every benchmark and print its figures."""

from __future__ import annotations

import platform
import sys

from bench import access, bars, importing, indicators, ingest


def main() -> int:
    print(f"# python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    for name, module in (("ingest", ingest), ("bars", bars), ("indicators", indicators), ("access", access),
                         ("import", importing)):
        print(f"\n## {name}")
        for metric, value in module.run().items():
            print(f"{metric:36s} {value:>16,.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
