"""The data page's fine-tuning figure: what adapting an open model to a dataset's tokens costs on the
cheapest GPU type that holds it, beside the data-check report's compute-optimal figure.

Built on :mod:`engine.estimate.finetune` (the estimate) and :mod:`engine.estimate.sensitivity` (every GPU type at
its smallest fitting count); kept apart from both so neither imports the other.
"""

from __future__ import annotations

from engine.catalog import gpus as gpu_catalog
from engine.errors import ValidationError, require_choice
from engine.estimate.architecture import ModelSpec
from engine.estimate.finetune import METHODS, FinetuneInput, estimate_finetune
from engine.estimate.models import resolve_model
from engine.estimate.sensitivity import cheapest_fits, finetune_by_gpu
from engine.money import Currency, format_amount, get_currency

DATA_LINK_MODEL = "llama-3-8b"  # a mid-size open preset
DATA_LINK_METHOD = "qlora"


def _si(x: float) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def _hours(h: float) -> str:
    if h < 1 / 60:
        return f"{h * 3600:.2g} seconds"
    if h < 1:
        return f"{h * 60:.2g} minutes"
    return f"{h:,.1f} hours" if h < 48 else f"{h / 24:,.1f} days"


def finetune_for_tokens(tokens: float | None, model: ModelSpec | str = DATA_LINK_MODEL, method: str = DATA_LINK_METHOD,
                        epochs: float = 1.0, rank: int = 16, target: str = "all-linear", seq_len: int | None = None,
                        gradient_checkpointing: bool = True) -> dict | None:
    """What fine-tuning ``model`` with ``method`` on ``tokens`` × ``epochs`` costs on the cheapest GPU type
    that holds it (each at its typical MFU and catalog price), as a sentence and its numbers; None
    when there is no token count or the inputs are out of range."""
    if not tokens or tokens <= 0:
        return None
    try:
        spec = resolve_model(model)
        inp = FinetuneInput(model=spec, tokens=float(tokens), epochs=epochs, gpu=next(iter(gpu_catalog())),
                            method=method, rank=rank, target=target, seq_len=seq_len,
                            gradient_checkpointing=gradient_checkpointing)
        estimate_finetune(inp)  # validates once, with a clear error, before the table
        best = cheapest_fits(finetune_by_gpu(inp, methods=(require_choice("method", method, METHODS),)))
    except ValidationError:
        return None
    if best.empty:
        return None
    row = best.iloc[0]
    out = {"model": spec.id, "model_name": spec.name, "method": method, "tokens": float(tokens),
           "epochs": float(epochs), "gpu": row["gpu"], "gpu_name": row["name"], "gpus": int(row["gpus"]),
           "wall_clock_hours": float(row["wall_clock_hours"]), "gpu_hours": float(row["gpu_hours"]),
           "cost_usd": float(row["cost_usd"]),
           "source": "engine.estimate.finetune (Hu et al. 2021; Dettmers et al. 2023), cheapest of finetune_by_gpu"}
    out["sentence"] = finetune_sentence(out)
    return out


def finetune_sentence(figure: dict, currency: Currency | None = None) -> str:
    """The figure as one sentence, its cost in ``currency`` (default USD). Rebuilt from the stored
    numbers, so a saved report reads in any currency."""
    cur = currency or get_currency()
    cost = cur.from_usd(figure["cost_usd"])
    s = cur.symbol
    shown_cost = (f"under {s}0.01" if cost < 0.01 else f"about {format_amount(cost, cur, compact=False)}" if cost < 100
                  else f"about {s}{cost:,.0f}")
    how = {"full": "in full (all weights trained)", "lora": "with LoRA", "qlora": "with QLoRA"}[figure["method"]]
    count, epochs = figure["gpus"], figure["epochs"]
    name = figure.get("gpu_name", figure["gpu"])
    where = f"{count} × {name}" if count > 1 else f"one {name}"
    return (f"Fine-tuning {figure.get('model_name', figure['model'])} {how} on these {_si(figure['tokens'])} tokens × "
            f"{epochs:g} epoch{'s' if epochs != 1 else ''} takes {_hours(figure['wall_clock_hours'])} on {where} "
            f"(the cheapest GPU type that holds it), {shown_cost}.")
