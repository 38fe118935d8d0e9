"""What the example workflows must answer, computed here from the example services' own
functions (imported from examples/, as their images run them) and each workflow's wiring: the
oracle the real pods' answers are held to, and the operator's on the local control plane. The
trade's order and settlement ids, digests of the Idempotency-Keys the operator sends, differ per
run and are left out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from city import air_quality, service_complaints, traffic_flow  # noqa: E402
from city import city_report as report_service  # noqa: E402
from finance import order_processing, trade_settlement, user_validation  # noqa: E402
from manufacturing import (  # noqa: E402
    device_monitoring,
    production_scheduling,
    quality_inspection,
)


def step_env(example: str, step: str, name: str) -> str:
    """The value examples/<example>/servicesteps.yaml gives `step`'s env variable `name`."""
    documents = yaml.safe_load_all((EXAMPLES / example / "servicesteps.yaml").read_text())
    (spec,) = (d["spec"] for d in documents if d and d["metadata"]["name"] == step)
    (value,) = (e["value"] for e in spec.get("env", []) if e["name"] == name)
    return str(value)


# The settings examples/*/servicesteps.yaml give the services through their env.
EXCHANGE = step_env("finance", "order-processing", "EXCHANGE")
SHIFT_HOURS = float(step_env("manufacturing", "production-scheduling", "SHIFT_HOURS"))
SAMPLE_RATE = float(step_env("manufacturing", "quality-inspection", "SAMPLE_RATE"))


def answer(status_and_body: tuple[int, Any]) -> Any:
    status, body = status_and_body
    assert status == 200, body
    return body


def without_run_ids(output: dict[str, Any]) -> dict[str, Any]:
    """The trade output with `order.orderId` and `settlement.settlementId` (per-run digests)
    checked for shape and dropped, and the settlement checked to be the order's."""
    order, settlement = output.get("order"), output.get("settlement")
    kept = dict(output)
    if order is not None:
        order_id = order.get("orderId", "")
        assert isinstance(order_id, str), order_id
        assert order_id.startswith("ord-"), order_id
        kept["order"] = {k: v for k, v in order.items() if k != "orderId"}
    if settlement is not None:
        assert order is not None, output
        assert settlement.get("orderId") == order["orderId"], output
        assert str(settlement.get("settlementId", "")).startswith("stl-"), settlement
        kept["settlement"] = {
            k: v for k, v in settlement.items() if k not in ("orderId", "settlementId")
        }
    return kept


def trade(run_input: dict[str, Any]) -> dict[str, Any]:
    """examples/finance/workflow.yaml's output for `run_input`, without the per-run ids."""
    request = {"user": run_input["user"], "order": run_input["order"]}
    validation = answer(user_validation.score_user(request))
    order = settlement = None
    if validation["approved"]:
        order = answer(
            order_processing.process_order(
                {**request, "riskScore": validation["riskScore"]}, exchange=EXCHANGE
            )
        )
    if order is not None and order["status"] == "accepted":
        settlement = answer(
            trade_settlement.settle_trade({"order": order, "account": run_input["account"]})
        )
    return without_run_ids(
        {"approved": validation["approved"], "order": order, "settlement": settlement}
    )


def production_shift(run_input: dict[str, Any]) -> dict[str, Any]:
    """examples/manufacturing/workflow.yaml's output for `run_input`."""
    line = run_input["lineId"]
    monitoring = answer(
        device_monitoring.assess_devices({"lineId": line, "devices": run_input["devices"]})
    )
    healthy = [d for d in run_input["devices"] if d["id"] in monitoring["healthy"]]
    scheduling = answer(
        production_scheduling.schedule_production(
            {"lineId": line, "orders": run_input["orders"], "devices": healthy},
            shift_hours=SHIFT_HOURS,
        )
    )
    inspection = None
    if scheduling["batches"]:
        inspection = answer(
            quality_inspection.inspect_quality(
                {
                    "lineId": line,
                    "batches": scheduling["batches"],
                    "measurements": run_input["measurements"],
                },
                sample_rate=SAMPLE_RATE,
            )
        )
    return {
        "devices": monitoring["devices"],
        "batches": scheduling["batches"],
        "unscheduled": scheduling["unscheduled"],
        "inspection": inspection,
    }


def city_report(run_input: dict[str, Any]) -> dict[str, Any]:
    """examples/city/workflow.yaml's output for `run_input`: the three readings, each sent its
    part of the input, joined by the report."""
    city = run_input["cityId"]
    traffic = answer(traffic_flow.assess_traffic({"cityId": city, **run_input["traffic"]}))
    air = answer(air_quality.assess_air({"cityId": city, **run_input["air"]}))
    complaints = answer(
        service_complaints.summarize_complaints(
            {"cityId": city, "asOf": run_input["asOf"], "complaints": run_input["complaints"]}
        )
    )
    joined = {"cityId": city, "traffic": traffic, "air": air, "complaints": complaints}
    report: dict[str, Any] = answer(report_service.report_city(joined))
    return report
