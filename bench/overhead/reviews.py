"""What invoke authentication costs outside an invoke: a kept verdict (`Authorizer.authorize`
answered from its cache, in-process, timed over many calls), and a missed one: the operator's two
reviews (TokenReview, then SubjectAccessReview), through its own `KubeApi.review` against a real
API server (with `--kubeconfig`), timed back to back (concurrency 1) and with several at once,
with the API server's CPU per pair.

`gateway.py --auth off --auth cached` measures the steady state, every verdict kept; this is what
the first invoke of a (token, namespace, workflow) pays, and one invoke per allowed TTL after.
The token is a ServiceAccount's from the TokenRequest API (`default/default`); whether the SAR
allows is beside the point here.

    .venv/bin/python bench/overhead/reviews.py [--kubeconfig .stepline/test/kubeconfig]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from measuring import quantile

from stepline.gateway.authorizing import Authorizer, build_access_review_spec
from stepline.kube import KubeApi

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import harness

CONCURRENCY = (1, 8)
HITS = 200_000
# A ServiceAccount token's length (a signed JWT): the hash runs over all of it.
TOKEN = "x" * 900


class Allowing:
    async def review(
        self, api_version: str, kind: str, spec: object, *, timeout: object
    ) -> dict[str, object]:
        if kind == "TokenReview":
            return {"authenticated": True, "user": {"username": "bench"}}
        return {"allowed": True}


async def measure_hits(count: int) -> float:
    """Microseconds per `authorize()` of a kept verdict (header parsed, token hashed, looked up)."""
    authorizer = Authorizer(Allowing(), allowed_ttl=3600, denied_ttl=2)
    header = f"Bearer {TOKEN}"
    if not (await authorizer.authorize(header, "shop", "trade")).allowed:  # now kept
        raise RuntimeError("the verdict is not kept")
    started = time.perf_counter()
    for _ in range(count):
        await authorizer.authorize(header, "shop", "trade")
    return (time.perf_counter() - started) / count * 1e6


async def review_pair(kube: KubeApi, token: str) -> float:
    """Seconds for one TokenReview and the SubjectAccessReview of its user, as a miss makes them."""
    started = time.perf_counter()
    status = await kube.review("authentication.k8s.io/v1", "TokenReview", {"token": token})
    if status.get("authenticated") is not True:
        raise RuntimeError(f"the token was not accepted: {status}")
    spec = build_access_review_spec(status["user"], namespace="default", name="echo-1")
    await kube.review("authorization.k8s.io/v1", "SubjectAccessReview", spec)
    return time.perf_counter() - started


async def measure(kube: KubeApi, token: str, *, pairs: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    left = iter(range(pairs))

    async def worker() -> None:
        for _ in left:
            latencies.append(await review_pair(kube, token))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(latencies)


async def run(kubeconfig: str, pairs: int) -> None:
    token = harness.kubectl(kubeconfig, "create", "token", "default", "-n", "default").strip()
    kube = await KubeApi.connect(field_manager="bench", timeout=10, kubeconfig=kubeconfig)
    apiserver = harness.component_pids(kubeconfig)["kube-apiserver"]
    try:
        await measure(kube, token, pairs=20, concurrency=1)  # connections opened, caches warm
        print("| c | review pairs | pairs/s | p50 ms | p99 ms | API server CPU ms/pair |")
        print("|---|---|---|---|---|---|")
        for concurrency in CONCURRENCY:
            cpu, started = harness.process_cpu(apiserver), time.perf_counter()
            latencies = await measure(kube, token, pairs=pairs, concurrency=concurrency)
            elapsed = time.perf_counter() - started
            cpu = harness.process_cpu(apiserver) - cpu
            print(
                f"| {concurrency} | {pairs} | {pairs / elapsed:.0f} "
                f"| {quantile(latencies, 0.5) * 1000:.2f} | {quantile(latencies, 0.99) * 1000:.2f} "
                f"| {cpu / pairs * 1000:.2f} |",
                flush=True,
            )
    finally:
        await kube.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="a running local control plane: time missed verdicts")
    parser.add_argument("--pairs", type=int, default=400, help="review pairs per cell")
    args = parser.parse_args(argv)
    print(harness.uptime())
    hit = asyncio.run(measure_hits(HITS))
    print(f"kept verdict: {hit:.2f} µs per authorize() ({HITS} calls, a {len(TOKEN)}-byte token)")
    if args.kubeconfig:
        asyncio.run(run(args.kubeconfig, args.pairs))
    print(harness.uptime())


if __name__ == "__main__":
    main()
