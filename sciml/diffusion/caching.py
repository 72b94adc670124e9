"""Training-free feature caching for diffusion sampling by Taylor forecasting, after TaylorSeer (Liu et al.
2025, "From Reusing to Forecasting: Accelerating Diffusion Models with TaylorSeers", sec. 3.3, eq. 7-9).

Features of a diffusion network change smoothly across sampling steps, so on most steps they can be
*forecast* from the values computed on a few earlier "full" steps instead of being recomputed. With the
sampling step index ``i = 0, 1, 2, ...`` as the time variable:

* **Full steps**: the first ``warmup_steps`` steps, then every ``interval``-th step after the last warm-up
  step (``i < warmup_steps`` or ``(i - warmup_steps + 1) % interval == 0``; TaylorSeer's schedule, which
  refreshes when its counter reaches ``interval - 1``). On a full step ``cache(key, compute)`` calls
  ``compute()``, returns its value and updates the key's finite-difference table.
* **Forecast steps**: ``cache(key, compute)`` does not call ``compute`` and returns the order-``m`` Taylor
  forecast from the last full step ``s_k``:

      F(i) ~ sum_{j=0}^{m} F^(j)(s_k) / j! * (i - s_k)^j,        m = min(order, full steps so far - 1),

  i.e. the forecast falls back to lower orders until enough full steps exist (as TaylorSeer does).

**Derivative estimates (a deliberate refinement).** TaylorSeer estimates ``F^(j)(s_k)`` by iterated
backward differences all divided by the *last* gap, ``Delta^j F / (s_k - s_{k-1})^j``. That is exact for
linear features but not beyond: for ``F = i^2`` the first difference is the secant slope at the gap's
midpoint, which biases the forecast by ``F'' * gap / 2 * (i - s_k)``, and the warm-up steps make the gaps
uneven. We keep instead the Newton divided differences ``F[s_k], F[s_k, s_{k-1}], ...,
F[s_k, ..., s_{k-m}]`` of the last ``m + 1`` full steps (each level divided by its own node span) and take
the derivatives of their interpolating polynomial ``P`` at ``s_k``. The Taylor series of a degree-``m``
polynomial at ``s_k`` *is* the polynomial, so the forecast is evaluated in Newton form,

    F(i) ~ P(i) = F[s_k] + F[s_k, s_{k-1}] (i - s_k) + F[s_k, s_{k-1}, s_{k-2}] (i - s_k)(i - s_{k-1}) + ...,

which equals TaylorSeer's at ``order = 1`` and reproduces any polynomial feature of degree <= ``order``
exactly, whatever the spacing of the full steps (both tested).

**Where to cache.** The network decides: it wraps the features it wants cached in ``cache("name", lambda:
...)``. DiT-3D wraps its whole transformer trunk's residual ``h_L - h_0``; since the forecast is linear in
the cached values, that equals forecasting every block's branch outputs separately (TaylorSeer caches
each attention / MLP output) and costs one tensor instead of ``2 L``.

**Protocol with the sampler.** :meth:`GaussianDiffusion.sample` calls :meth:`TaylorCache.reset` once and
then :meth:`TaylorCache.begin_step` before every network call, passing ``cache=`` to the network. With
classifier-free guidance the cached features hold the conditional and unconditional halves of the one
batched call. ``interval = 1`` makes every step a full step and reproduces uncached sampling exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class TaylorCache:
    """Per-key Taylor forecasting of network features across sampling steps (see the module docstring).

    Args:
        interval: a full step every ``interval`` steps after the warm-up (``1`` disables forecasting).
        order: the highest Taylor order of the forecast (``0`` reuses the last full value, as FORA does).
        warmup_steps: how many initial steps are all full steps (at least 1: nothing to forecast from before).

    Counters: ``full_steps`` and ``forecast_steps`` count the steps begun since the last :meth:`reset`.
    """

    def __init__(self, interval: int = 3, order: int = 1, warmup_steps: int = 2):
        for name, value, low in (
            ("interval", interval, 1),
            ("order", order, 0),
            ("warmup_steps", warmup_steps, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"TaylorCache {name} must be an integer >= {low}, got {value!r}")
        self.interval = interval
        self.order = order
        self.warmup_steps = warmup_steps
        self.reset()

    def reset(self) -> None:
        """Forget every stored feature and zero the counters (call before each new sampling run)."""
        self.full_steps = 0
        self.forecast_steps = 0
        self._step: int | None = None
        self._full = False
        self._keys_this_step: set[str] = set()
        # Per key: the full-step indices newest first, and the Newton divided differences
        # F[s_k], F[s_k, s_{k-1}], ... over those nodes (at most order + 1 of each).
        self._nodes: dict[str, list[int]] = {}
        self._differences: dict[str, list[Tensor]] = {}

    def is_full_step(self, step_index: int) -> bool:
        """Whether step ``step_index`` computes features (True) or forecasts them (False)."""
        if step_index < self.warmup_steps:
            return True
        return (step_index - self.warmup_steps + 1) % self.interval == 0

    @property
    def step_index(self) -> int | None:
        """The current step, or None before the first :meth:`begin_step`."""
        return self._step

    def begin_step(self, step_index: int) -> None:
        """Start sampling step ``step_index``; indices must increase within one run (0, 1, 2, ...)."""
        if isinstance(step_index, bool) or not isinstance(step_index, int) or step_index < 0:
            raise ValueError(f"step_index must be a non-negative integer, got {step_index!r}")
        if self._step is not None and step_index <= self._step:
            raise ValueError(
                f"step_index must increase within a sampling run (got {step_index} after {self._step}); "
                "call reset() before starting a new run"
            )
        self._step = step_index
        self._full = self.is_full_step(step_index)
        self._keys_this_step = set()
        if self._full:
            self.full_steps += 1
        else:
            self.forecast_steps += 1

    def __call__(self, key: str, compute: Callable[[], Tensor]) -> Tensor:
        """``compute()`` on a full step (stored for later forecasts), its Taylor forecast otherwise."""
        if self._step is None:
            raise RuntimeError("TaylorCache used before begin_step(); the sampler calls it before every step")
        if key in self._keys_this_step:
            raise RuntimeError(
                f"TaylorCache key {key!r} used twice in step {self._step}; give each feature its own key"
            )
        self._keys_this_step.add(key)
        if self._full or key not in self._nodes:
            # A key first seen on a forecast step has nothing to forecast from: compute it, start a table.
            value = compute()
            self._update(key, self._step, value.detach())
            return value
        return self._forecast(key, self._step)

    def _update(self, key: str, step: int, value: Tensor) -> None:
        old_nodes = self._nodes.get(key, [])
        old_differences = self._differences.get(key, [])
        differences = [value]
        # F[x_0..x_m] = (F[x_0..x_{m-1}] - F[x_1..x_m]) / (x_0 - x_m) with x_0 = step and x_1.. = old nodes.
        for m in range(1, min(self.order, len(old_nodes)) + 1):
            differences.append((differences[m - 1] - old_differences[m - 1]) / float(step - old_nodes[m - 1]))
        self._nodes[key] = [step, *old_nodes][: self.order + 1]
        self._differences[key] = differences

    def _forecast(self, key: str, step: int) -> Tensor:
        nodes, differences = self._nodes[key], self._differences[key]
        # Horner on the Newton form: P(i) = d_0 + (i - x_0)(d_1 + (i - x_1)(d_2 + ...)).
        forecast = differences[-1]
        for m in range(len(differences) - 2, -1, -1):
            forecast = torch.add(differences[m], forecast, alpha=float(step - nodes[m]))
        return forecast
