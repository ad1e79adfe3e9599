"""A pack as one Keras model, and each branch's state read from it and written into it.

`build_pack` lays the branches out (`experiments.fused.plan`): stacked groups of the built-in
``mlp``/``cnn``, separate sub-models for any other model, all over one input. The model's output
is ``(batch, K, classes)``; the `Pack` it returns knows where each branch's weights and optimizer
slots live, so a branch can be read out as a solo model's weights (for its best snapshot and its
checkpoint), written back (a rebuilt pack, a branch reset when it stops) and stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from experiments.fused.head import Head
from experiments.fused.layers import (
    BranchFlatten,
    StackBranches,
    StackedConv2D,
    StackedDense,
    StackedDropout,
)
from experiments.fused.optimizer import ADAGRAD_INITIAL, SLOT_ATTRIBUTES, SLOT_OF, Route, RoutedOptimizer
from experiments.fused.plan import GroupPlan, WeightSlot, plan_groups, stackable_family

__all__ = [
    "BranchInit",
    "BranchState",
    "Pack",
    "PackPlan",
    "build_pack",
    "plan_pack",
    "reuse_pack",
    "traced_rules",
]

Slots = list[dict[str, np.ndarray]]  # per trainable weight: slot name -> value (solo shapes)


@dataclass
class BranchState:
    """A branch's weights (solo order and shapes) and its optimizer slots, as NumPy arrays."""

    weights: list[np.ndarray]
    slots: Slots | None = None  # None: fresh (zeros, Adagrad's initial accumulator)


@dataclass
class BranchInit:
    """What a pack needs to lay out and start one branch."""

    index: int
    rule: str
    learning_rate: float
    momentum: float
    dropout: float
    family: str | None  # "mlp"/"cnn" when it fuses, else None (a separate sub-model)
    state: BranchState
    model: keras.Model | None = None  # the solo model itself, for a separate branch


@dataclass
class _Stack:
    """Where a stacked group's branches and weights are."""

    plan: GroupPlan
    members: list[int]  # branch index at each row of the stacked variables
    variables: list[keras.Variable]  # per solo weight
    axes: list[int]  # per solo weight: the axis its variable holds the branches on
    slots: dict[int, list[WeightSlot]]  # per branch: where each of its solo weights sits


@dataclass
class Pack:
    """A compiled-ready pack model with its routed optimizer and the branches' places in it."""

    model: keras.Model
    optimizer: RoutedOptimizer
    order: list[int]  # branch index at each position of the output's K axis
    _stacks: list[_Stack]
    _subs: dict[int, keras.Model]
    _route_of: dict[int, tuple[int, int]]  # branch -> (route, position in the route)
    _var_index: dict[int, int] = field(default_factory=dict)  # id(variable) -> optimizer index
    groups: list[keras.Sequential] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.optimizer.build(self.model.trainable_variables)
        self._var_index = {id(v): i for i, v in enumerate(self.model.trainable_variables)}

    def _slot_vars(self, variable: keras.Variable) -> dict[str, keras.Variable]:
        return self.optimizer.slots[self._var_index[id(variable)]]

    def _locate(self, branch: int) -> tuple[_Stack, int]:
        for stack in self._stacks:
            if branch in stack.members:
                return stack, stack.members.index(branch)
        raise KeyError(branch)

    def _rule_slots(self, branch: int) -> dict[str, str]:
        """The branch's rule's slot names -> the pack's slot that holds each."""
        route, position = self._route_of[branch]
        return {name: SLOT_OF[name] for name in SLOT_ATTRIBUTES[self.optimizer.routes[route].rules[position]]}

    def read(self, branches: Sequence[int]) -> dict[int, BranchState]:
        """The current state of `branches`; each stacked variable is read once."""
        out: dict[int, BranchState] = {}
        cache: dict[int, np.ndarray] = {}

        def value(var: keras.Variable) -> np.ndarray:
            if id(var) not in cache:
                cache[id(var)] = keras.ops.convert_to_numpy(var)
            return cache[id(var)]

        for b in branches:
            names = self._rule_slots(b)
            if b in self._subs:
                sub = self._subs[b]
                slots = [
                    {name: value(self._slot_vars(v)[slot]) for name, slot in names.items()}
                    for v in sub.trainable_variables
                ]
                out[b] = BranchState([np.array(w) for w in sub.get_weights()], slots)
                continue
            stack, row = self._locate(b)
            weights, slots = [], []
            for slot, var, axis in zip(stack.slots[b], stack.variables, stack.axes, strict=True):
                held = self._slot_vars(var)
                weights.append(slot.extract(np.take(value(var), row, axis=axis)))
                slots.append(
                    {name: slot.extract(np.take(value(held[s]), row, axis=axis)) for name, s in names.items()}
                )
            out[b] = BranchState(weights, slots)
        return out

    def write(self, states: Mapping[int, BranchState]) -> None:
        """Put branches' states into the pack; a state without slots starts them fresh."""
        by_var: dict[int, tuple[keras.Variable, np.ndarray]] = {}

        def current(var: keras.Variable) -> np.ndarray:
            if id(var) not in by_var:
                by_var[id(var)] = (var, np.array(keras.ops.convert_to_numpy(var)))
            return by_var[id(var)][1]

        for b, state in states.items():
            names = {slot: name for name, slot in self._rule_slots(b).items()}  # pack slot -> rule's
            if b in self._subs:
                sub = self._subs[b]
                sub.set_weights(state.weights)
                for i, v in enumerate(sub.trainable_variables):
                    for slot, slot_var in self._slot_vars(v).items():
                        solo = None if state.slots is None else state.slots[i].get(names.get(slot, ""))
                        fresh = self._fresh_slot(b, slot, v.shape)
                        current(slot_var)[...] = fresh if solo is None else solo
                continue
            stack, row = self._locate(b)
            for i, (slot, var, axis) in enumerate(
                zip(stack.slots[b], stack.variables, stack.axes, strict=True)
            ):
                index = (slice(None),) * axis + (row,)
                current(var)[index] = slot.embed(state.weights[i])
                for name, slot_var in self._slot_vars(var).items():
                    solo = None if state.slots is None else state.slots[i].get(names.get(name, ""))
                    if solo is None:
                        solo = self._fresh_slot(b, name, state.weights[i].shape)
                    current(slot_var)[index] = slot.embed(np.asarray(solo, dtype="float32"))
        for var, value in by_var.values():
            var.assign(value)

    def _fresh_slot(self, branch: int, slot: str, shape: tuple[int, ...]) -> np.ndarray:
        """A slot as Keras starts it: zeros, or Adagrad's initial accumulator."""
        route, position = self._route_of[branch]
        adagrad = self.optimizer.routes[route].rules[position] == "adagrad"
        return np.full(shape, ADAGRAD_INITIAL if adagrad and slot == "v" else 0.0, dtype="float32")

    def stop(self, branch: int, state: BranchState) -> None:
        """Freeze a branch: no more updates, its weights set to `state` and its slots zeroed
        (a diverged branch's NaN weights and slots must not reach the others, e.g. through a
        shared loss scale under mixed precision)."""
        route, position = self._route_of[branch]
        self.optimizer.set_active(route, position, False)
        names = self._rule_slots(branch)
        zeros = [{name: np.zeros(w.shape, "float32") for name in names} for w in state.weights]
        self.write({branch: BranchState(state.weights, zeros)})

    @property
    def iterations(self) -> int:
        return int(keras.ops.convert_to_numpy(self.optimizer.iterations))


class PackModel(keras.Model):
    """Stacked groups and separate branches over one input; outputs ``(batch, K, classes)``."""

    def __init__(
        self, groups: Sequence[keras.Sequential], subs: Sequence[keras.Model], head: Head, **kwargs: Any
    ) -> None:
        super().__init__(name="pack", **kwargs)
        self.groups = list(groups)
        self.subs = list(subs)
        self.head = head
        self.stack_subs = StackBranches(name="stack_branches") if subs else None

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        for part in (*self.groups, *self.subs):
            if not part.built:
                part.build(input_shape)
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        outputs = [group(inputs, training=training) for group in self.groups]
        if self.subs:
            own = [self.head.before_finish(sub(inputs, training=training)) for sub in self.subs]
            outputs.append(self.stack_subs(own))
        joined = outputs[0] if len(outputs) == 1 else keras.ops.concatenate(outputs, axis=1)
        return self.head.finish(joined)


def _stacked_group(
    plan: GroupPlan, inits: dict[int, BranchInit], input_shape: tuple[int, ...], head: Head, seed: int
) -> tuple[keras.Sequential, _Stack]:
    members = [inits[m] for m in plan.members]
    k = len(members)
    views = plan.pack_views
    n = len(views)
    layers: list[keras.layers.Layer] = []
    weighted: list[keras.layers.Layer] = []  # one per (kernel, bias) pair, in solo order
    if plan.family == "mlp":
        layers.append(keras.layers.Flatten())
        hidden = StackedDense(k, views[0][-1], shared_input=True, activation="relu", name="hidden")
        layers.append(hidden)
        weighted.append(hidden)
    else:
        for i in range(0, n - 4, 2):
            kernel = views[i]
            conv = StackedConv2D(
                k, kernel[-1], kernel[0], shared_input=i == 0, activation="relu", name=f"conv{i // 2 + 1}"
            )
            layers += [conv, keras.layers.MaxPooling2D(2, name=f"pool{i // 2 + 1}")]
            weighted.append(conv)
        layers.append(BranchFlatten(k, name="flatten"))
        hidden = StackedDense(k, views[n - 4][-1], activation="relu", name="hidden")
        layers.append(hidden)
        weighted.append(hidden)
    rates = [b.dropout for b in members]
    if any(r > 0 for r in rates):
        layers.append(StackedDropout(rates, seed=seed, name="hidden_dropout"))
    output = head.output_layer(k)
    layers.append(output)
    weighted.append(output)
    group = keras.Sequential(layers, name=f"{plan.family}_group")
    group.build((None, *input_shape))
    variables, axes = [], []
    for layer in weighted:
        variables += [layer.kernel, layer.bias]
        axes += list(layer.branch_axes)
    slots = {b.index: plan.slots([w.shape for w in b.state.weights], input_shape) for b in members}
    return group, _Stack(plan, [b.index for b in members], variables, axes, slots)


@dataclass
class PackPlan:
    """How a pack's branches are laid out: stacked groups, and the branches kept separate."""

    groups: list[GroupPlan]
    separate: list[int]

    def key(self, inits: Mapping[int, BranchInit]) -> tuple | None:
        """What a compiled pack must match to take these branches; None: never reused (a
        separate branch is a new model each time)."""
        if self.separate:
            return None
        return tuple(
            (g.family, len(g.members), g.pack_views, any(inits[m].dropout > 0 for m in g.members))
            for g in self.groups
        )


def plan_pack(inits: Sequence[BranchInit], input_shape: tuple[int, ...]) -> PackPlan:
    families: dict[str, list[BranchInit]] = {}
    for b in inits:
        family = b.family and stackable_family(b.family, len(b.state.weights))
        if family is not None:
            families.setdefault(family, []).append(b)
    groups = []
    for family, members in families.items():
        shapes = [[w.shape for w in m.state.weights] for m in members]
        groups += plan_groups(family, [m.index for m in members], shapes, input_shape)
    stacked = {m for g in groups for m in g.members}
    return PackPlan(groups, [b.index for b in inits if b.index not in stacked])


def _stack_route(stack: _Stack, by_index: Mapping[int, BranchInit], also: tuple[str, ...] = ()) -> Route:
    members = [by_index[m] for m in stack.members]
    return Route(
        tuple(m.rule for m in members),
        tuple(stack.members),
        tuple(m.learning_rate for m in members),
        tuple(m.momentum for m in members),
        stacked=True,
        also=also,
    )


def build_pack(
    plan: PackPlan,
    inits: Sequence[BranchInit],
    input_shape: tuple[int, ...],
    head: Head,
    seed: int,
    also: Sequence[tuple[str, ...]] = (),
) -> Pack:
    """Build and initialize a pack (weights and slots from each `BranchInit.state`).

    `also[i]`: rules stacked group i's step is traced with beyond its branches' own, so that
    later packs using them can reuse it (`reuse_pack`).
    """
    by_index = {b.index: b for b in inits}
    groups, stacks = [], []
    for group_plan in plan.groups:
        group, stack = _stacked_group(group_plan, by_index, input_shape, head, seed)
        groups.append(group)
        stacks.append(stack)
    separate = [by_index[i] for i in plan.separate]
    model = PackModel(groups, [b.model for b in separate], head)
    model.build((None, *input_shape))

    routes: list[Route] = []
    routes_of: dict[int, int] = {}
    axes_of: dict[int, int] = {}  # stacked variables: the axis their branches sit on
    route_of: dict[int, tuple[int, int]] = {}
    for i, stack in enumerate(stacks):
        route = len(routes)
        routes.append(_stack_route(stack, by_index, also[i] if i < len(also) else ()))
        for var, axis in zip(stack.variables, stack.axes, strict=True):
            routes_of[id(var)] = route
            axes_of[id(var)] = axis
        for position, m in enumerate(stack.members):
            route_of[m] = (route, position)
    subs = {}
    for b in separate:
        route = len(routes)
        routes.append(Route((b.rule,), (b.index,), (b.learning_rate,), (b.momentum,), stacked=False))
        for v in b.model.trainable_variables:
            routes_of[id(v)] = route
        route_of[b.index] = (route, 0)
        subs[b.index] = b.model
    order = [m for stack in stacks for m in stack.members] + [b.index for b in separate]
    pack = Pack(model, RoutedOptimizer(routes, routes_of, axes_of), order, stacks, subs, route_of)
    pack.groups = groups
    pack.write({b.index: b.state for b in inits if b.index not in subs or b.state.slots is not None})
    return pack


def traced_rules(pack: Pack) -> list[tuple[str, ...]]:
    """The rules each stacked group of a compiled pack computes."""
    return [pack.optimizer.present(r) for r in range(len(pack._stacks))]


def reuse_pack(
    pack: Pack, plan: PackPlan, inits: Sequence[BranchInit], input_shape: tuple[int, ...], seed: int
) -> bool:
    """Give a compiled pack of the same layout new branches (no new trace); False if it cannot
    take them (a rule its step was not traced with)."""
    by_index = {b.index: b for b in inits}
    routes = [_stack_route(_Stack(g, list(g.members), [], [], {}), by_index) for g in plan.groups]
    if len(routes) != len(pack._stacks) or not all(
        pack.optimizer.accepts(r, x) for r, x in enumerate(routes)
    ):
        return False
    pack._route_of = {}
    for r, (stack, group_plan, group) in enumerate(zip(pack._stacks, plan.groups, pack.groups, strict=True)):
        stack.plan, stack.members = group_plan, list(group_plan.members)
        stack.slots = {
            m: group_plan.slots([w.shape for w in by_index[m].state.weights], input_shape)
            for m in stack.members
        }
        pack.optimizer.assign_route(r, routes[r])
        for position, m in enumerate(stack.members):
            pack._route_of[m] = (r, position)
        for layer in group.layers:
            if isinstance(layer, StackedDropout):
                layer.restart([by_index[m].dropout for m in stack.members], seed)
    pack.order = [m for stack in pack._stacks for m in stack.members]
    pack.optimizer.iterations.assign(0)
    pack.write({b.index: b.state for b in inits})
    return True
