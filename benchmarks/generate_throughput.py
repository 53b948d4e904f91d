"""Generate a synthetic work4all Mandant per export form at two sizes: records/s and peak RSS.

    python benchmarks/generate_throughput.py [--sizes 5000 50000] [--xlsx-sizes 5000 20000]
                                             [--forms sql csv xlsx] [--seed 1] [--defects default]

xlsx runs at smaller sizes by default: openpyxl writes about 1,800 records/s, so 50,000 customers
(1.1 million records) would take over ten minutes.

Each run is a separate ``python -m ledger generate`` child process, so its peak RSS (from
``wait4``) is its own. The last lines compare peak memory between the sizes: the generator
streams table by table, so memory must stay flat while the record count grows tenfold.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(form: str, customers: int, seed: int, defects: str) -> tuple[int, float, float]:
    """(records, seconds, peak RSS in MiB) of one generate run in a child process."""
    out = Path(tempfile.mkdtemp(prefix=f"w4a-bench-{form}-"))
    command = [
        sys.executable, "-m", "ledger", "generate", "--out", str(out), "--customers",
        str(customers), "--format", form, "--seed", str(seed), "--defects", defects, "--quiet",
    ]  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=stderr)
        # wait4, not wait: it returns the child's own resource usage
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read().decode(), stderr.read().decode()
    shutil.rmtree(out, ignore_errors=True)
    if child.returncode:
        raise SystemExit(f"{form} {customers}: exit {child.returncode}\n{errors}")
    match = re.search(r"([\d,]+) records", output)
    if match is None:
        raise SystemExit(f"{form} {customers}: no record count in {output!r}")
    # ru_maxrss is KiB on Linux
    return int(match.group(1).replace(",", "")), seconds, usage.ru_maxrss / 1024


def main() -> None:
    """Run the matrix and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--xlsx-sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--forms", nargs="+", default=["sql", "csv", "xlsx"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--defects", default="default")
    args = parser.parse_args()
    columns = ("customers", "records", "seconds", "records/s", "peak MiB")
    print(f"{'form':<5} " + " ".join(f"{c:>10}" for c in columns))
    peaks: dict[str, list[tuple[int, float]]] = {}
    for form in args.forms:
        for customers in args.xlsx_sizes if form == "xlsx" else args.sizes:
            records, seconds, peak = _run(form, customers, args.seed, args.defects)
            peaks.setdefault(form, []).append((records, peak))
            print(
                f"{form:<5} {customers:>10,} {records:>10,} {seconds:>10.1f} "
                f"{records / seconds:>10,.0f} {peak:>10.1f}",
                flush=True,
            )
    print()
    for form, runs in peaks.items():
        (small_records, small_peak), (large_records, large_peak) = runs[0], runs[-1]
        growth = large_peak / small_peak
        verdict = "flat" if growth < 1.25 else "GROWS"
        print(
            f"{form}: {large_records / small_records:.1f}x records, peak memory "
            f"{small_peak:.0f} → {large_peak:.0f} MiB ({growth:.2f}x): {verdict}"
        )


if __name__ == "__main__":
    main()
