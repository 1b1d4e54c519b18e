"""Compute-optimal sizing with the Chinchilla parametric loss.

L(N, D) = E + A / N^α + B / D^β  (Hoffmann et al. 2022, eq. 2). Minimizing L under C = 6·N·D gives
N_opt = G·(C/6)^(β/(α+β)), D_opt = G⁻¹·(C/6)^(α/(α+β)), G = (α·A / (β·B))^(1/(α+β))  (ibid., eq. 4).
Two fits: Hoffmann et al.'s published, rounded constants (Sec. 3.3 / App. D.2), and the refit of
Besiroglu et al. 2024 ("Chinchilla Scaling: A replication attempt", eq. 3) on data reconstructed from
Hoffmann's Fig. 4, which recovers Chinchilla's own 70B parameters / 1.4T tokens at its 5.76e23-FLOP
budget while the rounded constants give ~32B. The refit is the default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.catalog import GPUSpec, resolve_gpu
from engine.errors import ValidationError, require_choice, require_finite_result, require_number


@dataclass(frozen=True, slots=True)
class ChinchillaFit:
    name: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str

    def loss(self, params: float, tokens: float) -> float:
        return self.E + self.A / params**self.alpha + self.B / tokens**self.beta

    def optimal(self, flops: float) -> tuple[float, float]:
        """(N_opt, D_opt) for a compute budget in FLOPs under C = 6·N·D."""
        a, b = self.alpha, self.beta
        g = (a * self.A / (b * self.B)) ** (1.0 / (a + b))
        n = g * (flops / 6.0) ** (b / (a + b))
        return n, (flops / 6.0) / n


FITS = {
    "besiroglu2024": ChinchillaFit(
        "besiroglu2024", E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658,
        source="Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt, eq. 3",
    ),
    "hoffmann2022": ChinchillaFit(
        "hoffmann2022", E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28,
        source="Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, Sec. 3.3",
    ),
}
DEFAULT_FIT = "besiroglu2024"


@dataclass(frozen=True, slots=True)
class OptimalInput:
    """A compute budget in FLOPs, or a dollar budget on a GPU (converted at the GPU's MFU)."""

    flops: float | None = None
    budget_usd: float | None = None
    gpu: GPUSpec | str | None = None
    mfu: float | None = None
    price_usd_per_hour: float | None = None
    fit: str = DEFAULT_FIT


@dataclass(frozen=True, slots=True)
class OptimalEstimate:
    params: float
    tokens: float
    predicted_loss: float
    flops: float
    tokens_per_param: float
    fit: str
    gpu: str | None
    gpu_hours: float | None
    cost_usd: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def get_fit(name: object) -> ChinchillaFit:
    return FITS[require_choice("fit", name, FITS)]


def estimate_optimal(inp: OptimalInput) -> OptimalEstimate:
    fit = get_fit(inp.fit)
    gpu = None
    if (inp.flops is None) == (inp.budget_usd is None):
        raise ValidationError("give exactly one of --flops and --budget-usd")
    if inp.flops is not None:
        flops = require_number("flops", inp.flops, low=1e6, high=1e32)
        if inp.gpu is not None:
            gpu = resolve_gpu(inp.gpu)
    else:
        budget = require_number("budget-usd", inp.budget_usd, low=0, low_inclusive=False, high=1e13)
        if inp.gpu is None:
            raise ValidationError("--budget-usd needs --gpu to turn dollars into FLOPs")
        gpu = resolve_gpu(inp.gpu)
    gpu_hours = cost = None
    if gpu is not None:
        mfu = require_number("mfu", gpu.typical_mfu if inp.mfu is None else inp.mfu, low=0, low_inclusive=False, high=1)
        price = require_number("price", gpu.price_usd_per_hour if inp.price_usd_per_hour is None else inp.price_usd_per_hour, low=0, high=1e4)
        rate = gpu.peak_flops("bf16") * mfu * 3600.0  # model FLOPs per GPU-hour
        if rate <= 0:  # underflow: a tiny mfu on a tiny (custom) GPU
            raise ValidationError(f"inputs out of range: mfu {mfu:g} on gpu {gpu.id} gives no throughput")
        if inp.flops is None:
            if price <= 0:
                raise ValidationError("price must be > 0 to turn a dollar budget into GPU-hours")
            gpu_hours = budget / price
            flops = require_number("flops", gpu_hours * rate, low=1e6, high=1e32)
        else:
            gpu_hours = flops / rate
        cost = gpu_hours * price
    n, d = fit.optimal(flops)
    est = OptimalEstimate(
        params=n, tokens=d, predicted_loss=fit.loss(n, d), flops=flops, tokens_per_param=d / n,
        fit=fit.name, gpu=gpu.id if gpu else None, gpu_hours=gpu_hours, cost_usd=cost,
    )
    require_finite_result(est, "mfu and price")
    return est


def predicted_loss(params: float, tokens: float, fit: str = DEFAULT_FIT) -> float:
    """Chinchilla loss L(N, D) under the chosen fit (nats per token on MassiveText)."""
    n = require_number("params", params, low=1, high=1e16)
    d = require_number("tokens", tokens, low=1, high=1e17)
    return get_fit(fit).loss(n, d)

