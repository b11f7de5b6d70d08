"""Structural diff of two parsed JSON documents, keyed by folded paths (`body.items[].price`).

Speed comes from not walking what is equal: a subtree is skipped when `==` (C speed) holds and,
where the documents hold booleans at all, its marshal serialisation matches too: that is what
tells `true` from `1` (Python's `True == 1`); marshal is 4x faster than json.dumps for it. Only
branches that really differ are walked in Python, so a 1 MB pair with a few differences costs
little more than parsing it.
"""

from __future__ import annotations

import json
import marshal
import math
import operator
from collections import Counter
from collections.abc import Callable
from typing import Any

from gateway.compare_rules import CompiledRules
from gateway.exchange import Difference, DiffKind

MAX_RENDER = 200
_NUMBERS = (int, float)  # exact types: bool is not a number here
_dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
_canonical = json.JSONEncoder(ensure_ascii=False, check_circular=False, sort_keys=True).encode

Found = dict[tuple[str, DiffKind], Difference]


def render(value: Any) -> str:
    text = _dumps(value)
    return text if len(text) <= MAX_RENDER else text[: MAX_RENDER - 1] + "…"


def same(a: Any, b: Any) -> bool:
    """Equal in value and in JSON type. False only costs a closer look, so it may err that way:
    1 against 1.0, or keys in another order, are then walked and found equal."""
    if a is b:
        return True
    if a != b:
        return False
    ta = type(a)
    if ta is dict or ta is list:
        try:  # version 2: no back-references, so equal data gives equal bytes
            return marshal.dumps(a, 2) == marshal.dumps(b, 2)
        except ValueError:  # nested too deep for marshal
            return False
    return ta is type(b) or (ta is not bool and type(b) is not bool)


def diff_json(
    owner: Any,
    candidate: Any,
    rules: CompiledRules,
    found: Found,
    *,
    booleans: bool = True,
    path: str = "body",
) -> None:
    """`booleans=False` promises that neither document holds true or false, so `==` is exact."""
    if not (owner == candidate if not booleans else same(owner, candidate)):
        _Walk(rules, found, same if booleans else operator.eq).diff(owner, candidate, path)


class _Walk:
    __slots__ = ("_ignored", "found", "rules", "same", "tolerance")

    def __init__(self, rules: CompiledRules, found: Found, same: Callable[[Any, Any], bool]) -> None:
        self.rules = rules
        self.found = found
        self.same = same
        self.tolerance = rules.float_tolerance
        self._ignored: dict[str, bool] = {}

    def ignored(self, path: str) -> bool:
        if self.rules.ignore is None:
            return False
        hit = self._ignored.get(path)
        if hit is None:
            hit = self._ignored[path] = self.rules.ignored(path)
        return hit

    def add(self, path: str, kind: DiffKind, owner: Any, candidate: Any, *, lengths: bool = False) -> None:
        key = (path, kind)
        if key in self.found:  # one report per folded path and kind: the first example
            return
        if lengths:
            self.found[key] = Difference(path, kind, str(len(owner)), str(len(candidate)))
        else:
            self.found[key] = Difference(path, kind, _shown(owner), _shown(candidate))

    def diff(self, a: Any, b: Any, path: str) -> None:
        if self.ignored(path):
            return
        ta, tb = type(a), type(b)
        if ta in _NUMBERS and tb in _NUMBERS:
            if not self.close(a, b):
                self.add(path, DiffKind.VALUE, a, b)
        elif ta is not tb:
            self.add(path, DiffKind.TYPE, a, b)
        elif ta is dict:
            self.walk_dict(a, b, path)
        elif ta is list:
            self.walk_list(a, b, path)
        elif a != b:
            self.add(path, DiffKind.VALUE, a, b)

    def close(self, a: float, b: float) -> bool:
        if a == b or (a != a and b != b):  # NaN (accepted by json.loads) equals NaN
            return True
        try:
            return self.tolerance > 0 and math.fabs(a - b) <= self.tolerance
        except OverflowError:  # a huge int against a float
            return False

    def walk_dict(self, a: dict[str, Any], b: dict[str, Any], path: str) -> None:
        missing = 0
        for key, x in a.items():
            y = b.get(key, _ABSENT)
            if y is _ABSENT:
                missing += 1
                child = f"{path}.{key}"
                if not self.ignored(child):
                    self.add(child, DiffKind.MISSING, x, _ABSENT)
            elif not self.same(x, y):
                self.diff(x, y, f"{path}.{key}")
        if len(b) > len(a) - missing:
            for key, y in b.items():
                if key not in a:
                    child = f"{path}.{key}"
                    if not self.ignored(child):
                        self.add(child, DiffKind.EXTRA, _ABSENT, y)

    def walk_list(self, a: list[Any], b: list[Any], path: str) -> None:
        item = path + "[]"
        if self.rules.is_unordered(path):
            self.multiset(a, b, path, item)
            return
        if len(a) != len(b):
            self.add(path, DiffKind.SIZE, a, b, lengths=True)
        differing = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if not self.same(x, y)]
        if not differing:
            return
        if len(a) == len(b) and _permuted(a, b, differing):
            # the equal positions match already, so the lists are permutations of each other;
            # unless every "differing" position is equal too, and only `same` could not
            # tell (objects whose keys come in another order)
            if any(_canonical(a[i]) != _canonical(b[i]) for i in differing):
                self.add(path, DiffKind.ORDERING, a, b)
            return
        for i in differing:
            self.diff(a[i], b[i], item)

    def multiset(self, a: list[Any], b: list[Any], path: str, item: str) -> None:
        if len(a) != len(b):
            self.add(path, DiffKind.SIZE, a, b, lengths=True)
        keys_a = [_canonical(x) for x in a]
        keys_b = [_canonical(y) for y in b]
        only_a = Counter(keys_a)
        only_a.subtract(keys_b)
        only_b = Counter({k: -n for k, n in only_a.items() if n < 0})
        # elements without an equal partner are compared pairwise, in their order of
        # appearance, so a price that moved within tolerance is still equal
        left = _unmatched(a, keys_a, only_a)
        right = _unmatched(b, keys_b, only_b)
        for x, y in zip(left, right, strict=False):
            self.diff(x, y, item)


class _Absent:
    __slots__ = ()


_ABSENT: Any = _Absent()


def _shown(value: Any) -> str | None:
    return None if value is _ABSENT else render(value)


def _permuted(a: list[Any], b: list[Any], positions: list[int]) -> bool:
    """Whether the elements at `positions` are the same multiset on both sides."""
    if a[positions[0]] not in [b[i] for i in positions]:  # C-speed early no: most lists end here
        return False
    return Counter(_canonical(a[i]) for i in positions) == Counter(_canonical(b[i]) for i in positions)


def _unmatched(values: list[Any], keys: list[str], surplus: Counter[str]) -> list[Any]:
    out = []
    for value, key in zip(values, keys, strict=True):
        if surplus[key] > 0:
            surplus[key] -= 1
            out.append(value)
    return out
