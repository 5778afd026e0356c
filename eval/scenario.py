"""Seeded generator of the demo scenario under ``examples/``: four services' logs, a metrics CSV, runbooks,
past incidents and an Alertmanager alert, with one injected incident (the checkout database disk fills up).

Everything is synthetic and produced by this file from a seed; ``examples/`` in the repository is its output
(a test regenerates it and compares byte for byte). Run ``python -m anomalist.eval.scenario [OUT_DIR]``.

Timeline (UTC, 2026-11-02, 4 hours from 11:30):
- normal traffic with a daily-shape ramp and noise on every service, including a trickle of benign ERROR lines
  (declined cards, rejected coupons, clients that hang up) all afternoon;
- 12:05 decoy: a four-minute burst of payment-provider timeouts that recovers on its own;
- 12:40 decoy: a noisy benign deploy of ``inventory`` (restart, failed readiness probes and refused connections
  while it starts, a three-minute latency blip);
- 13:20 the checkout database volume starts filling fast; 13:50 disk-usage warnings; 14:05 the disk is full:
  write errors in ``checkout.db``, failed orders, 503s seen by ``payments`` and the gateway, checkout latency
  and error rate up; 14:38 old WAL segments are removed and the service recovers.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

SEED = 20261102
START = datetime(2026, 11, 2, 11, 30)
MINUTES = 240
DEPLOY_AT = START + timedelta(minutes=70)  # 12:40
FILL_AT = START + timedelta(minutes=110)  # 13:20
WARN_AT = START + timedelta(minutes=140)  # 13:50
FULL_AT = START + timedelta(minutes=155)  # 14:05
CLEANUP_AT = START + timedelta(minutes=188)  # 14:38

PROVIDER_BLIP_AT = START + timedelta(minutes=35)  # 12:05

INCIDENT_START = FULL_AT - timedelta(minutes=15)
INCIDENT_END = CLEANUP_AT + timedelta(minutes=2)
"""The injected incident's span (warnings to recovery): the ground truth the demo test checks."""

SERVICES = ("gateway", "checkout", "payments", "inventory")
_RATE_PER_MIN = {"gateway": 6.0, "checkout": 5.0, "payments": 3.0, "inventory": 3.0}


@dataclass
class _Ctx:
    rng: random.Random
    t: datetime

    def ip(self) -> str:
        return f"10.{self.rng.randint(0, 3)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"

    def oid(self) -> int:
        return self.rng.randint(100000, 999999)

    def ms(self, mu: float, sd: float) -> int:
        return max(1, int(self.rng.gauss(mu, sd)))

    def hexid(self, n: int = 12) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))


Template = Callable[[_Ctx], tuple[str, str, str]]  # -> (level, component, message)

_NORMAL: dict[str, list[tuple[float, Template]]] = {
    "gateway": [
        (5.0, lambda c: ("INFO", "gateway.http", f"GET /api/v1/{c.rng.choice(['products', 'cart', 'search', 'user'])} 200 {c.ms(40, 12)}ms client={c.ip()}")),
        (2.0, lambda c: ("INFO", "gateway.http", f"POST /api/v1/checkout 200 {c.ms(160, 40)}ms client={c.ip()}")),
        (0.6, lambda c: ("INFO", "gateway.health", f"upstream {c.rng.choice(SERVICES[1:])} healthy ({c.ms(5, 2)} ms)")),
        (0.08, lambda c: ("WARNING", "gateway.ratelimit", f"client {c.ip()} throttled: {c.rng.randint(101, 180)} requests in 10s")),
        (0.05, lambda c: ("ERROR", "gateway.http", f"client {c.ip()} closed the connection before the response was sent")),
    ],
    "checkout": [
        (3.0, lambda c: ("INFO", "checkout.api", f"order {c.oid()} created for user {c.rng.randint(1000, 99999)} total={c.rng.randint(5, 400)}.{c.rng.randint(0, 99):02d} EUR")),
        (2.0, lambda c: ("INFO", "checkout.db", f"query ok in {c.ms(8, 3)} ms (pool {c.rng.randint(2, 12)}/20)")),
        (1.5, lambda c: ("INFO", "checkout.cart", f"cart {c.hexid(8)} updated with {c.rng.randint(1, 9)} items")),
        (0.15, lambda c: ("INFO", "checkout.db", f"checkpoint complete: wrote {c.rng.randint(200, 4000)} buffers ({c.rng.randint(1, 9)}.{c.rng.randint(0, 9)}%)")),
        (0.05, lambda c: ("WARNING", "checkout.api", f"slow request POST /orders took {c.ms(900, 150)} ms")),
        (0.06, lambda c: ("ERROR", "checkout.api", f"order {c.oid()} rejected: coupon {c.hexid(6).upper()} is not valid")),
    ],
    "payments": [
        (3.0, lambda c: ("INFO", "payments.api", f"payment {c.hexid()} authorized amount={c.rng.randint(5, 400)}.{c.rng.randint(0, 99):02d} EUR provider={c.rng.choice(['stripe', 'adyen'])}")),
        (2.0, lambda c: ("INFO", "payments.client", f"call checkout /orders/{c.oid()} ok in {c.ms(30, 8)} ms")),
        (0.2, lambda c: ("INFO", "payments.worker", f"settled batch {c.rng.randint(1000, 9999)} with {c.rng.randint(20, 90)} payments")),
        (0.12, lambda c: ("ERROR", "payments.api", f"payment {c.hexid()} declined by issuer: {c.rng.choice(['insufficient funds', 'card expired', 'do not honor'])}")),
    ],
    "inventory": [
        (3.0, lambda c: ("INFO", "inventory.api", f"reserved {c.rng.randint(1, 5)} units of sku {c.rng.randint(10000, 99999)} for order {c.oid()}")),
        (0.3, lambda c: ("INFO", "inventory.sync", f"stock sync finished: {c.rng.randint(50, 900)} items updated in {c.rng.randint(1, 9)}.{c.rng.randint(0, 9)} s")),
        (0.5, lambda c: ("DEBUG", "inventory.cache", f"cache hit ratio 0.{c.rng.randint(90, 99)}")),
    ],
}

_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwYXltZW50cy1zdmMifQ.c2lnbmF0dXJlLW5vdC1yZWFs"


def _traffic(t: datetime) -> float:
    """Relative traffic (about 0.8 .. 1.25): a slow ramp through the afternoon."""
    minutes = (t - START).total_seconds() / 60.0
    return 1.0 + 0.22 * math.sin(2 * math.pi * (minutes / MINUTES) - 0.6)


def _incident_lines(c: _Ctx, service: str, t: datetime) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    r = c.rng
    if service == "checkout":
        if WARN_AT <= t < FULL_AT:
            pct = 90 + int(10 * (t - WARN_AT).total_seconds() / (FULL_AT - WARN_AT).total_seconds())
            out.append(("WARNING", "checkout.db", f"disk usage on /var/lib/postgresql at {pct}% (threshold 90%)"))
        if FULL_AT <= t < CLEANUP_AT:
            for _ in range(r.randint(3, 6)):
                out.append(("ERROR", "checkout.db", f'could not write to file "pg_wal/xlogtemp.{r.randint(1000, 9999)}": No space left on device'))
            for _ in range(r.randint(2, 5)):
                out.append(("ERROR", "checkout.api", f"order {c.oid()} failed: database write timeout after 5000 ms"))
        if CLEANUP_AT <= t < CLEANUP_AT + timedelta(minutes=1):
            out.append(("INFO", "checkout.db", f"removed {r.randint(800, 1500)} old WAL segments, freed {r.randint(15, 25)}.{r.randint(0, 9)} GB"))
    elif service == "payments" and FULL_AT <= t < CLEANUP_AT:
        for _ in range(r.randint(1, 4)):
            out.append(("ERROR", "payments.client",
                        f"call checkout /orders/{c.oid()} failed: 503 Service Unavailable after {c.ms(5000, 30)} ms "
                        f"(Authorization: Bearer {_TOKEN})"))
    elif service == "gateway" and FULL_AT <= t < CLEANUP_AT:
        for _ in range(r.randint(2, 4)):
            out.append(("WARNING", "gateway.http", f"POST /api/v1/checkout 503 {c.ms(5100, 60)}ms client={c.ip()}"))
    if service == "payments" and PROVIDER_BLIP_AT <= t < PROVIDER_BLIP_AT + timedelta(minutes=4):
        for _ in range(r.randint(3, 7)):  # decoy: an external provider times out for four minutes, then recovers
            out.append(("ERROR", "payments.api", f"payment {c.hexid()} authorization failed: provider adyen did not "
                                                 f"answer within {c.ms(10000, 20)} ms"))
    if service == "gateway" and PROVIDER_BLIP_AT <= t < PROVIDER_BLIP_AT + timedelta(minutes=4):
        for _ in range(r.randint(1, 3)):
            out.append(("WARNING", "gateway.http", f"POST /api/v1/pay 502 {c.ms(10100, 40)}ms client={c.ip()}"))
    if service == "inventory" and DEPLOY_AT <= t < DEPLOY_AT + timedelta(minutes=1):
        out.append(("INFO", "inventory.main", "received SIGTERM, shutting down gracefully"))
        out.append(("INFO", "inventory.main", "starting inventory-service version 2.4.1 (build 7f3a9c1)"))
        for _ in range(r.randint(3, 5)):  # decoy: a noisy but benign start
            out.append(("ERROR", "inventory.health", f"readiness probe failed: dial tcp {c.ip()}:5432: connect: connection refused"))
        out.append(("WARNING", "inventory.cache", "cache is cold, serving reads from the database"))
        out.append(("INFO", "inventory.cache", f"warming cache: {r.randint(11000, 13000)} items loaded in {r.randint(2, 4)}.{r.randint(0, 9)} s"))
    if service == "gateway" and DEPLOY_AT <= t < DEPLOY_AT + timedelta(minutes=2):
        for _ in range(r.randint(2, 4)):
            out.append(("ERROR", "gateway.proxy", f"upstream inventory: connection refused (attempt {r.randint(1, 3)} of 3)"))
    return out


def _logs(rng: random.Random, scale: float = 1.0) -> dict[str, list[str]]:
    """Each service's lines; ``scale`` multiplies the normal traffic (the incident's lines are not scaled)."""
    files: dict[str, list[str]] = {s: [] for s in SERVICES}
    for service in SERVICES:
        c = _Ctx(rng=random.Random(rng.randint(0, 2**31)), t=START)
        weights = [w for w, _ in _NORMAL[service]]
        templates = [f for _, f in _NORMAL[service]]
        events: list[tuple[datetime, tuple[str, str, str]]] = []
        for minute in range(MINUTES):
            t = START + timedelta(minutes=minute)
            c.t = t
            rate = _RATE_PER_MIN[service] * _traffic(t) * scale
            if service in ("checkout", "payments") and FULL_AT <= t < CLEANUP_AT:
                rate *= 0.5  # fewer successful requests while the database rejects writes
            n = _poisson(c.rng, rate)
            for _ in range(n):
                events.append((t + timedelta(milliseconds=c.rng.randint(0, 59999)), c.rng.choices(templates, weights)[0](c)))
            for line in _incident_lines(c, service, t):
                events.append((t + timedelta(milliseconds=c.rng.randint(0, 59999)), line))
        events.sort(key=lambda e: e[0])
        for ts, (level, comp, msg) in events:
            files[service].append(f"{ts:%Y-%m-%d %H:%M:%S},{ts.microsecond // 1000:03d} {level} {comp}: {msg}")
    return files


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: exact and fine for small rates; a normal approximation for the large ones of the benchmark.
    if lam > 50:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _metrics(rng: random.Random) -> list[str]:
    cols = [
        "timestamp", "checkout_latency_p95_ms", "checkout_error_rate", "checkout_rps", "payments_latency_p95_ms",
        "db_disk_used_pct", "db_cpu_pct", "gateway_rps", "inventory_latency_p95_ms",
    ]
    rows = [",".join(cols)]
    disk = 61.0
    for minute in range(MINUTES):
        t = START + timedelta(minutes=minute)
        tr = _traffic(t)
        incident = FULL_AT <= t < CLEANUP_AT
        ramp = 0.0
        if WARN_AT <= t < FULL_AT:
            ramp = (t - WARN_AT).total_seconds() / (FULL_AT - WARN_AT).total_seconds()
        # Realistic sizes: p95 about 3-4x, a few percent errors, payments slowed by its calls to checkout.
        lat = 180 * tr + rng.gauss(0, 25) + (480 + rng.gauss(0, 120) if incident else 120 * ramp)
        err = max(0.0, 0.004 + rng.gauss(0, 0.0015) + (0.035 + rng.gauss(0, 0.01) if incident else 0.004 * ramp))
        rps = 40 * tr + rng.gauss(0, 2.5) - (6 if incident else 0)
        pay = 120 * tr + rng.gauss(0, 12) + (160 + rng.gauss(0, 45) if incident else 0)
        if PROVIDER_BLIP_AT <= t < PROVIDER_BLIP_AT + timedelta(minutes=4):
            pay += 900 + rng.gauss(0, 150)  # the decoy provider timeouts
        if t < FILL_AT:
            disk += 0.01 + rng.gauss(0, 0.003)
        elif t < FULL_AT:
            disk = min(100.0, disk + (100.0 - 62.2) / (FULL_AT - FILL_AT).total_seconds() * 60 + rng.gauss(0, 0.05))
        elif t < CLEANUP_AT:
            disk = 100.0
        else:
            disk = 55.0 + 0.01 * (t - CLEANUP_AT).total_seconds() / 60 + rng.gauss(0, 0.003)
        cpu = 35 * tr + rng.gauss(0, 3) + (5 if incident else 0)
        gw = 120 * tr + rng.gauss(0, 6)
        inv = 90 + rng.gauss(0, 6) + (420 + rng.gauss(0, 60) if DEPLOY_AT <= t < DEPLOY_AT + timedelta(minutes=3) else 0)
        vals = [lat, err, rps, pay, min(disk, 100.0), cpu, gw, inv]
        fmt = ["{:.1f}", "{:.4f}", "{:.1f}", "{:.1f}", "{:.2f}", "{:.1f}", "{:.1f}", "{:.1f}"]
        rows.append(f"{t:%Y-%m-%dT%H:%M:%SZ}," + ",".join(f.format(v) for f, v in zip(fmt, vals, strict=False)))
    return rows


_RUNBOOKS: dict[str, str] = {
    # Written as a team's own runbook would be: named after the problem, not after an alert, in its own words.
    "node/DatabaseVolumeOutOfSpace.md": """---
title: Database volume out of space
weight: 20
---

# Database volume out of space

## Meaning

The disk that holds a database's data or its write-ahead log is close to full, or already full. On our
PostgreSQL hosts the usual cause is WAL that is kept because archiving or a replica has fallen behind.

## Impact

Once the volume is full the database refuses every write (ENOSPC). Anything that inserts or updates rows
stalls until its timeout, so the services in front of it slow down and start returning server errors.

## Diagnosis

- Which mount point is short of space: `df -h` on the database host.
- What grows: `du -xh --max-depth=2 /var/lib/postgresql | sort -h | tail`.
- Whether WAL piles up: a stuck replication slot or a failing `archive_command` keeps old segments
  (`SELECT * FROM pg_replication_slots;`, archiver errors in the database log).

## Mitigation

- Free space safely: fix the archiver or drop the stale replication slot so PostgreSQL recycles WAL itself;
  never delete files from `pg_wal` by hand.
- If space cannot be freed quickly, grow the volume (resize the disk, then the filesystem).
- Once writes succeed again, watch error rate and latency return to normal, then add headroom and an alert on
  WAL size.
""",
    "app/CheckoutHighLatency.md": """---
title: Checkout High Latency
weight: 20
---

# CheckoutHighLatency

## Meaning

The 95th percentile latency of the checkout API has been above 1 s for 10 minutes.

## Impact

Customers wait at the payment step; some give up, and upstream timeouts turn slow requests into errors.

## Diagnosis

- Compare with traffic: is checkout receiving more requests than usual?
- Look at the database: slow queries, connection pool saturation, lock waits.
- Check recent deploys of checkout and its dependencies.

## Mitigation

- Roll back a recent deploy if latency started with it.
- Scale checkout out when the pool is saturated by traffic.
""",
    "app/PaymentsProviderErrors.md": """---
title: Payments Provider Errors
weight: 20
---

# PaymentsProviderErrors

## Meaning

More than 5% of payment authorizations fail at the external provider.

## Impact

Orders cannot be paid; revenue is lost while it lasts.

## Diagnosis

- Check the provider's status page and the error codes in `payments.api` logs.
- Check whether only one provider (stripe or adyen) is affected.

## Mitigation

- Switch traffic to the healthy provider with the `payments.provider` feature flag.
""",
    "kubernetes/KubeDeploymentRolloutStuck.md": """---
title: Kube Deployment Rollout Stuck
weight: 20
---

# KubeDeploymentRolloutStuck

## Meaning

A deployment's rollout has not progressed for 15 minutes.

## Impact

The new version is not serving; the old one may be partly scaled down.

## Diagnosis

- `kubectl rollout status deployment/<name>` and the events of its new pods.
- Readiness probe failures in the new pods' logs.

## Mitigation

- `kubectl rollout undo deployment/<name>` when the new version does not become ready.
""",
    "general/TLSCertificateExpiringSoon.md": """---
title: TLS Certificate Expiring Soon
weight: 20
---

# TLSCertificateExpiringSoon

## Meaning

A TLS certificate served by the gateway expires within 7 days.

## Impact

Clients will refuse connections once it expires.

## Diagnosis

- Check the certificate's notAfter date and the cert-manager Certificate resource status.

## Mitigation

- Renew the certificate (cert-manager: delete the failed CertificateRequest to retry).
""",
}

_INCIDENTS: list[dict[str, object]] = [
    {  # a postmortem in its authors' words: no log line, metric name or alert name of the demo is copied
        "id": "INC-2026-0814", "title": "Orders down for 41 min: Postgres on db-1 ran out of disk (WAL never archived)",
        "summary": "Customers could not place orders for 41 minutes. The primary Postgres host db-1 filled its disk: "
                   "after a credential rotation the WAL archiver had been failing for days, so old WAL was never "
                   "recycled. Every insert failed with ENOSPC, order placement hung until its timeout and the "
                   "payment service got errors back from the order API.",
        "services": ["checkout", "payments"],
        "symptoms": {"templates": ["postgres: ENOSPC while writing WAL", "order placement hangs, then times out"],
                     "metrics": ["order API p95 latency", "db-1 disk usage"],
                     "alerts": ["PostgresDiskUsageHigh"]},
        "root_cause": "WAL archiving broke after a storage credential rotation; old WAL segments filled the data volume.",
        "resolution": "Fixed the archiver credentials, let PostgreSQL recycle WAL, grew the volume by 50%, added an alert on WAL size.",
        "severity": "critical", "started_at": "2026-08-14T02:12:00Z", "resolved_at": "2026-08-14T02:53:00Z",
        "links": [], "tags": ["database", "disk", "postgresql"], "source": "examples",
    },
    {
        "id": "INC-2026-0902", "title": "Payment authorizations failing at one provider",
        "summary": "About 30% of card payments failed for 25 minutes because one payment provider returned timeouts.",
        "services": ["payments"], "symptoms": {"templates": ["payment <*> authorization failed: provider timeout"], "alerts": ["PaymentsProviderErrors"]},
        "root_cause": "Provider-side outage.", "resolution": "Switched traffic to the second provider with the feature flag.",
        "severity": "critical", "started_at": "2026-09-02T16:40:00Z", "resolved_at": "2026-09-02T17:05:00Z",
        "links": [], "tags": ["payments", "third-party"], "source": "examples",
    },
    {
        "id": "INC-2026-0917", "title": "Inventory cache stampede after deploy",
        "summary": "A deploy of inventory flushed its cache; the cold cache sent every read to the database and "
                   "inventory latency reached 4 s for ten minutes.",
        "services": ["inventory"], "symptoms": {"templates": ["inventory cache cold after restart"], "metrics": ["inventory p95 latency"]},
        "root_cause": "Cache warm-up was disabled in the new release.", "resolution": "Re-enabled warm-up before readiness.",
        "severity": "warning", "started_at": "2026-09-17T10:05:00Z", "resolved_at": "2026-09-17T10:20:00Z",
        "links": [], "tags": ["deploy", "cache"], "source": "examples",
    },
    {
        "id": "INC-2026-1003", "title": "Gateway TLS certificate expired",
        "summary": "Mobile clients could not connect for 12 minutes after the gateway certificate expired.",
        "services": ["gateway"], "symptoms": {"templates": ["TLS handshake error: certificate has expired"], "alerts": ["TLSCertificateExpiringSoon"]},
        "root_cause": "cert-manager renewal failed silently on a DNS challenge.", "resolution": "Renewed manually; fixed the DNS credentials.",
        "severity": "critical", "started_at": "2026-10-03T07:00:00Z", "resolved_at": "2026-10-03T07:12:00Z",
        "links": [], "tags": ["tls", "gateway"], "source": "examples",
    },
    {
        "id": "INC-2026-1021", "title": "Checkout slow under a marketing traffic peak",
        "summary": "Checkout latency tripled during a campaign; the connection pool was exhausted while CPU was fine.",
        "services": ["checkout"], "symptoms": {"templates": ["order API requests slow", "DB connection pool exhausted"],
                                         "metrics": ["order API p95 latency"], "alerts": ["CheckoutHighLatency"]},
        "root_cause": "Connection pool too small for the peak.", "resolution": "Scaled checkout out and raised the pool size.",
        "severity": "warning", "started_at": "2026-10-21T19:00:00Z", "resolved_at": "2026-10-21T19:40:00Z",
        "links": [], "tags": ["capacity"], "source": "examples",
    },
]


def _alert() -> dict[str, object]:
    starts = FULL_AT - timedelta(minutes=7)
    labels = {
        "alertname": "NodeFilesystemSpaceFillingUp", "device": "/dev/nvme1n1", "fstype": "ext4",
        "instance": "db-1:9100", "job": "node-exporter", "mountpoint": "/var/lib/postgresql",
        "service": "checkout", "severity": "critical",
    }
    annotations = {
        "description": "Filesystem on /dev/nvme1n1, mounted on /var/lib/postgresql, at db-1:9100 has only 3.12% "
                       "available space left and is filling up fast.",
        "summary": "Filesystem is predicted to run out of space within the next 4 hours.",
    }
    alert = {
        "status": "firing", "labels": labels, "annotations": annotations,
        "startsAt": f"{starts:%Y-%m-%dT%H:%M:%S}.000Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=node_filesystem_avail_bytes",
        "fingerprint": "4c1d9e2f7a3b5860",
    }
    common = {k: v for k, v in labels.items() if k != "instance"}
    return {
        "receiver": "anomalist", "status": "firing", "alerts": [alert],
        "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": common,
        "commonAnnotations": {"summary": annotations["summary"]},
        "externalURL": "http://alertmanager:9093", "version": "4",
        "groupKey": '{}:{alertname="NodeFilesystemSpaceFillingUp"}', "truncatedAlerts": 0,
    }


def generate(out_dir: Path, seed: int = SEED) -> list[Path]:
    """Write the scenario under ``out_dir``; returns the written files (sorted). Same seed, same bytes."""
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    written: list[Path] = []

    def write(rel: str, text: str) -> None:
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)

    for service, lines in _logs(rng).items():
        write(f"logs/{service}.log", "\n".join(lines) + "\n")
    write("metrics.csv", "\n".join(_metrics(rng)) + "\n")
    for rel, text in _RUNBOOKS.items():
        write(f"runbooks/{rel}", text)
    write("incidents.jsonl", "".join(json.dumps(i, sort_keys=False) + "\n" for i in _INCIDENTS))
    write("alert.json", json.dumps(_alert(), indent=2) + "\n")
    return sorted(written)


def write_large(out_dir: Path, n_lines: int, seed: int = SEED) -> list[Path]:
    """The same four hours with normal traffic scaled so the logs hold about ``n_lines`` lines (benchmarks)."""
    expected = 0.0  # normal lines per unit of scale, as _logs draws them
    for minute in range(MINUTES):
        t = START + timedelta(minutes=minute)
        for service in SERVICES:
            half = service in ("checkout", "payments") and FULL_AT <= t < CLEANUP_AT
            expected += _RATE_PER_MIN[service] * _traffic(t) * (0.5 if half else 1.0)
    scale = n_lines / expected
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for service, lines in _logs(random.Random(seed), scale=scale).items():
        p = out_dir / f"{service}.log"
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "examples"
    for path in generate(out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
