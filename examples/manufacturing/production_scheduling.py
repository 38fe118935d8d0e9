"""production-scheduling: split a line's orders into batches and place them on its devices
within one shift. Deterministic: the same request always gets the same schedule.

POST /schedule with `{"lineId", "orders": [{"sku", "quantity"}], "devices": [{"id",
"ratePerHour"}]}` answers `{"lineId", "shiftMinutes", "batches": [{"batchId", "sku", "quantity",
"deviceId", "startMinute", "endMinute"}], "unscheduled": [{"sku", "quantity", "reason"}]}`.
Orders (one per SKU) are taken in the order given, the most urgent first, and cut into
batches of at most BATCH_SIZE; each batch goes to the device that would finish it first (ties:
the device listed first), and what would end after the shift stays unscheduled. Devices are
taken as given: the Workflow passes only the healthy ones; other fields of a device (its
readings) are ignored. No device at all is not an error: every order is then unscheduled, "no
device". A malformed request is answered 400 naming the field.

    python -m manufacturing.production_scheduling --port 9012 --shift-hours 8    # from examples/
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from finance.serving import build_parser, serve_step

from manufacturing.parsing import (
    InvalidFieldError,
    number_between,
    require_distinct,
    require_items,
    require_positive_number,
    require_positive_whole,
    require_text,
)

PATH = "/schedule"
BATCH_SIZE = 100  # units: one batch fills one transport cart, and is inspected as part of its lot
SHIFT_HOURS = 8.0
LONGEST_SHIFT_MINUTES = 24 * 60
SKU_RULE = "1 to 32 capital letters, digits or dashes"


@dataclass(frozen=True)
class Order:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Device:
    id: str
    rate_per_hour: float


@dataclass(frozen=True)
class Placement:
    device_id: str
    start_minute: int
    end_minute: int


@dataclass
class Schedule:
    batches: list[dict[str, Any]]
    unscheduled: list[dict[str, Any]]


def schedule_production(
    request: dict[str, Any], _key: str | None = None, *, shift_hours: float = SHIFT_HOURS
) -> tuple[int, Any]:
    try:
        line_id = require_text(request.get("lineId"), "lineId")
        orders = require_items(request.get("orders"), "orders", _parse_order)
        require_distinct((order.sku for order in orders), "orders", "sku")
        devices = _parse_devices(request.get("devices"))
    except InvalidFieldError as invalid:
        return 400, invalid.as_answer()
    shift_minutes = round(shift_hours * 60)
    schedule = compute_schedule(line_id, orders, devices, shift_minutes=shift_minutes)
    return 200, {
        "lineId": line_id,
        "shiftMinutes": shift_minutes,
        "batches": schedule.batches,
        "unscheduled": schedule.unscheduled,
    }


def compute_schedule(
    line_id: str, orders: Sequence[Order], devices: Sequence[Device], *, shift_minutes: int
) -> Schedule:
    free_at = {device.id: 0 for device in devices}
    schedule = Schedule(batches=[], unscheduled=[])
    for order in orders:
        batches = _place_order(line_id, order, devices, free_at, shift_minutes=shift_minutes)
        schedule.batches += batches
        left = order.quantity - sum(batch["quantity"] for batch in batches)
        if left:
            reason = f"does not fit in the {shift_minutes}-minute shift" if devices else "no device"
            schedule.unscheduled.append({"sku": order.sku, "quantity": left, "reason": reason})
    return schedule


def _place_order(
    line_id: str,
    order: Order,
    devices: Sequence[Device],
    free_at: dict[str, int],
    *,
    shift_minutes: int,
) -> list[dict[str, Any]]:
    """The order's batches, placed while they end within the shift; moves `free_at` on."""
    batches: list[dict[str, Any]] = []
    for number, quantity in enumerate(_batch_sizes(order.quantity), start=1):
        placement = _earliest_finish(quantity, devices, free_at)
        if placement is None or placement.end_minute > shift_minutes:
            break
        free_at[placement.device_id] = placement.end_minute
        batches.append({
            "batchId": f"{line_id}:{order.sku}:{number}",
            "sku": order.sku,
            "quantity": quantity,
            "deviceId": placement.device_id,
            "startMinute": placement.start_minute,
            "endMinute": placement.end_minute,
        })  # fmt: skip
    return batches


def _batch_sizes(quantity: int) -> Iterator[int]:
    """BATCH_SIZE after BATCH_SIZE, then the rest; lazily, as an order may be far too large."""
    while quantity > 0:
        yield min(quantity, BATCH_SIZE)
        quantity -= BATCH_SIZE


def _earliest_finish(
    quantity: int, devices: Sequence[Device], free_at: dict[str, int]
) -> Placement | None:
    """Where the batch would be done first; min() keeps the first device of equal finishes."""
    placements = (
        Placement(d.id, free_at[d.id], free_at[d.id] + _minutes(quantity, d)) for d in devices
    )
    return min(placements, key=lambda placement: placement.end_minute, default=None)


def _minutes(quantity: int, device: Device) -> int:
    """Whole minutes, rounded up: a device is busy until its batch is complete. Capped beyond the
    longest shift, as a batch that long never fits and a tiny rate would overflow math.ceil."""
    return math.ceil(min(quantity * 60 / device.rate_per_hour, LONGEST_SHIFT_MINUTES + 1))


def _parse_order(order: dict[str, Any], field: str) -> Order:
    sku = require_text(order.get("sku"), f"{field}.sku")
    if not _is_sku(sku):
        raise InvalidFieldError(f"{field}.sku", f"must be {SKU_RULE}")
    return Order(
        sku=sku, quantity=require_positive_whole(order.get("quantity"), f"{field}.quantity")
    )


def _is_sku(sku: str) -> bool:
    return len(sku) <= 32 and all(
        c.isascii() and (c.isupper() or c.isdigit() or c == "-") for c in sku
    )


def _parse_devices(value: Any) -> list[Device]:
    """The devices to schedule on; an empty list is allowed (no healthy device this shift)."""
    if not isinstance(value, list):
        raise InvalidFieldError("devices", "must be a list (empty when no device is fit to run)")
    if not value:
        return []
    devices = require_items(value, "devices", _parse_device)
    require_distinct((device.id for device in devices), "devices", "id")
    return devices


def _parse_device(device: dict[str, Any], field: str) -> Device:
    return Device(
        id=require_text(device.get("id"), f"{field}.id"),
        rate_per_hour=require_positive_number(device.get("ratePerHour"), f"{field}.ratePerHour"),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--shift-hours",
        type=number_between(0, LONGEST_SHIFT_MINUTES / 60),
        default=os.environ.get("SHIFT_HOURS", str(SHIFT_HOURS)),
        help=f"length of the shift scheduled (default: $SHIFT_HOURS, else {SHIFT_HOURS:g})",
    )
    args = parser.parse_args(argv)
    decide = partial(schedule_production, shift_hours=args.shift_hours)
    serve_step(PATH, decide, args)


if __name__ == "__main__":
    main()
