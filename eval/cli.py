"""``anomalist eval ...``: the evaluation suites. Arguments and JSON shapes are contracts fixed by the issues.

Each suite lives in its own module exposing ``run(...) -> dict`` (the JSON object) and
``render(result) -> rich renderable`` (the human table); this file only parses arguments and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True)
_console = Console()

_DATA_HELP = "Dataset directory (layouts: see the suite's help)."


def _emit(result: dict[str, Any], as_json: bool, render: Any) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=None, default=_jsonable))
    else:
        _console.print(render(result))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _check_dir(data: Path) -> None:
    if not data.is_dir():
        raise typer.BadParameter(f"not a directory: {data}", param_hint="--data")


@app.command("parsing")
def parsing(
    data: Path = typer.Option(..., "--data", help="Loghub-2k layout: <System>/<System>_2k.log(+_structured.csv), corrected/."),
    systems: str = typer.Option(None, "--systems", help="Comma-separated systems; default every system present."),
    ground_truth: str = typer.Option("corrected", "--ground-truth", help="corrected | original"),
    cv: bool = typer.Option(False, "--cv", help="Also leave-one-system-out figures over the parser configurations."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Parsing accuracy (GA, PA, FGA, FTA) and speed per system and as the mean; --cv: the tuning protocol."""
    _check_dir(data)
    if ground_truth not in ("corrected", "original"):
        raise typer.BadParameter("must be 'corrected' or 'original'", param_hint="--ground-truth")
    from anomalist.eval import parsing as suite

    _emit(suite.run(data, systems=_split(systems), ground_truth=ground_truth, cv=cv), as_json, suite.render)


@app.command("parsing-speed")
def parsing_speed(
    data: Path = typer.Option(..., "--data", help="Loghub-2k layout; templates are re-filled with fresh parameters."),
    lines: int = typer.Option(1_000_000, "--lines", min=1, help="Stream length."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Anomalist's parser vs plain drain3 (same masking) on a generated stream with known ground truth."""
    _check_dir(data)
    from anomalist.eval import parsing_speed as suite

    _emit(suite.run(data, n_lines=lines), as_json, suite.render)


@app.command("timeseries")
def timeseries(
    data: Path = typer.Option(..., "--data", help="NAB layout (data/, labels/) or SMD layout (train/, test/, ...)."),
    fmt: str = typer.Option(..., "--format", help="nab | smd"),
    detectors: str = typer.Option(None, "--detectors", help="Comma-separated registry names; default all."),
    cv: bool = typer.Option(False, "--cv/--no-cv", help="Leave one group (SMD machine, NAB folder) out: auto's configuration and the baseline chosen on the others."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time-series detectors side by side: AUC-PR, AUC-ROC, VUS-PR, F1 variants, timings."""
    _check_dir(data)
    if fmt not in ("nab", "smd"):
        raise typer.BadParameter("must be 'nab' or 'smd'", param_hint="--format")
    from anomalist.eval import timeseries as suite

    _emit(suite.run(data, fmt=fmt, detectors=_split(detectors), cv=cv), as_json, suite.render)


@app.command("logs")
def logs(
    data: Path = typer.Option(..., "--data", help="hdfs_sessions layout or loghub_2k layout."),
    fmt: str = typer.Option(..., "--format", help="hdfs-sessions | bgl2k"),
    detectors: str = typer.Option(None, "--detectors", help="Comma-separated log detector names; default all."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Log anomaly detectors: precision, recall, F1, AUC-PR."""
    _check_dir(data)
    if fmt not in ("hdfs-sessions", "bgl2k"):
        raise typer.BadParameter("must be 'hdfs-sessions' or 'bgl2k'", param_hint="--format")
    from anomalist.eval import logs as suite

    _emit(suite.run(data, fmt=fmt, detectors=_split(detectors)), as_json, suite.render)


_SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"  # ../shared/datasets beside the checkout


@app.command("llm")
def llm(
    sets: str = typer.Option("all", "--set", help="bgl | nezha | all (both side by side; all = the sets whose data is present)."),
    data: Path = typer.Option(_SHARED / "loghub_2k", "--data", help="Loghub-2k layout (set bgl)."),
    system: str = typer.Option("BGL", "--system", help="Loghub system of set bgl (any with a Label column)."),
    nezha: Path = typer.Option(_SHARED / "nezha_trainticket", "--nezha", help="Nezha export: *fault_list.json, log/, normal/ (set nezha)."),
    backend: str = typer.Option("local", "--backend", help="local | openai"),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible server URL (backend openai)."),
    model: str = typer.Option(None, "--model", help="Model name (backend openai) or local model path."),
    limit: int = typer.Option(None, "--limit", min=1, help="Judge at most N templates per set, both labels in proportion (quick checks)."),
    as_json: bool = typer.Option(False, "--json", help='Print one JSON object: {"sets": {name: result}}.'),
) -> None:
    """Zero-shot judgment of labelled templates (BGL alert tags; Nezha fault injection): LLM, semantic prior,
    combined, and two baselines, per set."""
    if sets not in ("bgl", "nezha", "all"):
        raise typer.BadParameter("must be 'bgl', 'nezha' or 'all'", param_hint="--set")
    if backend not in ("local", "openai"):
        raise typer.BadParameter("must be 'local' or 'openai'", param_hint="--backend")
    folders = {"bgl": (data, "--data"), "nezha": (nezha, "--nezha")}
    if sets == "all":
        chosen = [name for name, (folder, _) in folders.items() if folder.is_dir()]
        if not chosen:
            raise typer.BadParameter(f"neither {data} nor {nezha} is a directory", param_hint="--data/--nezha")
    else:
        chosen = [sets]
        folder, hint = folders[sets]
        if not folder.is_dir():
            raise typer.BadParameter(f"not a directory: {folder}", param_hint=hint)
    from anomalist.eval import llm as suite

    result = suite.run_sets(chosen, data=data, system=system, nezha=nezha, backend=backend, base_url=base_url, model=model, limit=limit)  # type: ignore[arg-type]
    _emit(result, as_json, suite.render)


@app.command("retrieval")
def retrieval(
    data: Path = typer.Option(..., "--data", help="runbooks layout: runbooks/**.md and alert_rules.jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Alert → runbook retrieval: recall@1, recall@3, MRR in 'full' and 'description' modes."""
    _check_dir(data)
    from anomalist.eval import retrieval as suite

    _emit(suite.run(data), as_json, suite.render)


@app.command("rca")
def rca(
    data: Path = typer.Option(..., "--data", help="A Nezha-style export: *fault_list.json, log/, metric/, trace/, normal/."),
    cases: str = typer.Option(None, "--cases", help="Comma-separated case ids (YYYYmmdd-HHMMSS) or HH:MM times; default all."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N cases (quick checks)."),
    lofo: bool = typer.Option(True, "--lofo/--no-lofo", help="Leave-one-fault-type-out choice of the ranking constants."),
    backend: str = typer.Option("local", "--backend", help="LLM backend of the triage: local | openai | none"),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible server URL (backend openai)."),
    model: str = typer.Option(None, "--model", help="Model name (backend openai)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Root-cause localisation per fault case: AC@1, AC@3, Avg@5, fault kind, onset error, seconds, two baselines."""
    _check_dir(data)
    if backend not in ("local", "openai", "none"):
        raise typer.BadParameter("must be 'local', 'openai' or 'none'", param_hint="--backend")
    from anomalist.eval import rca as suite

    _emit(suite.run(data, cases=_split(cases), limit=limit, lofo=lofo, llm_backend=backend, base_url=base_url,
                    model=model), as_json, suite.render)


@app.command("chat")
def chat(
    data: Path = typer.Option(None, "--data", help="A Nezha-style export for the nezha:HH:MM questions (default: ../shared/datasets/nezha_trainticket beside the checkout when it is there, else demo questions only)."),
    backend: str = typer.Option("local", "--backend", help="LLM backend of the chat: local | openai"),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible server URL (backend openai)."),
    model: str = typer.Option(None, "--model", help="Model name (backend openai)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N questions."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Chat answers on a question set: fact recall, unsupported-claim rate, tool errors, seconds per answer."""
    if data is None:
        from anomalist.eval.chat import DEFAULT_NEZHA

        data = DEFAULT_NEZHA if DEFAULT_NEZHA.is_dir() else None
    if data is not None:
        _check_dir(data)
    if backend not in ("local", "openai"):
        raise typer.BadParameter("must be 'local' or 'openai'", param_hint="--backend")
    from anomalist.eval import chat as suite

    _emit(suite.run(data, backend=backend, base_url=base_url, model=model, limit=limit), as_json, suite.render)
