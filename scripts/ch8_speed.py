"""Time one training step of each of chapter 8's planned variants, in one process, in turns.

    python scripts/ch8_speed.py --rounds 6 --batch 128 --json book/results/ch8-speed-cpu.json

Chapter 8's training runs were made at different times on a shared machine, so their images/s
cannot be compared across runs. This measures the variants back to back instead: every
variant (netbuilder, re-solved to --budget) gets one untimed warm-up step, then --rounds
rounds in which each variant in turn (the order rotated by one place each round) takes one
timed SGD step (forward, NLL loss, backward, optimizer step) on one batch of random images
of CIFAR-10's shape. Augmentation and data loading are left out: they cost the same per
image whatever the model. A round's variants run seconds apart, so each variant's time is
compared with the baseline's *in the same round* (a ratio per round); the spread of those
ratios over the rounds is the noise of the machine.

Each step is timed twice: wall-clock seconds, and the CPU seconds the process spent
(`time.process_time`). On a machine shared with other work the wall clock mostly measures
the others; the CPU time, with one thread (--threads 1, the default), moves far less with
the load, though on a busy machine it still includes some contention (caches, memory
bandwidth).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

PLAN = (
    "dws-dilated-skip-x2",
    "dws-dilated-noskip-x2",
    "plain-dilated-skip-x2",
    "dws-strided-skip-x2",
    "dws-dilated-skip-x3",
    "dws-none-skip-x2",
)


def _load() -> Optional[list[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def measure(
    names: tuple[str, ...], budget: int, batch: int, rounds: int, threads: int, seed: int = 0
) -> dict[str, Any]:
    """Seconds per training step of every variant, round by round (see the module doc)."""
    import torch

    from training.allocator import tune_malloc

    tune_malloc()  # as rftrain does, before the models take their memory
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _timed(names, budget, batch, rounds, seed)
    finally:
        torch.set_num_threads(before)


def _timed(names: tuple[str, ...], budget: int, batch: int, rounds: int, seed: int) -> dict:
    import torch
    import torch.nn.functional as F

    from netbuilder.build import Net
    from netbuilder.variants import family
    from netbuilder.variants import measure as solve
    from training.allocator import malloc_tuned

    torch.manual_seed(seed)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    members = family()
    steps = {}
    for name in names:
        model = Net(solve(members[name], budget, (3, 32, 32)).spec).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step(model=model, opt=opt) -> None:
            opt.zero_grad(set_to_none=True)
            F.nll_loss(model(x), y).backward()
            opt.step()

        steps[name] = step
    for step in steps.values():  # warm-up: first-call allocations
        step()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    load = [_load()]
    orders = []
    for r in range(rounds):
        # rotated by one place each round: over len(names) rounds every network takes
        # every place once, so a cost of going first or last (caches, the load) is spread
        order = names[r % len(names) :] + names[: r % len(names)]
        orders.append(list(order))
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            steps[name]()
            cpu[name].append(round(time.process_time() - c0, 4))
            seconds[name].append(round(time.perf_counter() - t0, 4))
        load.append(_load())
    return {
        "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "cpu_model": _cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "malloc_tuned": malloc_tuned(),
        "budget": budget,
        "batch": batch,
        "rounds": rounds,
        "what": "one SGD step (forward, NLL, backward, step) on random images, no augmentation",
        "order_per_round": orders,
        "load_average_per_round": load,
        "step_seconds": seconds,
        "step_cpu_seconds": cpu,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--threads", type=int, default=1, help="torch threads (CPU time is summed)")
    p.add_argument("--json", type=Path, help="write the measurement here")
    a = p.parse_args(argv)
    if min(a.budget, a.batch, a.rounds, a.threads) < 1:
        print(
            "error: --budget, --batch, --rounds and --threads must be at least 1", file=sys.stderr
        )
        return 2
    out = measure(PLAN, a.budget, a.batch, a.rounds, a.threads)
    given = sys.argv[1:] if argv is None else argv
    out = {"command": " ".join(["python", f"scripts/{Path(__file__).name}", *given]), **out}
    for kind in ("step_seconds", "step_cpu_seconds"):
        print(kind)
        base = out[kind][PLAN[0]]
        for name, secs in out[kind].items():
            ratios = ", ".join(f"{b / s:.2f}" for b, s in zip(base, secs))
            print(f"  {name:24} {a.batch / min(secs):7.1f} images/s best; vs baseline {ratios}")
    if a.json:
        from training.fsutil import write_json

        write_json(a.json, out)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
