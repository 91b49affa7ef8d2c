"""Run every benchmark and print its figures."""

from __future__ import annotations

import platform
import sys

from bench import access, bars, hot_bound, importing, indicators, ingest, open_day, orchestration, startup

BENCHMARKS = {"startup": startup, "ingest": ingest, "bars": bars, "indicators": indicators, "access": access, "import": importing,
              "open_day": open_day, "hot_bound": hot_bound, "orchestration": orchestration}


def main(argv: list[str]) -> int:
    """Every benchmark, or those named on the command line (``python -m bench startup access``)."""
    unknown = set(argv) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmarks {sorted(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    print(f"# python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    for name, module in BENCHMARKS.items():
        if argv and name not in argv:
            continue
        print(f"\n## {name}")
        for metric, value in module.run().items():
            print(f"{metric:36s} {value:>16,.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
