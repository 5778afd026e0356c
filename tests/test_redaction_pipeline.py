"""Redaction as a measured guarantee: the secrets corpus (tests/data/secrets_corpus.jsonl) line by line, and the
whole pipeline (triage -> every renderer, the LLM prompt and its cache, the service's stored report and its API
responses, ``incidents add --from-report``) searched byte for byte for every planted secret."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_service import free_port, start_server, wait_ready

from anomalist.tools.redact import Redactor, card_ok, iban_ok, luhn_ok

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "data" / "secrets_corpus.jsonl").read_text().splitlines()
          if line.strip()]
REDACT = [c for c in CORPUS if c["action"] == "redact"]
KEEP = [c for c in CORPUS if c["action"] == "keep"]
CLI = [sys.executable, "-m", "anomalist.agent.cli.main"]


def _found(value: str, blob: str) -> bool:
    """``value`` in ``blob`` as a whole token (a CVV "123" inside an order id "551234" is not it), in the written
    form and, for numbers written in groups, with the separators removed."""
    forms = {value}
    if re.fullmatch(r"[\d -]+", value):
        forms.add(re.sub(r"[ -]", "", value))
    if re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9 ]+", value):
        forms.add(value.replace(" ", ""))
    return any(re.search(r"(?<![A-Za-z0-9])" + re.escape(f) + r"(?![A-Za-z0-9])", blob) for f in forms)


def test_the_corpus_covers_every_kind_and_sixty_lines() -> None:
    assert len(CORPUS) >= 60
    assert {c["kind"] for c in REDACT} >= {"CARD", "CVV", "IBAN", "SSN", "EMAIL", "AWS_KEY", "AWS_SECRET", "JWT", "TOKEN",
                                           "SECRET", "URL_PASSWORD", "GCP_KEY", "PRIVATE_KEY"}


@pytest.mark.parametrize("case", REDACT, ids=lambda c: f"{c['kind']}:{c['value'][:12]}")
def test_every_planted_secret_is_redacted(case: dict[str, str]) -> None:
    out, mapping = Redactor().redact(case["line"])
    assert not _found(case["value"], out), out
    assert any(k.startswith("[REDACTED_") for k in mapping) and case["value"].replace(" ", "") in {
        v.replace(" ", "") for v in mapping.values()} | {case["value"].replace(" ", "")}


@pytest.mark.parametrize("case", KEEP, ids=lambda c: f"{c['kind']}:{c['value'][:12]}")
def test_look_alikes_stay(case: dict[str, str]) -> None:
    out = Redactor().redact_text(case["line"])
    assert _found(case["value"], out), out


def test_the_checks_behind_cards_and_ibans() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert card_ok("4111 1111 1111 1111") and card_ok("378282246310005")
    assert not card_ok("1234567890123456")  # Luhn may pass by chance; no issuer starts so
    assert not card_ok("4111111111111111111111")  # too long
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89 3704 0044 0532 0130 01")
    assert not iban_ok("XX89370400440532013000")  # no such country


# ---- the whole pipeline ----------------------------------------------------------------------------------------
def _log(path: Path) -> list[str]:
    """Three quiet hours of an app log, then an error burst whose lines carry every planted secret and look-alike
    (grouped into a few lines, each its own template, so every one of them becomes a sample line of the finding)."""
    t0 = datetime(2026, 11, 2, 11, 0, 0)
    lines = []
    for i in range(3 * 60 * 3):  # one line every 20 s
        t = t0 + timedelta(seconds=20 * i)
        lines.append(f"{t:%Y-%m-%d %H:%M:%S},{i % 1000:03d} INFO checkout.api: GET /cart/{i % 97} 200 in {10 + i % 7} ms")
    secrets = [c["line"] for c in REDACT]
    keeps = [c["line"] for c in KEEP]
    words = ["payment", "refund", "payout", "verify", "login", "export", "sync", "notify", "audit", "retry"]
    groups = [secrets[i::len(words)] + keeps[i::len(words)] for i in range(len(words))]
    burst = t0 + timedelta(hours=3)
    planted = []
    for rep in range(6):
        for k, g in enumerate(groups):
            t = burst + timedelta(seconds=30 * rep + 2 * k)
            text = f"{words[k]} batch failed: " + " || ".join(g)
            lines.append(f"{t:%Y-%m-%d %H:%M:%S},500 ERROR checkout.pay: {text}")
            planted.append(text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return planted


def _files_blob(root: Path) -> str:
    parts = []
    for f in sorted(root.rglob("*")):
        if f.is_file():
            parts.append(f.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def _leaks(blob: str) -> list[str]:
    """Planted secrets found in ``blob``. A CVV is three or four digits, which any timestamp holds too: it counts as
    found only next to its label, as it was planted."""
    out = []
    for c in REDACT:
        if c["kind"] == "CVV":
            hit = re.search(r"(?i)\b(?:cvv2?|cvc2?|security code)\W{0,3}" + re.escape(c["value"]) + r"(?!\d)", blob)
        else:
            hit = _found(c["value"], blob)
        if hit:
            out.append(f"{c['kind']}:{c['value']}")
    return out


@pytest.mark.slow
@pytest.mark.llm
@pytest.mark.server
def test_no_planted_secret_survives_anywhere(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _log(log)
    data = tmp_path / "data"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    outs = [tmp_path / "r.md", tmp_path / "r.html", tmp_path / "r.json"]
    # 1. The CLI with the embedded LLM (prompts pass through the redactor; verdicts land in the on-disk cache),
    #    debug logging on (no prompt body or secret may reach the log either).
    p = subprocess.run([*CLI, "--data-dir", str(data), "-vv", "triage", str(log), "--top-k", "3",
                        *[a for o in outs for a in ("--out", str(o))]], capture_output=True, text=True, timeout=600,
                       env=env, check=False)
    assert p.returncode in (0, 3), p.stderr[-3000:]
    report: dict[str, Any] = json.loads(outs[2].read_text())
    samples = [s["text"] for f in report["findings"] for t in f["templates"] for s in t["samples"]]
    assert sum("batch failed" in s for s in samples) >= 10, "the burst's lines must reach the report as samples"
    assert (data / "llm_cache").exists() and any((data / "llm_cache").rglob("*"))
    assert report["inputs"]["redacted"].get("CARD", 0) >= 1 and report["inputs"]["redacted"].get("IBAN", 0) >= 1
    written = "\n".join(o.read_text() for o in outs)
    assert _leaks(written) == [] and _leaks(p.stdout + p.stderr) == []
    assert _leaks(_files_blob(data)) == []  # the LLM cache (and anything else the run wrote)
    # Look-alikes in the sample lines that reached the report are intact (their whole line, value included).
    kept = [c for c in KEEP if any(c["line"] in s for s in samples)]
    assert len(kept) >= 5, "look-alikes must reach the report unchanged"
    # 2. The report becomes an incident in the store.
    p2 = subprocess.run([*CLI, "--data-dir", str(data), "incidents", "add", "--from-report", str(outs[2])],
                        capture_output=True, text=True, timeout=300, env=env, check=False)
    assert p2.returncode == 0, p2.stderr[-2000:]
    assert _leaks(_files_blob(data)) == [] and _leaks(p2.stdout + p2.stderr) == []
    # 3. The service: upload the log, read the stored report back in every format.
    port = free_port()
    srv_tmp = tmp_path / "srv"
    srv_tmp.mkdir()
    proc = start_server(srv_tmp, {"llm": {"backend": "local"}, "triage": {"llm_budget_s": 20.0},
                                  "server": {"sync_max_bytes": 5_000_000, "request_timeout_s": 300.0}}, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        r = httpx.post(f"{base}/v1/triage", files=[("logs", ("app.log", log.read_bytes(), "text/plain"))], timeout=300)
        assert r.status_code == 200, r.text[:2000]
        rid = r.json()["id"]
        bodies = [r.text] + [httpx.get(f"{base}/v1/reports/{rid}", params={"format": f}, timeout=60).text
                             for f in ("json", "markdown", "html")]
        assert _leaks("\n".join(bodies)) == []
        assert _leaks(_files_blob(srv_tmp / "data")) == []
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert _leaks(out or "") == []


def test_no_planted_secret_reaches_a_prompt() -> None:
    """Whatever the triage hands the LLM layer, the prompt variables of judgment and explanation are redacted
    (the same text the model would read; secrets given raw, as if a caller had not redacted them)."""
    from anomalist.agent.llm.inputs import PromptBuilder, as_log_input
    from anomalist.tools.redact import InjectionFilter

    lines = [c["line"] for c in CORPUS]
    finding = {"id": "F1", "title": "payment errors", "severity": "critical",
               "templates": [{"id": f"F1.T{i}", "template": line, "level": "ERROR", "count": 3,
                              "samples": [{"id": f"F1.L{i}", "text": line}]} for i, line in enumerate(lines, 1)]}
    pb = PromptBuilder(Redactor(), InjectionFilter(), n_ctx=32768, max_output_tokens=64)
    from types import SimpleNamespace as NS

    duck = NS(id="F1", services=["checkout"], templates=[
        NS(id=t["id"], template=t["template"], level="ERROR", components=["checkout.pay"], count=3,
           baseline_per_window=0.0, first_seen=None, last_seen=None, samples=[NS(**x) for x in t["samples"]])
        for t in finding["templates"]])
    judge_vars, _ = pb.log_vars(as_log_input(duck))
    blocks, _ids, _flags = pb.finding_blocks([finding], "explain")
    text = json.dumps(judge_vars) + "\n" + "\n".join(blocks)
    assert "payment errors" in text and sum(1 for c in KEEP if c["line"] in text) >= 5  # the text did get through
    assert _leaks(text) == []
