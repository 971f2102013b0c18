"""Shared helpers of the benchmark scripts: timing (median of repeats after a warm-up), the machine's description,
writing a script's section of benchmarks/RESULTS.md, and argument types for counts and durations."""

import datetime
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

from sqa_data.argtypes import positive_float, positive_int  # noqa: F401  (the scripts import them from here)

ROOT = Path(__file__).resolve().parents[1]  # the repository, wherever it is checked out
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def median_seconds(function, repeats: int, warmup: int = 1) -> float:
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    """The CPU (its model, the vector instructions torch uses, and whether it computes in bf16 and int8 natively: CPU
    bf16 autocast is fast with AVX-512 BF16 or AMX and many times slower without; dynamic int8 weights need VNNI or
    AMX to pay), cores, threads, torch and Python."""
    name, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name is None:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    cpu = name or platform.processor() or platform.machine()
    capability = torch.backends.cpu.get_cpu_capability()
    native_bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"})
    native_int8 = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})  # int8 dot products (dynamic int8 weights)
    if flags:
        capability += f", bf16 {'in hardware (' + ', '.join(native_bf16) + ')' if native_bf16 else 'emulated'}"
        capability += f", int8 dot products {'in hardware (' + ', '.join(native_int8) + ')' if native_int8 else 'emulated'}"
    device = f"{cpu} ({capability}), {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    if torch.cuda.is_available():
        device = f"{torch.cuda.get_device_name(0)} (+ {device})"
    return f"{device}; torch {torch.__version__}, Python {platform.python_version()}"


def command() -> str:
    """The command line that ran, with the script's path relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:  # a script outside the repository: keep its path as given
        script = Path(sys.argv[0])
    return "python " + " ".join([script.as_posix(), *sys.argv[1:]])


def write_section(name: str, body: str, results: Path = RESULTS):
    """Replace (or add) the section `name` of RESULTS.md, stamped with machine, command and date."""
    stamp = (f"Measured {datetime.date.today().isoformat()} on {machine()}.\n"
             f"Command: `{command()}`\n\n")
    section = f"<!-- {name} -->\n## {name}\n\n{stamp}{body.strip()}\n<!-- /{name} -->\n"
    text = results.read_text() if results.exists() else "# Benchmark results\n\nWritten by the scripts in " \
        "`benchmarks/`; each section says the machine, the command and the date. Timings are medians.\n\n"
    pattern = re.compile(rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->\n", re.S)
    text = pattern.sub(section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    results.write_text(text)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
