"""Broker instances whose noise a test scripts: the same database and keys as the test's own
instance, the same epsilon and accounting, but samples known in advance."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from infomediary.broker.noise import NoiseSource
from infomediary.config import Settings
from infomediary.instance import Instance, open_instance


class ScriptedNoise(NoiseSource):
    """A NoiseSource whose samples are known in advance (same epsilon, same accounting)."""

    def __init__(self, epsilon: float, samples: list[int]):
        super().__init__(epsilon)
        self.script = list(samples)

    def _samples(self, count: int) -> list[int]:
        assert len(self.script) >= count, "the test scripted too few noise samples"
        taken, self.script = self.script[:count], self.script[count:]
        return taken


@contextmanager
def scripted_instances() -> Iterator[Callable[[Settings, list[int]], Instance]]:
    """``open(settings, samples)`` opens such an instance; all are closed at the end."""
    opened: list[Instance] = []

    def open_scripted(settings: Settings, samples: list[int]) -> Instance:
        noise = ScriptedNoise(settings.broker_epsilon, samples)
        opened.append(open_instance(settings, noise=noise))
        return opened[-1]

    try:
        yield open_scripted
    finally:
        for other in opened:
            other.close()
