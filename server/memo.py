"""A bounded least-recently-used memo, for what a process may keep because its key names it
forever (a content address, or a version that is never rewritten)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """At most `size` entries and, when `weigh` is given, at most `max_weight` of their values'
    weight (bytes, say): the least recently used go first."""

    def __init__(self, size: int, *, weigh: Callable[[V], int] | None = None, max_weight: int = 0) -> None:
        self.size = size
        self._weigh = weigh
        self._max_weight = max_weight
        self.weight = 0
        self._kept: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._kept.get(key)
        if value is not None:
            self._kept.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        old = self._kept.pop(key, None)
        if old is not None and self._weigh is not None:
            self.weight -= self._weigh(old)
        self._kept[key] = value
        if self._weigh is not None:
            self.weight += self._weigh(value)
        while self._kept and self._over():
            _, evicted = self._kept.popitem(last=False)
            if self._weigh is not None:
                self.weight -= self._weigh(evicted)

    def _over(self) -> bool:
        return len(self._kept) > self.size or (self._weigh is not None and self.weight > self._max_weight)

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        self._kept.clear()
        self.weight = 0
