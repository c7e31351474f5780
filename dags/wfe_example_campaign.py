"""An AI-powered campaign: Campaign Created → Persona Validation → AI Creative Generation →
Multichannel Deploy → Metrics Collection → Optimization Loop.

* **Prompt versioning**: the prompt is the artifact ``campaign/prompt`` in airflow-wfe's registry
  (``wfe artifacts register campaign/prompt dags/prompts/campaign-v1.txt --activate``). The run
  reads the active version once, in ``campaign_created``, and every generation of the run uses
  exactly that version (``use_artifact(name, version)``, recorded with the run), whatever is
  activated meanwhile. ``wfe artifacts rollback campaign/prompt`` takes a bad prompt back.
* **Generation** goes through a pluggable generator (``campaign_model.py``; offline and seeded by
  default) and an explicit cost model; each generation's cost goes to the cost ledger
  (``record_cost``), and the number of generations is recorded as an outcome.
* **Deploy**: each channel (search, social, email) shows a creative set through a ``live``
  symlink under ``$AIRFLOW_HOME/wfe-demo-campaign/channels``; the saga switches them back.
* **Metrics**: media spend goes to the ledger; impressions, clicks, conversions and revenue are
  recorded as business metrics. ROI, CPA, CTR and cost per generation are **not** computed here:
  airflow-wfe computes them from the recorded spend and outcomes (``wfe demo``'s report,
  ``airflow_wfe.app.campaign``).
* **Optimization loop**: at most ``ITERATIONS`` rounds, each behind a policy check (``campaign``
  policy in ``policies/campaign.yaml``: a 400 EUR spend cap for the run, no persona under 18). A
  round regenerates the creatives and keeps them only if the CPA improves, else rolls the channels
  back to the previous creative set. A round that would pass the cap is denied: the run stops
  (REJECTED) and the saga takes every channel back.

Try a budget stop: ``airflow dags test wfe_example_campaign -c '{"media_spend": 80}'``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from campaign_model import CHANNELS, Channels, CostModel, audience_response, load_generator

from airflow_wfe import compensate, policy_gate

PROMPT = "campaign/prompt"
#: The optimization loop's bound: at most this many rounds after the first.
ITERATIONS = 2
COSTS = CostModel()


def _params() -> dict[str, Any]:
    return dict(get_current_context()["params"])


def _generate(campaign: dict[str, Any], seed: int) -> dict[str, Any]:
    """One creative per persona from the run's pinned prompt; each generation's cost to the ledger."""
    from airflow_wfe import record_business_metric, record_cost, use_artifact

    prompt = use_artifact(PROMPT, campaign["prompt_version"]).decode()
    generator = load_generator()
    creatives = []
    for persona in campaign["personas"]:
        creative = generator.generate(prompt, persona["name"], seed)
        record_cost(
            COSTS.cost(creative),
            currency="EUR",
            detail=f"generation for {persona['name']} ({creative.tokens} tokens, {generator.name})",
        )
        creatives.append(creative)
    record_business_metric("generations", len(creatives), unit="count")
    version = Channels.default().save(creatives, campaign["prompt_version"])
    return {"set": version, "creatives": [vars(c) for c in creatives]}


def _collect(creatives: list[dict[str, Any]], round_number: int) -> dict[str, float]:
    """A round on every channel: media spend to the ledger, outcomes as business metrics."""
    from airflow_wfe import record_business_metric, record_cost

    spend = float(_params()["media_spend"])
    totals = {"impressions": 0.0, "clicks": 0.0, "conversions": 0.0, "revenue": 0.0}
    for channel in CHANNELS:
        for key, value in audience_response(creatives, channel, spend, round_number).items():
            totals[key] += value
    record_cost(spend * len(CHANNELS), currency="EUR", detail=f"media spend, round {round_number}")
    units = {"impressions": "count", "clicks": "count", "conversions": "count", "revenue": "EUR"}
    for key, value in totals.items():
        record_business_metric(key, value, unit=units[key])
    cpa = spend * len(CHANNELS) / totals["conversions"] if totals["conversions"] else None
    return {**totals, "cpa": cpa}


def _show(version: str) -> dict[str, str | None]:
    channels = Channels.default()
    return {channel: channels.show(channel, version) for channel in CHANNELS}


def undo_deploy(result: dict[str, Any], idempotency_key: str) -> None:
    """Every channel back on the creative set it showed before this step."""
    channels = Channels.default()
    for channel, old in result["before"].items():
        channels.restore(channel, result["set"], old)


@dag(
    dag_id="wfe_example_campaign",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "example", "campaign"],
    default_args={"owner": "marketing", "retries": 0, "retry_delay": timedelta(seconds=1)},
    params={
        "personas": Param(
            [
                {"name": "young parents", "min_age": 25},
                {"name": "students", "min_age": 18},
                {"name": "retirees", "min_age": 65},
            ],
            type="array",
        ),
        "media_spend": Param(40.0, type="number", minimum=0, description="EUR per channel/round"),
        "target_cpa": Param(5.0, type="number", exclusiveMinimum=0),
    },
    doc_md=__doc__,
)
def wfe_example_campaign() -> None:
    @task
    def campaign_created() -> dict[str, Any]:
        """Pin the run to the prompt version active now."""
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_wfe import use_artifact
        from airflow_wfe.adapters.task.artifacts import ArtifactNotFoundError, version_for

        try:
            prompt = use_artifact(PROMPT)
        except ArtifactNotFoundError as exc:
            raise AirflowFailException(
                f"{exc}; register one first: wfe artifacts register {PROMPT} "
                "dags/prompts/campaign-v1.txt --activate"
            ) from exc
        params = _params()
        return {
            "prompt_version": version_for(prompt),
            "personas": list(params["personas"]),
            "target_cpa": float(params["target_cpa"]),
        }

    @policy_gate(policies=["campaign"])
    def validate_personas(campaign: dict[str, Any]) -> dict[str, Any]:
        personas = campaign["personas"]
        return {
            "campaign": {
                "personas": len(personas),
                "under_18": sum(1 for p in personas if int(p.get("min_age", 0)) < 18),
            }
        }

    @task
    def generate_creatives(campaign: dict[str, Any]) -> dict[str, Any]:
        return _generate(campaign, seed=0)

    @task
    def deploy_channels(generated: dict[str, Any]) -> dict[str, Any]:
        return {"set": generated["set"], "before": _show(generated["set"])}

    @task
    def collect_metrics(generated: dict[str, Any], deployed: dict[str, Any]) -> dict[str, Any]:
        figures = _collect(generated["creatives"], round_number=0)
        return {"set": deployed["set"], "creatives": generated["creatives"], **figures}

    campaign = campaign_created()
    validated = validate_personas(campaign)
    generated = generate_creatives(campaign)
    deployed = deploy_channels(generated)
    compensate(deployed, undo_deploy)
    validated >> generated
    state = collect_metrics(generated, deployed)

    for number in range(1, ITERATIONS + 1):

        @policy_gate(policies=["campaign"], task_id=f"optimize_{number}_check")
        def check(last: dict[str, Any], number: int = number) -> dict[str, Any]:
            spend = float(_params()["media_spend"]) * len(CHANNELS)
            return {"campaign": {"iteration": number, "planned_spend": spend, "cpa": last["cpa"]}}

        @task(task_id=f"optimize_{number}_generate")
        def regenerate(
            campaign: dict[str, Any], last: dict[str, Any], number: int = number
        ) -> dict[str, Any] | None:
            """New creatives for the round (None: the target CPA is met, nothing to spend)."""
            if last["cpa"] is not None and last["cpa"] <= campaign["target_cpa"]:
                return None
            return _generate(campaign, seed=number)

        @task(task_id=f"optimize_{number}")
        def optimize(
            generated: dict[str, Any] | None, last: dict[str, Any], number: int = number
        ) -> dict[str, Any]:
            """Show the new creatives; keep them if the CPA improves, else roll the channels back."""
            if generated is None:
                return {**last, "before": {}, "kept": None, "note": "target CPA met"}
            before = _show(generated["set"])
            figures = _collect(generated["creatives"], round_number=number)
            better = figures["cpa"] is not None and (
                last["cpa"] is None or figures["cpa"] < last["cpa"]
            )
            if better:
                return {"set": generated["set"], "creatives": generated["creatives"], **figures,
                        "before": before, "kept": True}  # fmt: skip
            for channel, old in before.items():  # creative rollback: the previous set again
                Channels.default().restore(channel, generated["set"], old)
            note = f"CPA {figures['cpa']:.2f} not better than {last['cpa']:.2f}: rolled back"
            return {**last, "before": {}, "kept": False, "note": note}

        gate = check(state)
        generated_again = regenerate(campaign, state)
        step = optimize(generated_again, state)
        compensate(step, undo_deploy)
        gate >> generated_again
        state = step


wfe_example_campaign()
