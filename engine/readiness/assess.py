"""Everything the readiness page, the CLI and the report show for one scenario: the projection, the
uncertainty, and a verdict per area read from this workspace's artifacts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.errors import ValidationError
from engine.money import Currency
from engine.readiness import areas as A
from engine.readiness.finance import (DAYS_PER_MONTH, HORIZON_MONTHS, HOURS_PER_MONTH, project, serving_basis,
                                      serving_comparison, training_costs)
from engine.readiness.montecarlo import DEFAULT_SAMPLES, PointCosts, Range, run
from engine.readiness.profile import Profile

CONTRACT = ("training_cost_usd", "runway_months_after_training", "serving_requests_per_s", "serving_gpus_needed",
            "serving_cost_per_month_usd", "revenue_per_month_usd", "gross_margin_per_request_usd", "break_even_users",
            "cash_out_month")


@dataclass(frozen=True)
class Artifacts:
    """What the workspace knows: latest data check, training run (and its first validation loss),
    calibration and serving calibration."""

    data: dict | None = None
    training: dict | None = None
    first_val_loss: float | None = None
    calibration: dict | None = None
    serving_calibration: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gather(profile: Profile) -> Artifacts:
    from engine.artifacts import (all_runs, first_val_loss, latest_calibration, latest_data_check,
                                  latest_serving_calibration, latest_training_run)

    frame = all_runs()  # one registry read for the kinds of run
    run_ = latest_training_run(frame)
    return Artifacts(data=latest_data_check(), training=run_,
                     first_val_loss=first_val_loss(run_["name"]) if run_ else None,
                     calibration=latest_calibration(frame),
                     serving_calibration=latest_serving_calibration(frame))


@dataclass(frozen=True)
class Assessment:
    scenario: str
    profile: Profile
    projection: dict | None
    uncertainty: dict | None
    areas: tuple[A.Area, ...]
    artifacts: Artifacts
    assumptions: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON: the contract's fields first (None where they cannot be computed), then detail."""
        p = self.projection or {}
        q = (self.uncertainty or {}).get("quantiles") or {}
        out: dict[str, Any] = {"scenario": self.scenario}
        out.update({k: p.get(k) for k in CONTRACT})
        out["quantiles"] = {k: q.get(k) for k in ("training_cost_usd", "serving_cost_per_month_usd",
                                                  "runway_months_after_training", "gross_margin_per_request_usd")}
        out["areas"] = [a.to_dict() for a in self.areas]
        out["serving_comparison"] = p.get("serving_comparison")
        for key in ("training_share_of_cash", "serving_requests_per_s_average", "serving_gpus_per_replica",
                    "serving_requests_per_s_per_replica", "serving_speed_source", "revenue_per_request_usd",
                    "serving_cost_per_request_usd", "gross_margin_per_user_month_usd", "horizon_months"):
            out[key] = p.get(key)
        out["assumptions"] = self.assumptions
        out["training"] = p.get("training") or []
        out["months"] = p.get("months") or []
        unc = self.uncertainty or {}
        out["uncertainty"] = {k: unc.get(k) for k in ("samples", "cash_out_probability", "tornado", "fan", "ranges")}
        out["profile"] = self.profile.to_dict()
        out["artifacts"] = self.artifacts.to_dict()
        return out


def incomplete(errors: dict[str, str], artifacts: Artifacts | None = None) -> list[A.Area]:
    """Verdicts for a profile that failed validation: the money and latency areas say what is missing
    (never a figure built on it); data and model still read the workspace."""
    from engine.artifacts import all_runs, first_val_loss, latest_data_check, latest_training_run

    if artifacts is None:
        run_ = latest_training_run(all_runs())
        artifacts = Artifacts(data=latest_data_check(), training=run_,
                              first_val_loss=first_val_loss(run_["name"]) if run_ else None)
    fields = ", ".join(k or "profile" for k in errors)
    first = next(iter(errors.values()), "")
    why = f"The profile needs fixing first ({fields}): {first}"
    return [A.Area("training", "no data yet", why, A.PAGES["training"]),
            A.Area("serving", "no data yet", why, A.PAGES["serving"]),
            A.data_area(artifacts.data), A.model_area(artifacts.training, artifacts.first_val_loss),
            A.Area("latency", "no data yet", why, A.PAGES["latency"])]


def assess(profile: Profile, *, scenario: str = "base", samples: int = DEFAULT_SAMPLES,
           ranges: dict[str, Range] | None = None, artifacts: Artifacts | None = None,
           currency: Currency | None = None) -> Assessment:
    """Project the scenario, run the Monte Carlo and give each area its verdict (its sentences' money in
    ``currency``, default USD; the figures stay USD). A training plan or a
    serving model the estimators refuse turns into a blocked verdict naming the problem, and the
    figures that depend on it are None (never a number built on a refused input)."""
    arts = gather(profile) if artifacts is None else artifacts
    train_error = serve_error = None
    runs: list[dict] = []
    basis = None
    try:
        runs = training_costs(profile, arts.calibration)
    except ValidationError as exc:
        train_error = str(exc)
    try:
        basis = serving_basis(profile, arts.serving_calibration)
    except ValidationError as exc:
        serve_error = str(exc)
    projection = uncertainty = comparison = None
    own = None
    if profile.serving_api and basis is not None:  # the API against self-hosting the named open model
        try:
            own = serving_basis(profile, arts.serving_calibration, self_host=True)
            comparison = serving_comparison(profile, basis, own)
        except ValidationError as exc:
            comparison = {"api": basis.model, "self_host_error": str(exc)}
    if train_error is None and basis is not None:
        proj = project(profile, basis, sum(r["cost_usd"] for r in runs), training=tuple(runs))
        projection = proj.to_dict()
        projection["serving_comparison"] = comparison
        point = PointCosts(run_costs=tuple(r["cost_usd"] for r in runs), run_mfus=tuple(r["mfu"] for r in runs),
                           basis=basis, run_mfu_free_costs=tuple(r.get("mfu_free_cost_usd", 0.0) for r in runs))
        uncertainty = run(profile, point, ranges, samples=samples).to_dict()
    verdicts = (
        A.training_area(projection, profile.cash_usd, train_error, currency),
        A.serving_area(projection, serve_error, currency),
        A.data_area(arts.data),
        A.model_area(arts.training, arts.first_val_loss),
        A.latency_area(profile.p95_latency_s, (own or basis).request_latency_s if basis else None,
                       (own or basis).source if basis and (own or basis).source.startswith("estimator with efficiencies measured")
                       else None),
    )
    assumptions = {
        "hours_per_month": HOURS_PER_MONTH, "days_per_month": DAYS_PER_MONTH, "horizon_months": HORIZON_MONTHS,
        "peak_to_average": profile.peak_factor, "pricing": profile.pricing[0],
        "serving": basis.to_dict() if basis else None,
        "note": "Servers are sized for average load × peak_to_average; daily active users are the paying users; "
                "training is paid at month 0.",
    }
    return Assessment(scenario=scenario, profile=profile, projection=projection, uncertainty=uncertainty,
                      areas=verdicts, artifacts=arts, assumptions=assumptions)
