"""The synthetic built-in traces (``autoscaler/traces/{bursty,skewed-memory,gpu-fallback}.jsonl``),
generated from fixed seeds so they can be regenerated bit for bit::

    python -m autoscaler.replay.builtin_traces            # rewrites the three files

``tpch-q1-q5.jsonl`` is not generated: it was recorded from a real Ray Data run (``bench/tpch_q1_q5.py``).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from autoscaler.sim.traces import TaskSpec, Trace

GI = 2**30


def bursty(seed: int = 7) -> Trace:
    """Six bursts five minutes apart; each 30–90 one-CPU tasks of ~40 s (exponential), 1 GiB each."""
    rng = random.Random(seed)
    tasks = []
    for b in range(6):
        start = b * 300.0
        for i in range(rng.randint(30, 90)):
            tasks.append(TaskSpec(
                submit_at=round(start + rng.uniform(0, 10), 3), resources={"CPU": 1.0, "memory": float(GI)},
                duration=round(max(2.0, rng.expovariate(1 / 40)), 3), memory_used=int(0.6 * GI),
                name=f"burst{b}-{i}"))
    return Trace.of(tasks, {"name": "bursty", "description": bursty.__doc__, "generator": f"bursty(seed={seed})"})


def skewed_memory(seed: int = 11) -> Trace:
    """Twenty minutes of Poisson arrivals (0.4/s): 80 % 1 CPU/1 GiB, 15 % 1 CPU/4 GiB, 5 % 2 CPU/12 GiB; 3 %
    of tasks use 1.5× the memory they asked for (the pressure / OOM-kill case)."""
    rng = random.Random(seed)
    shapes = [(0.80, 1.0, 1 * GI), (0.15, 1.0, 4 * GI), (0.05, 2.0, 12 * GI)]
    tasks, t, i = [], 0.0, 0
    while True:
        t += rng.expovariate(0.4)
        if t > 1200:
            break
        r, acc = rng.random(), 0.0
        cpu, mem = shapes[-1][1], shapes[-1][2]
        for w, c, m in shapes:
            acc += w
            if r < acc:
                cpu, mem = c, m
                break
        used = int(mem * (1.5 if rng.random() < 0.03 else rng.uniform(0.5, 0.9)))
        tasks.append(TaskSpec(submit_at=round(t, 3), resources={"CPU": cpu, "memory": float(mem)},
                              duration=round(max(5.0, rng.expovariate(1 / 90)), 3), memory_used=used,
                              name=f"task-{i}"))
        i += 1
    return Trace.of(tasks, {"name": "skewed-memory", "description": skewed_memory.__doc__,
                            "generator": f"skewed_memory(seed={seed})"})


def gpu_fallback(seed: int = 13) -> Trace:
    """CPU preprocessing (60 one-CPU tasks) then 8 L4 inference tasks that prefer spot and fall back to any L4."""
    rng = random.Random(seed)
    tasks = [TaskSpec(submit_at=round(rng.uniform(0, 30), 3), resources={"CPU": 1.0, "memory": float(GI)},
                      duration=round(rng.uniform(30, 90), 3), memory_used=int(0.6 * GI), name=f"prep-{i}")
             for i in range(60)]
    for i in range(8):
        tasks.append(TaskSpec(
            submit_at=round(120 + rng.uniform(0, 60), 3), resources={"CPU": 4.0, "GPU": 1.0, "memory": 16.0 * GI},
            duration=round(rng.uniform(200, 400), 3), memory_used=12 * GI,
            label_selector={"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"},
            fallbacks=({"ray.io/accelerator-type": "L4"},), name=f"infer-{i}"))
    return Trace.of(tasks, {"name": "gpu-fallback", "description": gpu_fallback.__doc__,
                            "generator": f"gpu_fallback(seed={seed})"})


GENERATORS = {"bursty": bursty, "skewed-memory": skewed_memory, "gpu-fallback": gpu_fallback}


def write_all(folder: Path) -> list[Path]:
    out = []
    for name, gen in GENERATORS.items():
        path = folder / f"{name}.jsonl"
        gen().write_jsonl(path)
        out.append(path)
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "traces"
    for p in write_all(target):
        print(p)
