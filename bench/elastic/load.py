"""Bounded load through invoke, for watching a step scale: CONCURRENCY clients POST the heavy
workflow's invoke for SECONDS, then print the count of answers by status.

    kubectl -n stepline-system port-forward svc/stepline 18481:8080 &
    .venv/bin/python bench/elastic/load.py 150 6

Only 127.0.0.1 (the port-forward) is ever called; the loop ends by itself after SECONDS.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

URL = "http://127.0.0.1:18481/v1/namespaces/finance/workflows/heavy:invoke"
BODY = {"user": {"id": "u-1", "name": "ada", "age": 36, "country": "DE"}, "order": {"amount": 120}}


async def worker(client: httpx.AsyncClient, stop: float, counts: dict[str, int]) -> None:
    while time.monotonic() < stop:
        try:
            answer = await client.post(URL, json=BODY, timeout=15)
            outcome = str(answer.status_code)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
            await asyncio.sleep(0.2)
        counts[outcome] = counts.get(outcome, 0) + 1


async def main(seconds: float, concurrency: int) -> None:
    counts: dict[str, int] = {}
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(worker(client, stop, counts) for _ in range(concurrency)))
    print(json.dumps(counts))


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]), int(sys.argv[2])))
