"""How a pack's branches are laid out: which ones share fused layers, and where each solo weight sits.

The built-in ``mlp`` and ``cnn`` fuse: branches of one family (and, for the cnn, the same kernel
size and depth) share stacked layers whose sizes are the largest of the group's, each smaller
branch zero-padded into them. Padding is exact, not an approximation: a padded hidden unit or
channel has zero weights in and out, so its activation is 0, every gradient that reaches its
weights is 0, and no optimizer rule moves a parameter whose gradient is always 0 from 0. Groups
are merged only while the padding costs little (`PAD_SLACK`). Other models (``alexnet``, user
builders) become separate branches over the shared input.

Pure Python and NumPy: the plan is made from the solo models' weight shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PAD_SLACK", "GroupPlan", "WeightSlot", "plan_groups", "stackable_family"]

# A group's padded cost may exceed the sum of its branches' own costs by this factor at most.
PAD_SLACK = 1.25


@dataclass(frozen=True)
class WeightSlot:
    """Where one solo weight of one branch lives in a stacked variable's row.

    ``solo_view``: the weight reshaped so that each axis pads independently (a cnn's first
    dense kernel ``(H*W*C, U)`` as ``(H, W, C, U)``); ``pack_view``: the row in the same view;
    ``row_shape``: the row as the variable stores it.
    """

    shape: tuple[int, ...]
    solo_view: tuple[int, ...]
    pack_view: tuple[int, ...]
    row_shape: tuple[int, ...]

    def embed(self, value: np.ndarray) -> np.ndarray:
        row = np.zeros(self.pack_view, dtype=value.dtype)
        row[tuple(slice(0, d) for d in self.solo_view)] = value.reshape(self.solo_view)
        return row.reshape(self.row_shape)

    def extract(self, row: np.ndarray) -> np.ndarray:
        view = row.reshape(self.pack_view)[tuple(slice(0, d) for d in self.solo_view)]
        return np.ascontiguousarray(view).reshape(self.shape)


@dataclass(frozen=True)
class GroupPlan:
    """Branches (caller indices) that share stacked layers, and the padded sizes of those layers.

    ``pack_views[i]`` is the padded view of solo weight i, the same for every member.
    """

    family: str
    members: tuple[int, ...]
    pack_views: tuple[tuple[int, ...], ...]
    spatial: tuple[int, ...]  # the cnn's input resolution (height*width) of each weight's layer

    def slots(self, shapes: Sequence[tuple[int, ...]], input_shape: tuple[int, ...]) -> list[WeightSlot]:
        views = solo_views(self.family, shapes, input_shape)
        return [
            WeightSlot(tuple(shape), view, pack, _row_shape(self.family, i, pack, len(shapes)))
            for i, (shape, view, pack) in enumerate(zip(shapes, views, self.pack_views, strict=True))
        ]


def stackable_family(model: str, n_weights: int) -> str | None:
    """The fused family of a model name, if its solo weights have the built-in layout."""
    if model == "mlp" and n_weights == 4:
        return "mlp"
    if model == "cnn" and n_weights >= 6 and n_weights % 2 == 0:
        return "cnn"
    return None


def _pooled(input_shape: tuple[int, ...], pools: int) -> tuple[int, int]:
    height, width = input_shape[0], input_shape[1]
    for _ in range(pools):
        height, width = height // 2, width // 2
    return height, width


def solo_views(
    family: str, shapes: Sequence[tuple[int, ...]], input_shape: tuple[int, ...]
) -> list[tuple[int, ...]]:
    """Each solo weight reshaped so that its padded axes are separate axes."""
    views = [tuple(s) for s in shapes]
    n = len(shapes)
    if family == "cnn":
        height, width = _pooled(input_shape, (n - 4) // 2)
        channels = shapes[n - 6][-1]  # the last convolution's filters
        views[n - 4] = (height, width, channels, shapes[n - 4][-1])
    return views


def _row_shape(family: str, index: int, pack_view: tuple[int, ...], n: int) -> tuple[int, ...]:
    if family == "cnn" and index == n - 4:
        return (math.prod(pack_view[:-1]), pack_view[-1])
    return pack_view


def _spatial(family: str, n: int, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The number of positions each weight's layer is applied at (for the cost of a group)."""
    if family != "cnn":
        return (1,) * n
    convs = (n - 4) // 2
    out = []
    for layer in range(convs):
        height, width = _pooled(input_shape, layer)
        out += [height * width] * 2
    return (*out, 1, 1, 1, 1)


def _cost(views: Sequence[tuple[int, ...]], spatial: Sequence[int]) -> int:
    return sum(math.prod(v) * s for v, s in zip(views, spatial, strict=True))


def _merge(views: Sequence[Sequence[tuple[int, ...]]]) -> tuple[tuple[int, ...], ...]:
    return tuple(
        tuple(max(axis) for axis in zip(*weight, strict=True)) for weight in zip(*views, strict=True)
    )


def plan_groups(
    family: str,
    members: Sequence[int],
    shapes: Sequence[Sequence[tuple[int, ...]]],
    input_shape: tuple[int, ...],
    slack: float = PAD_SLACK,
) -> list[GroupPlan]:
    """Greedy groups of compatible branches, largest first, while padding stays within `slack`.

    ``shapes[i]`` are the solo weight shapes of ``members[i]``. Branches whose layers differ in
    number or kernel size never share a group.
    """
    views = {m: solo_views(family, s, input_shape) for m, s in zip(members, shapes, strict=True)}
    spatial = {m: _spatial(family, len(s), input_shape) for m, s in zip(members, shapes, strict=True)}

    def key(m: int) -> tuple:  # what padding cannot bridge: depth and kernel sizes
        return (len(views[m]), tuple(v[:2] for v in views[m][: len(views[m]) - 4 : 2]))

    groups: list[GroupPlan] = []
    for compatible in _by_key(members, key):
        pending = sorted(compatible, key=lambda m: (-_cost(views[m], spatial[m]), m))
        while pending:
            chosen = [pending.pop(0)]
            for m in list(pending):
                merged = _merge([views[c] for c in (*chosen, m)])
                padded = (len(chosen) + 1) * _cost(merged, spatial[m])
                exact = sum(_cost(views[c], spatial[c]) for c in (*chosen, m))
                if padded <= slack * exact:
                    chosen.append(m)
                    pending.remove(m)
            merged = _merge([views[c] for c in chosen])
            groups.append(GroupPlan(family, tuple(sorted(chosen)), merged, spatial[chosen[0]]))
    return groups


def _by_key(members: Sequence[int], key) -> list[list[int]]:
    buckets: dict[tuple, list[int]] = {}
    for m in members:
        buckets.setdefault(key(m), []).append(m)
    return list(buckets.values())
