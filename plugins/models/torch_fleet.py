"""Fleets of the built-in PyTorch models: K runs of one model advanced by one
vectorized program (the ``fleet`` capability, see benchbase.contracts.Fleet).

A model writes its loss and its sampler once, against a *view* of its network(s)
and randomness:

- ``view.apply(fn, *args)`` calls ``fn(net, *args)``; for a fleet, once per member
  through ``torch.func.vmap`` over the stacked parameters (``functional_call``), the
  arguments stacked on a leading member axis;
- ``view.draw(fn, *args)`` calls ``fn(generator, *args)`` with each member's own
  ``torch.Generator`` (outside vmap, which has no per-member generators) and stacks
  the results.

:class:`Solo` is the view of one run (``apply`` and ``draw`` call straight through,
so the single-run code path is unchanged); :class:`FleetView` is the view of a
fleet. Because every member draws from its own generator in the order the single
run does, a member's numbers equal its run trained alone up to floating-point
reordering (batched instead of plain matrix products, a fused Adam kernel).

:class:`TorchFleet` holds the stacked parameters and Adam state of K
``TorchState`` runs and updates all of them with one backward pass and one fused
Adam call per group of members that share a learning rate and a step count.
"""
from __future__ import annotations

import copy
import ctypes
import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call, vmap

from benchbase.contracts import Fleet

from .torch_common import TorchState


class Solo:
    """One run's network and step generator (``key``): the view the single-run path uses."""

    def __init__(self, net: nn.Module, key: torch.Generator | None):
        self.net, self.key = net, key

    def apply(self, fn: Callable, *args):
        return fn(self.net, *args)

    def draw(self, fn: Callable, *args):
        return fn(self.key, *args)


class _Call(nn.Module):
    """Wraps a network so ``functional_call`` can run any function of it, not only forward."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, fn: Callable, *args):
        return fn(self.net, *args)


def _in_dims(arg):
    """vmap's in_dims for an argument: 0 for tensors, None for None, recursively for tuples."""
    if arg is None:
        return None
    if isinstance(arg, tuple):
        return type(arg)(*(_in_dims(a) for a in arg)) if hasattr(arg, "_fields") else \
            tuple(_in_dims(a) for a in arg)
    return 0


def _member(arg, k: int):
    """Member ``k``'s slice of a stacked argument (None and tuples pass through)."""
    if arg is None:
        return None
    if isinstance(arg, tuple):
        parts = [_member(a, k) for a in arg]
        return type(arg)(*parts) if hasattr(arg, "_fields") else tuple(parts)
    return arg[k]


def _stack(items: list):
    """Stack per-member results on a new leading axis (None and tuples elementwise)."""
    first = items[0]
    if first is None:
        return None
    if isinstance(first, tuple):
        parts = [_stack([it[i] for it in items]) for i in range(len(first))]
        return type(first)(*parts) if hasattr(first, "_fields") else tuple(parts)
    return torch.stack(items)


class FleetView:
    """K members' networks (stacked parameters) and generators, for a model's loss and sampler."""

    def __init__(self, call: _Call, params: dict, buffers: dict, keys: list):
        self.call, self.params, self.buffers, self.keys = call, params, buffers, keys

    def apply(self, fn: Callable, *args):
        def one(params, buffers, *member_args):
            return functional_call(self.call, (params, buffers), (fn, *member_args))

        dims = (0, 0 if self.buffers else None, *(_in_dims(a) for a in args))
        return vmap(one, in_dims=dims)(self.params, self.buffers or {}, *args)

    def draw(self, fn: Callable, *args):
        return _stack([fn(key, *(_member(a, k) for a in args)) for k, key in enumerate(self.keys)])


@dataclass
class TorchFleetState:
    """K TorchState runs stacked: parameters and Adam moments carry a leading member axis."""

    params: dict  # name -> (K, ...) leaf tensor
    buffers: dict  # name -> (K, ...) tensor
    exp_avg: list  # per parameter, (K, ...)
    exp_avg_sq: list
    steps: list  # Adam's step count per member (host ints: grouping needs no device sync)
    hparams: list  # per member: the Adam param group's settings (lr, betas, eps, ...)

    @property
    def size(self) -> int:
        return len(self.steps)


def _dense(t: torch.Tensor) -> torch.Tensor:
    """``t`` with its dimensions permuted into memory order (a contiguous view of a dense
    tensor), keeping the member axis first: the fused Adam kernel walks raw memory, so
    the parameter, its gradient and its moments must share one layout."""
    if t.is_contiguous():
        return t
    order = [0] + sorted(range(1, t.dim()), key=lambda d: -t.stride(d))
    return t.permute(order)


def _match_layouts(state: TorchFleetState, grads) -> None:
    """Give each parameter (and its Adam moments) the memory layout of its gradient.

    Under vmap, a Linear weight's gradient comes out transposed in memory; matching the
    parameter to it once saves a transposing copy of every gradient at every step."""
    for i, (name, p) in enumerate(state.params.items()):
        g = grads[i]
        if p.stride() == g.stride() or not _dense(g).is_contiguous():
            continue

        def like_grad(t: torch.Tensor) -> torch.Tensor:
            out = torch.empty_strided(g.size(), g.stride(), dtype=t.dtype, device=t.device)
            return out.copy_(t)

        state.params[name] = like_grad(p.detach()).requires_grad_(True)
        state.exp_avg[i], state.exp_avg_sq[i] = like_grad(state.exp_avg[i]), like_grad(state.exp_avg_sq[i])


#: glibc's mallopt parameters (malloc.h) and the values a CPU fleet sets (bytes).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 << 20, 128 << 20
_heap_kept = False


def keep_freed_memory() -> bool:
    """Let glibc's malloc serve a fleet's large per-step tensors from freed heap memory.

    A fleet's gradients and activations are megabytes each (a (16, 256, 256) weight
    gradient is 4 MB). glibc hands such blocks back to the kernel when they are freed
    (mmap above its threshold, heap trimming above another), so every step faults the
    same pages in again: about 2,000 page faults and 4 to 5 ms of system time per step
    of a 16-member fleet of the memorization_transition MLP, a fifth of the step
    (docs/performance.md). Keeping up to 128 MB of freed heap and serving blocks up to
    32 MB from it removes that. Process-wide and numerically neutral (it changes where
    memory comes from, not what is computed); a no-op off glibc. True when applied."""
    global _heap_kept
    if _heap_kept or not sys.platform.startswith("linux"):
        return _heap_kept
    try:
        libc = ctypes.CDLL("libc.so.6")
        _heap_kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                          and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, ...): leave the allocator alone
        pass
    return _heap_kept


LossFn = Callable[[Any, Any], torch.Tensor]  # (view, batch) -> per-member losses
SampleFn = Callable[[Any, int], torch.Tensor]  # (view, n) -> samples


class TorchFleet(Fleet):
    """The fleet of a built-in PyTorch model whose state is a TorchState with an Adam optimiser.

    ``loss(view, batch)`` returns the training loss (one per member for a FleetView);
    ``sample(view, n)`` the samples. Both are the model's own single-run code.
    """

    def __init__(self, template: nn.Module, loss: LossFn, sample: SampleFn):
        self.template = copy.deepcopy(template)  # for unstacking into single-run states
        self.call = _Call(copy.deepcopy(template).to("meta"))
        self.loss, self.sampler = loss, sample
        if getattr(next(template.parameters(), None), "device", None) == torch.device("cpu"):
            keep_freed_memory()

    # ------------------------------------------------------------------- state
    def stack(self, states: list) -> TorchFleetState:
        names = [name for name, _ in self.call.named_parameters()]
        params, buffers, exp_avg, exp_avg_sq, steps, hparams = {}, {}, [], [], [], []
        per_member = []
        for state in states:
            if not isinstance(state, TorchState) or not isinstance(state.opt, torch.optim.Adam):
                raise TypeError("TorchFleet stacks TorchState runs trained with torch.optim.Adam")
            if len(state.opt.param_groups) != 1:
                raise TypeError("TorchFleet needs one Adam parameter group per run")
            group = state.opt.param_groups[0]
            if group["amsgrad"] or group["maximize"] or group.get("differentiable"):
                raise TypeError("TorchFleet supports plain Adam (no amsgrad, maximize or differentiable)")
            per_member.append(dict(_Call(state.net).named_parameters()))
            opt_state = [state.opt.state.get(p, {}) for p in state.net.parameters()]
            step = {float(s["step"]) for s in opt_state if "step" in s}
            if len(step) > 1:
                raise TypeError("TorchFleet needs one Adam step count per run")
            steps.append(int(step.pop()) if step else 0)
            hparams.append({k: v for k, v in group.items() if k != "params"})
            exp_avg.append([s.get("exp_avg") for s in opt_state])
            exp_avg_sq.append([s.get("exp_avg_sq") for s in opt_state])
        for name in names:
            params[name] = torch.stack([m[name].detach() for m in per_member]).requires_grad_(True)
        for name, _ in self.call.named_buffers():
            buffers[name] = torch.stack([dict(_Call(s.net).named_buffers())[name] for s in states])
        plist = list(params.values())

        def moments(per_run: list) -> list:
            return [torch.stack([run[i] if run[i] is not None else torch.zeros_like(p[0]) for run in per_run])
                    for i, p in enumerate(plist)]

        return TorchFleetState(params, buffers, moments(exp_avg), moments(exp_avg_sq), steps, hparams)

    def unstack(self, state: TorchFleetState, i: int) -> TorchState:
        net = copy.deepcopy(self.template)
        with torch.no_grad():
            for (name, p), stacked in zip(net.named_parameters(), state.params.values()):
                p.copy_(stacked[i])
            for (name, b), stacked in zip(net.named_buffers(), state.buffers.values()):
                b.copy_(stacked[i])
        opt = torch.optim.Adam(net.parameters(), **state.hparams[i])
        if state.steps[i]:
            for p, m, v in zip(net.parameters(), state.exp_avg, state.exp_avg_sq):
                opt.state[p] = {"step": torch.tensor(float(state.steps[i])), "exp_avg": m[i].clone(),
                                "exp_avg_sq": v[i].clone()}
        return TorchState(net, opt)

    def select(self, state: TorchFleetState, keep: list[int]) -> TorchFleetState:
        idx = torch.as_tensor(keep, device=next(iter(state.params.values())).device)
        return TorchFleetState(
            {k: v.detach()[idx].requires_grad_(True) for k, v in state.params.items()},
            {k: v[idx] for k, v in state.buffers.items()},
            [m[idx] for m in state.exp_avg], [v[idx] for v in state.exp_avg_sq],
            [state.steps[i] for i in keep], [state.hparams[i] for i in keep])

    # -------------------------------------------------------------------- step
    def step(self, state: TorchFleetState, batch, keys: list):
        view = FleetView(self.call, state.params, state.buffers, keys)
        losses = self.loss(view, batch)
        grads = torch.autograd.grad(losses.sum(), list(state.params.values()))  # d(sum)/d(member k) = d(loss_k)
        with torch.no_grad():
            _match_layouts(state, grads)
            self._adam(state, list(state.params.values()), grads)
        return state, {"loss": losses.detach()}

    @staticmethod
    def _adam(state: TorchFleetState, plist: list, grads) -> None:
        """torch.optim.Adam's update, fused, for each run of members with one lr and step."""
        device = plist[0].device
        tensors = [[_dense(t) for t in ts] for ts in (plist, grads, state.exp_avg, state.exp_avg_sq)]
        start = 0
        while start < state.size:
            hp, step = state.hparams[start], state.steps[start]
            end = start + 1
            while end < state.size and state.steps[end] == step and state.hparams[end] == hp:
                end += 1
            if start == 0 and end == state.size:
                params, grad, exp_avg, exp_avg_sq = tensors
            else:
                params, grad, exp_avg, exp_avg_sq = ([t[start:end] for t in ts] for ts in tensors)
            count = torch.full((), float(step + 1), device=device)
            beta1, beta2 = hp["betas"]
            torch._fused_adam_(params, grad, exp_avg, exp_avg_sq, [], [count] * len(params), amsgrad=False,
                               lr=float(hp["lr"]), beta1=float(beta1), beta2=float(beta2),
                               weight_decay=float(hp["weight_decay"]), eps=float(hp["eps"]), maximize=False)
            start = end
        state.steps = [s + 1 for s in state.steps]

    # ----------------------------------------------------------------- sample
    def sample(self, state: TorchFleetState, n: int, keys: list, members: list[int] | None = None):
        params, buffers = state.params, state.buffers
        if members is not None and list(members) != list(range(state.size)):
            idx = torch.as_tensor(members, device=next(iter(params.values())).device)
            params = {k: v[idx] for k, v in params.items()}
            buffers = {k: v[idx] for k, v in buffers.items()}
        with torch.no_grad():
            params = {k: v.detach() for k, v in params.items()}
            return self.sampler(FleetView(self.call, params, buffers, keys), n)
