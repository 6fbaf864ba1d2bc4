"""A tiny Ray workload for ``rva trace record`` tests: six 1-CPU tasks, one 2-CPU task, one actor."""

import time

import ray

ray.init(log_to_driver=False)


@ray.remote(num_cpus=1)
def work(i: int) -> int:
    time.sleep(0.3)
    return i


@ray.remote(num_cpus=2)
def wide() -> int:
    time.sleep(0.2)
    return 2


@ray.remote(num_cpus=1)
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def add(self) -> int:
        self.n += 1
        return self.n


assert sum(ray.get([work.remote(i) for i in range(6)])) == 15
assert ray.get(wide.remote()) == 2
c = Counter.remote()
assert ray.get([c.add.remote() for _ in range(3)])[-1] == 3
