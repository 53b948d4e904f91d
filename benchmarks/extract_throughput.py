"""Generate and extract a work4all export per form at two sizes: records/s and peak RSS.

    python benchmarks/extract_throughput.py [--customers 5000,50000] [--forms sql,csv,xlsx]
                                            [--seed 1] [--defects default]

For each form and size, ``crmledger generate`` writes an export, then
:func:`producers.extract.extract` appends it to a fresh SQLite event log. 50,000 customers are
about one million records (the issue's target). openpyxl writes the workbook, so generating the
xlsx form takes longer than the others.

Each measurement is its own child process, so its peak RSS (from ``wait4``) is its own. The last
lines compare peak memory between the smallest and the largest size: generator and extractor
stream table by table, so memory must stay flat while the record count grows.
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
_EXPORT_NAME = {"sql": "work4all.db", "csv": "", "xlsx": "work4all.xlsx"}


def _child(command: list[str]) -> tuple[str, float, float]:
    """(stdout, seconds, peak RSS in MiB) of a child process; exits on failure."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=stderr)
        # wait4, not wait: it returns the child's own resource usage
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read().decode(), stderr.read().decode()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(command)}: failed\n{errors}")
    # ru_maxrss is KiB on Linux
    return output, seconds, usage.ru_maxrss / 1024


def _records(output: str) -> int:
    match = re.search(r"([\d,]+) records", output)
    if match is None:
        raise SystemExit(f"no record count in {output!r}")
    return int(match.group(1).replace(",", ""))


def _extract_in_this_process(export: str, log_url: str) -> None:
    """The extraction child: extract ``export`` into the log at ``log_url``, print the count."""
    from ledger.sqlite_log import SqliteEventLog
    from producers.extract import extract

    with SqliteEventLog(log_url) as log:
        summary = extract(export, log, run_id="bench")
    print(f"{summary.total} records")


def _measure(
    form: str, customers: int, seed: int, defects: str
) -> list[tuple[str, int, float, float]]:
    """[(phase, records, seconds, peak MiB)] for generating and extracting one export."""
    work = Path(tempfile.mkdtemp(prefix=f"w4a-extract-bench-{form}-"))
    try:
        out = work / "export"
        generate = [
            sys.executable, "-m", "ledger", "generate", "--out", str(out), "--customers",
            str(customers), "--format", form, "--seed", str(seed), "--defects", defects, "--quiet",
        ]  # fmt: skip
        output, gen_seconds, gen_peak = _child(generate)
        generated = _records(output)
        export = out / _EXPORT_NAME[form]
        log_url = f"sqlite:///{work / 'ledger.db'}"
        extract = [sys.executable, __file__, "--child-extract", str(export), log_url]
        output, ext_seconds, ext_peak = _child(extract)
        extracted = _records(output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        ("generate", generated, gen_seconds, gen_peak),
        ("extract", extracted, ext_seconds, ext_peak),
    ]


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    """Run the matrix, print a table and the peak-memory comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--customers",
        type=_sizes,
        default=[5000, 50000],
        help="comma-separated sizes in customers (50,000 ≈ 1M records)",
    )
    parser.add_argument("--forms", default="sql,csv,xlsx", help="comma-separated export forms")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--defects", default="default")
    parser.add_argument(
        "--child-extract", nargs=2, metavar=("EXPORT", "LOG_URL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child_extract:
        _extract_in_this_process(*args.child_extract)
        return
    columns = ("customers", "records", "seconds", "records/s", "peak MiB")
    print(f"{'form':<5} {'phase':<8} " + " ".join(f"{c:>10}" for c in columns), flush=True)
    peaks: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for form in args.forms.split(","):
        for customers in args.customers:
            for phase, records, seconds, peak in _measure(form, customers, args.seed, args.defects):
                peaks.setdefault((form, phase), []).append((records, peak))
                print(
                    f"{form:<5} {phase:<8} {customers:>10,} {records:>10,} {seconds:>10.1f} "
                    f"{records / seconds:>10,.0f} {peak:>10.1f}",
                    flush=True,
                )
    print()
    for (form, phase), runs in peaks.items():
        (small_records, small_peak), (large_records, large_peak) = runs[0], runs[-1]
        growth = large_peak / small_peak
        verdict = "does not grow with size" if growth < 1.25 else "GROWS with size"
        print(
            f"{form} {phase}: {large_records / small_records:.1f}x records, peak memory "
            f"{small_peak:.0f} MiB → {large_peak:.0f} MiB ({growth:.2f}x): {verdict}"
        )


if __name__ == "__main__":
    main()
