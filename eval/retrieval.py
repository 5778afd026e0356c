"""``anomalist eval retrieval``: alert -> runbook retrieval on a runbooks directory.

DIR layout (``../shared/datasets/runbooks``): ``runbooks/**.md`` and ``alert_rules.jsonl``. The runbooks (only the
runbooks: the alert rules are *not* imported, so no alert text reaches the index) go into a fresh temporary
embedded store; then every alert rule whose runbook is in DIR becomes the alert Alertmanager would send:
- labels: ``alertname``, the rule's labels, the equality matchers of its PromQL expression (those labels survive
  on the firing series), and an opaque value for any other label its annotations refer to;
- annotations: the rule's templates rendered with those labels (``$value`` = 0.25).
Two modes: ``full`` (the alert as sent) and ``description`` (annotation text only: no labels, no alert name,
no runbook URL). Metrics: recall@1, recall@3, MRR (rank of the rule's ``runbook_id`` among 10 results, 0 when
absent), queries/s, and the import time.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from anomalist.tools.errors import InputError
from anomalist.tools.store import IncidentStore, import_runbooks, render_template

_MATCHER = re.compile(r"[{,]\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*\"([^\"]*)\"")
_LABEL_REF = re.compile(r"\$labels\.(\w+)")
VALUE = "0.25"
K = 10


def load_rules(path: Path) -> list[dict[str, Any]]:
    """The alerting rules of ``alert_rules.jsonl`` (``InputError`` naming the line on bad JSON)."""
    rules: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: invalid JSON: {exc.msg}") from exc
            if isinstance(obj, dict) and obj.get("alert"):
                rules.append(obj)
    return rules


def alert_labels(rule: dict[str, Any]) -> dict[str, str]:
    """The labels of the alert a rule fires (see the module docstring)."""
    labels: dict[str, str] = {}
    for key, value in _MATCHER.findall(str(rule.get("expr") or "")):
        labels.setdefault(key, value)
    for ref in _LABEL_REF.findall(json.dumps(rule.get("annotations") or {})):
        labels.setdefault(ref, "x" + hashlib.sha256(ref.encode()).hexdigest()[:6])
    labels.update({str(k): str(v) for k, v in (rule.get("labels") or {}).items()})
    labels["alertname"] = str(rule["alert"])
    return labels


def build_alerts(rule: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(full, description)`` Alertmanager alerts for ``rule``."""
    labels = alert_labels(rule)
    annotations = {str(k): render_template(str(v), labels, VALUE) for k, v in (rule.get("annotations") or {}).items()}
    if rule.get("runbook_url") and "runbook_url" not in annotations:
        annotations["runbook_url"] = str(rule["runbook_url"])
    full = {"labels": labels, "annotations": annotations, "status": "firing"}
    text_only = {k: v for k, v in annotations.items() if k != "runbook_url" and v}
    description = {"labels": {}, "annotations": text_only, "status": "firing"}
    return full, description


def _gold(rule: dict[str, Any], ids: set[str]) -> str | None:
    rid = rule.get("runbook_id")
    if rid in ids:
        return str(rid)
    return None


def _metrics(ranks: list[int], seconds: float) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {
        "recall@1": round(sum(r == 1 for r in ranks) / n, 4),
        "recall@3": round(sum(0 < r <= 3 for r in ranks) / n, 4),
        "mrr": round(sum(1.0 / r for r in ranks if r > 0) / n, 4),
        "queries_per_s": round(len(ranks) / seconds, 2) if seconds > 0 else 0.0,
    }


def run(data: Path, embedder: Any = None, details: bool = False) -> dict[str, Any]:
    """Run the suite on DIR; returns the JSON object of the contract (plus ``queries_per_s`` per mode).

    ``details=True`` adds ``_details`` (runbook count, rejected files, every query not ranked first).
    """
    data = Path(data)
    rules_path = data / "alert_rules.jsonl"
    runbook_dir = data / "runbooks"
    if not rules_path.is_file():
        raise InputError(f"{rules_path} not found (expected the runbooks dataset layout)")
    if not runbook_dir.is_dir():
        raise InputError(f"{runbook_dir} not found (expected the runbooks dataset layout)")
    rules = load_rules(rules_path)
    with tempfile.TemporaryDirectory(prefix="anomalist-eval-retrieval-") as tmp:
        store = IncidentStore.open("embedded", path=Path(tmp) / "store", create=True, embedder=embedder)
        store.embedder.encode(["warm up"])  # model load is not import time
        t0 = time.perf_counter()
        summary = import_runbooks(runbook_dir, store)
        import_s = time.perf_counter() - t0
        ids = {rb.id for rb in store.list_runbooks(limit=1_000_000)}
        pairs = [(r, g) for r in rules if (g := _gold(r, ids)) is not None]
        if not pairs:
            raise InputError(f"no alert rule in {rules_path} links to a runbook under {runbook_dir}")
        store.warm_up()
        result: dict[str, Any] = {}
        misses: dict[str, list[dict[str, Any]]] = {}
        for mode in ("full", "description"):
            ranks: list[int] = []
            misses[mode] = []
            t1 = time.perf_counter()
            for rule, gold in pairs:
                alert = build_alerts(rule)[0 if mode == "full" else 1]
                hits = store.runbook_for(alert, k=K)
                got = [h.runbook.id for h in hits]
                rank = got.index(gold) + 1 if gold in got else 0
                ranks.append(rank)
                if rank != 1:
                    misses[mode].append({"alert": rule["alert"], "gold": gold, "rank": rank, "top": got[:3]})
            result[mode] = _metrics(ranks, time.perf_counter() - t1)
        store.close()
    result["n_queries"] = len(pairs)
    result["import_s"] = round(import_s, 3)
    if details:
        result["_details"] = {"runbooks": len(ids), "rejected": [r.model_dump() for r in summary.rejected],
                              "misses": misses}
    return result


def render(result: dict[str, Any]) -> Table:
    """The human table of ``run``'s result."""
    table = Table(title=f"Alert -> runbook retrieval ({result['n_queries']} queries, import {result['import_s']} s)")
    for col in ("mode", "recall@1", "recall@3", "MRR", "queries/s"):
        table.add_column(col, justify="right" if col != "mode" else "left")
    for mode in ("full", "description"):
        m = result[mode]
        table.add_row(mode, f"{m['recall@1']:.3f}", f"{m['recall@3']:.3f}", f"{m['mrr']:.3f}", f"{m['queries_per_s']:.1f}")
    return table
