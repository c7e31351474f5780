"""Step functions of the test workflows: behaviour chosen by the try number, no hidden state."""

from __future__ import annotations

import time
from typing import Any


def flaky_until_third_try(ti: Any) -> dict[str, Any]:
    ti.xcom_push(key="attempt_started", value=time.time())
    if ti.try_number < 3:
        raise ConnectionError(f"try {ti.try_number}: service unavailable")
    return {"succeeded_on_try": ti.try_number}


def invalid_input() -> None:
    raise ValueError("bad input: retrying cannot fix this")


def square(value: int) -> int:
    return value * value


def numbers(count: int) -> list[int]:
    return list(range(1, count + 1))


def add_up(ti: Any) -> int:
    return sum(ti.xcom_pull(task_ids="square_from"))


def book(what: str) -> str:
    import saga_ledger

    saga_ledger.write("do", step=what)
    return f"booking-{what}"


def cancel(result: str, idempotency_key: str) -> None:
    import saga_ledger

    saga_ledger.write("undo", step=result, key=idempotency_key)


def cancel_flaky_once(result: str, idempotency_key: str, ti: Any) -> None:
    import saga_ledger

    saga_ledger.write("undo-attempt", step=result, key=idempotency_key, try_number=ti.try_number)
    if ti.try_number == 1:
        raise ConnectionError("cancellation API timed out")
    saga_ledger.write("undo", step=result, key=idempotency_key)


def cancel_never(result: str) -> None:
    raise RuntimeError(f"cannot cancel {result}")


def fail(reason: str) -> None:
    raise RuntimeError(reason)


def orders() -> list[dict[str, Any]]:
    """Orders as records (XCom-friendly); one has no id, one a negative amount."""
    return [
        {"order_id": 1, "amount": 12.5},
        {"order_id": None, "amount": 3.0},
        {"order_id": 3, "amount": -4.0},
    ]


def canary_samples(context: Any) -> dict[str, Any]:
    """Error rates: the canary's around 9%, the baseline's around 2% (seeded)."""
    import random

    rng = random.Random(11)
    return {
        "error_rate": {
            "canary": [max(0.0, rng.gauss(0.09, 0.02)) for _ in range(100)],
            "baseline": [max(0.0, rng.gauss(0.02, 0.02)) for _ in range(100)],
        }
    }


def push(target: str, release: str) -> str:
    import saga_ledger

    if target == "h2":
        raise RuntimeError(f"{target} refused {release}")
    saga_ledger.write("do", step=f"push {target}")
    return target


def unpush(result: str, idempotency_key: str) -> None:
    import saga_ledger

    saga_ledger.write("undo", step=f"push {result}", key=idempotency_key)
