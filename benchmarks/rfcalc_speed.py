"""rfcalc.analyze next to torchinfo.summary as the input grows: time and peak memory.

Cases: torchvision's ResNet-50 at 224², 1024², 2048² and Inception-v3 at 1600² (weights=None,
nothing is downloaded), plus the wall time of the command `rfcalc table
torchvision.models:inception_v3 --input 3,1600,1600` (import, model build and analysis).

Each case runs in a fresh subprocess, so peak resident memory (ru_maxrss) belongs to it: the
child builds the model, records its resident memory (the baseline: torch and the weights),
times `rfcalc.analyze` (one untimed warm-up, then --repeats runs) and reads its peak, then
times `torchinfo.summary` in the same process (its peak comes second, so it cannot hide
rfcalc's). Both tools run in the same process on the same model, so the time ratio is fair
on a noisy machine. Prints one table and checks issue 11's bar; exits 1 if a bar is missed:

  - ResNet-50 at 3x1024x1024: rfcalc median <= 0.1 x torchinfo median;
  - ResNet-50: rfcalc at 2048² within 1.5 x its time at 224²;
  - peak resident memory of the process during the analysis at 2048² under 1 GB;
  - `rfcalc table ... inception_v3 --input 3,1600,1600` under 3 s.

    python benchmarks/rfcalc_speed.py [--repeats 3] [--torchinfo-repeats 3] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [("resnet50", 224), ("resnet50", 1024), ("resnet50", 2048), ("inception_v3", 1600)]
GB = 1 << 30


def _rss() -> int:
    """Peak resident memory of this process so far, in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(name: str, size: int, repeats: int, torchinfo_repeats: int) -> dict:
    """One case, in this (fresh) process: the numbers as a dict."""
    import torch
    import torchinfo
    import torchvision

    from rfcalc import analyze

    kwargs = {"aux_logits": False, "init_weights": False} if name == "inception_v3" else {}
    model = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    shape = (3, size, size)
    baseline = _current_rss()

    def timed(fn, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    analysis = analyze(model, shape)  # warm-up (lazy imports, torch's dispatch caches)
    rf_times = timed(lambda: analyze(model, shape), repeats)
    rf_peak = _rss()
    ti_times = timed(
        lambda: torchinfo.summary(model, input_size=(1, *shape), verbose=0, device="cpu"),
        torchinfo_repeats,
    )
    return {
        "rows": len(analysis.rows),
        "notes": list(analysis.notes),
        "rf": [str(r) for r in analysis.output.rf] or [analysis.output.status],
        "baseline": baseline,
        "rfcalc": rf_times,
        "rfcalc_peak": rf_peak,
        "torchinfo": ti_times,
        "torchinfo_peak": _rss(),
        "threads": torch.get_num_threads(),
    }


def run_case(name: str, size: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        f"{name}:{size}",
        "--repeats",
        str(args.repeats),
        "--torchinfo-repeats",
        str(args.torchinfo_repeats),
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {args.timeout} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cli_time(repeats: int) -> list[float]:
    """Wall time of the inception command in a fresh process each time."""
    command = [
        sys.executable,
        "-m",
        "rfcalc",  # what the `rfcalc` console script runs (rfcalc.console)
        "table",
        "torchvision.models:inception_v3",
        "--input",
        "3,1600,1600",
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(command, capture_output=True, env=env, check=True)
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed rfcalc runs (default 3)")
    parser.add_argument(
        "--torchinfo-repeats",
        type=int,
        default=3,
        help="timed torchinfo runs (default 3; each is a real forward pass)",
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds per case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.torchinfo_repeats < 1:
        parser.error("repeats must be at least 1")
    if args.child:
        name, size = args.child.split(":")
        print(json.dumps(child(name, int(size), args.repeats, args.torchinfo_repeats)))
        return 0

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start; median of {args.repeats} rfcalc "
        f"and {args.torchinfo_repeats} torchinfo runs per case"
    )
    header = (
        f"{'model':<14}{'input':>11}  {'rfcalc':>9} {'torchinfo':>10} {'ratio':>7}  "
        f"{'base RSS':>9} {'rfcalc peak':>12} {'torchinfo peak':>15}"
    )
    print(header)
    print("-" * len(header))
    results = {}
    for name, size in CASES:
        r = results[(name, size)] = run_case(name, size, args)
        label = f"{name:<14}{'3x%dx%d' % (size, size):>11}  "
        if "error" in r:
            print(label + r["error"])
            continue
        rf, ti = statistics.median(r["rfcalc"]), statistics.median(r["torchinfo"])
        print(
            label + f"{rf:>8.3f}s {ti:>9.3f}s {rf / ti:>7.3f}  {r['baseline'] / GB:>8.2f}G "
            f"{r['rfcalc_peak'] / GB:>11.2f}G {r['torchinfo_peak'] / GB:>14.2f}G"
        )
        for note in r["notes"][:2]:
            print(f"{'':14}note: {note[:76]}")
        if len(r["notes"]) > 2:
            print(f"{'':14}(and {len(r['notes']) - 2} more notes)")
    cli = cli_time(args.repeats)
    print(
        f"`rfcalc table torchvision.models:inception_v3 --input 3,1600,1600` (fresh process): "
        f"median {statistics.median(cli):.2f}s of {', '.join(f'{t:.2f}' for t in cli)}"
    )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")

    failures = []
    r224, r1k, r2k = (results[("resnet50", s)] for s in (224, 1024, 2048))
    if any("error" in r for r in (r224, r1k, r2k)):
        failures.append("a ResNet-50 case did not run")
    else:
        med = {
            s: statistics.median(r["rfcalc"]) for s, r in ((224, r224), (1024, r1k), (2048, r2k))
        }
        ratio = med[1024] / statistics.median(r1k["torchinfo"])
        if ratio > 0.1:
            failures.append(f"ResNet-50 1024²: rfcalc/torchinfo = {ratio:.3f} > 0.1")
        if med[2048] > 1.5 * med[224]:
            failures.append(f"ResNet-50: {med[2048]:.3f}s at 2048² > 1.5 x {med[224]:.3f}s at 224²")
        if r2k["rfcalc_peak"] >= GB:
            failures.append(
                f"peak RSS during the analysis at 2048²: {r2k['rfcalc_peak'] / GB:.2f} GB >= 1 GB"
            )
    if statistics.median(cli) >= 3:
        failures.append(f"rfcalc table inception_v3 at 1600²: {statistics.median(cli):.2f}s >= 3s")
    for failure in failures:
        print(f"MISSED: {failure}", file=sys.stderr)
    if not failures:
        print("OK: every bar of issue 11 met on this run")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
