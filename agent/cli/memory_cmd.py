"""``anomalist incidents import|search|add|list|delete`` and ``anomalist runbooks import|search|list``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from anomalist.agent.cli.common import EXIT_ERROR, EXIT_INPUT, console, fail, get_settings
from anomalist.agent.settings import Settings

incidents_app = typer.Typer(no_args_is_help=True, help="Past incidents: import, search, add, list, delete.")
runbooks_app = typer.Typer(no_args_is_help=True, help="Runbooks: import Markdown (and alert rules), search.")

_MODE = typer.Option(None, "--mode", help="Store mode: embedded | server (default from settings).")
_HOST = typer.Option(None, "--host", help="chroma server host (server mode).")
_PORT = typer.Option(None, "--port", help="chroma server port (server mode).")
_PATH = typer.Option(None, "--store-path", help="Embedded store directory (default <data-dir>/store).")
_JSON = typer.Option(False, "--json", help="Print one JSON object.")


def register(app: typer.Typer) -> None:
    """Add ``incidents`` and ``runbooks`` to ``app``."""
    app.add_typer(incidents_app, name="incidents")
    app.add_typer(runbooks_app, name="runbooks")


def _settings(ctx: typer.Context, mode: str | None, host: str | None, port: int | None, path: Path | None) -> Settings:
    if mode is not None and mode not in ("embedded", "server"):
        raise fail(f"--mode must be 'embedded' or 'server', got {mode!r}")
    return get_settings(ctx, store={"mode": mode, "host": host, "port": port, "path": path})


def _open(settings: Settings, create: bool) -> Any:
    from anomalist.tools.store import IncidentStore, StoreUnavailable

    try:
        return IncidentStore.from_settings(settings.store, settings.store_path, create=create)
    except StoreUnavailable as exc:
        raise fail(str(exc), EXIT_ERROR) from exc


def _guarded(fn: Any) -> Any:
    from anomalist.tools.store import StoreUnavailable

    try:
        return fn()
    except StoreUnavailable as exc:
        raise fail(str(exc), EXIT_ERROR) from exc


def _print_summary(summary: Any, as_json: bool, what: str) -> None:
    if as_json:
        typer.echo(json.dumps(summary.model_dump(mode="json")))
    else:
        console.print(
            f"{what} from [bold]{summary.source}[/bold]: read {summary.read}, added {summary.added}, "
            f"updated {summary.updated}, unchanged {summary.unchanged}, rejected {len(summary.rejected)}, "
            f"skipped {summary.skipped} ({summary.seconds:.1f} s)"
        )
        for rej in summary.rejected[:20]:
            console.print(f"  [yellow]rejected[/yellow] {rej.where}{f' ({rej.id})' if rej.id else ''}: {rej.reason}")
        if len(summary.rejected) > 20:
            console.print(f"  ... and {len(summary.rejected) - 20} more rejected")
        for note in summary.notes:
            console.print(f"  note: {note}")
    if summary.read and not summary.imported and summary.rejected:
        raise typer.Exit(EXIT_INPUT)


def _filters(service: list[str] | None, severity: list[str] | None, min_severity: str | None,
             since: str | None, until: str | None, tag: list[str] | None) -> Any:
    from pydantic import ValidationError

    from anomalist.tools.store import StoreFilters

    try:
        return StoreFilters(services=service or [], severity=severity or [], min_severity=min_severity,
                            since=_time(since), until=_time(until), tags=tag or [])
    except ValidationError as exc:
        raise fail(f"bad filter: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise fail(f"not an ISO 8601 time: {value!r}") from exc


# ---- incidents ---------------------------------------------------------------------------------------------------
@incidents_app.command("import")
def incidents_import(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A JSONL file, or a directory of *.jsonl files."),  # noqa: B008
    fmt: str = typer.Option("auto", "--format", help="auto | anomalist | postmortems (danluu/post-mortems JSONL)."),
    mode: str = _MODE, host: str = _HOST, port: int = _PORT, store_path: Path = _PATH, as_json: bool = _JSON,
) -> None:
    """Import incidents; bad lines are rejected one by one with the reason, the rest is imported."""
    from anomalist.tools.store import import_incidents

    if fmt not in ("auto", "anomalist", "postmortems"):
        raise fail(f"--format must be auto, anomalist or postmortems, got {fmt!r}")
    if not path.exists():
        raise fail(f"no such file or directory: {path}")
    store = _open(_settings(ctx, mode, host, port, store_path), create=True)
    try:
        summary = _guarded(lambda: import_incidents(path, store, fmt=fmt))  # type: ignore[arg-type]
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()
    _print_summary(summary, as_json, "incidents")


@incidents_app.command("search")
def incidents_search(
    ctx: typer.Context,
    text: str = typer.Argument(..., help="What happened (findings, log templates, alert names)."),
    k: int = typer.Option(5, "-k", "--top", min=1, max=50, help="How many incidents."),
    service: list[str] = typer.Option(None, "--service", help="Only these services (repeatable)."),  # noqa: B008
    severity: list[str] = typer.Option(None, "--severity", help="Only these severities (repeatable)."),  # noqa: B008
    min_severity: str = typer.Option(None, "--min-severity", help="At least this severity."),
    since: str = typer.Option(None, "--since", help="Started at or after (ISO 8601)."),
    until: str = typer.Option(None, "--until", help="Started at or before (ISO 8601)."),
    tag: list[str] = typer.Option(None, "--tag", help="Only incidents with one of these tags (repeatable)."),  # noqa: B008
    mode: str = _MODE, host: str = _HOST, port: int = _PORT, store_path: Path = _PATH, as_json: bool = _JSON,
) -> None:
    """Past incidents similar to TEXT (hybrid: exact alert name, keywords, semantic)."""
    if not text.strip():
        raise fail("the search text is empty")
    filters = _filters(service, severity, min_severity, since, until, tag)
    store = _open(_settings(ctx, mode, host, port, store_path), create=False)
    try:
        hits = _guarded(lambda: store.similar_incidents(text, k=k, filters=filters))
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"hits": [h.model_dump(mode="json") for h in hits]}))
        return
    if not hits:
        console.print("no matching incidents")
        return
    table = Table(title=f"Incidents similar to: {text[:80]}")
    for col in ("score", "id", "title", "why", "services", "started"):
        table.add_column(col)
    for h in hits:
        inc = h.incident
        table.add_row(f"{h.score:.3f}", inc.id, inc.title[:90], ", ".join(h.why), ", ".join(inc.services[:3]),
                      inc.started_at.isoformat() if inc.started_at else "")
    console.print(table)


@incidents_app.command("add")
def incidents_add(
    ctx: typer.Context,
    file: Path = typer.Argument(None, help="One incident as JSON (our schema)."),  # noqa: B008
    from_report: Path = typer.Option(None, "--from-report", help="A triage report JSON to save as an incident."),  # noqa: B008
    mode: str = _MODE, host: str = _HOST, port: int = _PORT, store_path: Path = _PATH, as_json: bool = _JSON,
) -> None:
    """Add one incident: from a JSON file, or from a finished triage report (memory grows with use)."""
    from pydantic import ValidationError

    from anomalist.tools.store import Incident, incident_from_report

    if (file is None) == (from_report is None):
        raise fail("give either FILE or --from-report REPORT.json")
    src = from_report or file
    try:
        data = json.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise fail(f"no such file: {src}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"cannot read {src} as JSON: {exc}") from exc
    try:
        inc = incident_from_report(data, source=str(src)) if from_report else Incident.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise fail(f"{src} is not a valid {'report' if from_report else 'incident'}: "
                   f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from exc
    except ValueError as exc:
        raise fail(f"{src}: {exc}") from exc
    store = _open(_settings(ctx, mode, host, port, store_path), create=True)
    try:
        res = _guarded(lambda: store.upsert_incidents([inc]))
    finally:
        store.close()
    status = "added" if res.added else "updated" if res.updated else "unchanged"
    if as_json:
        typer.echo(json.dumps({"id": inc.id, "status": status}))
    else:
        console.print(f"incident [bold]{inc.id}[/bold] {status}: {inc.title[:100]}")


@incidents_app.command("list")
def incidents_list(
    ctx: typer.Context,
    service: list[str] = typer.Option(None, "--service", help="Only these services (repeatable)."),  # noqa: B008
    severity: list[str] = typer.Option(None, "--severity", help="Only these severities (repeatable)."),  # noqa: B008
    min_severity: str = typer.Option(None, "--min-severity", help="At least this severity."),
    since: str = typer.Option(None, "--since", help="Started at or after (ISO 8601)."),
    until: str = typer.Option(None, "--until", help="Started at or before (ISO 8601)."),
    tag: list[str] = typer.Option(None, "--tag", help="Only incidents with one of these tags (repeatable)."),  # noqa: B008
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many."),
    mode: str = _MODE, host: str = _HOST, port: int = _PORT, store_path: Path = _PATH, as_json: bool = _JSON,
) -> None:
    """List incidents (newest first), with filters."""
    filters = _filters(service, severity, min_severity, since, until, tag)
    store = _open(_settings(ctx, mode, host, port, store_path), create=False)
    try:
        items = _guarded(lambda: store.list_incidents(filters, limit=limit))
        total = _guarded(lambda: store.count())
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"total": total, "incidents": [i.model_dump(mode="json") for i in items]}))
        return
    table = Table(title=f"{len(items)} of {total} incidents")
    for col in ("id", "severity", "started", "services", "title"):
        table.add_column(col)
    for i in items:
        table.add_row(i.id, i.severity, i.started_at.isoformat() if i.started_at else "", ", ".join(i.services[:3]),
                      i.title[:90])
    console.print(table)


@incidents_app.command("delete")
def incidents_delete(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(..., help="Incident ids."),  # noqa: B008
    mode: str = _MODE, host: str = _HOST, port: int = _PORT, store_path: Path = _PATH, as_json: bool = _JSON,
) -> None:
    """Delete incidents by id."""
    store = _open(_settings(ctx, mode, host, port, store_path), create=False)
    try:
        n = _guarded(lambda: store.delete(ids, kind="incidents"))
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"deleted": n, "requested": len(set(ids))}))
    else:
        console.print(f"deleted {n} of {len(set(ids))} incidents")
    if n == 0:
        raise typer.Exit(EXIT_ERROR)


# ---- runbooks ----------------------------------------------------------------------------------------------------
@runbooks_app.command("import")
def runbooks_import(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A directory of Markdown runbooks (or the runbooks dataset layout)."),  # noqa: B008
    rules: list[Path] = typer.Option(None, "--rules", help="Alert rules (Prometheus YAML or alert_rules.jsonl) "  # noqa: B008
                                     "mapping alert names to runbooks via runbook_url (repeatable)."),
    no_rules: bool = typer.Option(False, "--no-rules", help="Do not pick up DIR/alert_rules.jsonl automatically."),
    mode: str = _MODE, host: str = _HOST, port: int = _PORT, store_path: Path = _PATH, as_json: bool = _JSON,
) -> None:
    """Import runbooks (headings -> sections), then link alert names from rule files."""
    from anomalist.tools.store import import_alert_rules, import_runbooks

    if not path.exists():
        raise fail(f"no such file or directory: {path}")
    root = path / "runbooks" if (path / "runbooks").is_dir() else path
    rule_files = list(rules or [])
    if not no_rules and not rule_files and (path / "alert_rules.jsonl").is_file():
        rule_files.append(path / "alert_rules.jsonl")
    for r in rule_files:
        if not r.exists():
            raise fail(f"no such rules file: {r}")
    store = _open(_settings(ctx, mode, host, port, store_path), create=True)
    try:
        summary = _guarded(lambda: import_runbooks(root, store))
        rule_summaries = [_guarded(lambda r=r: import_alert_rules(r, store)) for r in rule_files]
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"runbooks": summary.model_dump(mode="json"),
                               "rules": [s.model_dump(mode="json") for s in rule_summaries]}))
        if summary.read and not summary.imported and summary.rejected:
            raise typer.Exit(EXIT_INPUT)
        return
    for rs in rule_summaries:
        console.print(f"alert rules from [bold]{rs.source}[/bold]: read {rs.read}, runbooks linked {rs.updated}, "
                      f"skipped {rs.skipped}, rejected {len(rs.rejected)}")
        for note in rs.notes:
            console.print(f"  note: {note}")
    _print_summary(summary, False, "runbooks")


@runbooks_app.command("search")
def runbooks_search(
    ctx: typer.Context,
    text: str = typer.Argument(None, help="Free text (or use --alert)."),
    alert: Path = typer.Option(None, "--alert", help="An Alertmanager alert or webhook payload (JSON file)."),  # noqa: B008
    k: int = typer.Option(3, "-k", "--top", min=1, max=20, help="How many runbooks."),
    mode: str = _MODE, host: str = _HOST, port: int = _PORT, store_path: Path = _PATH, as_json: bool = _JSON,
) -> None:
    """Runbooks for an alert (exact alert name wins) or for free text."""
    if (text is None) == (alert is None):
        raise fail("give either TEXT or --alert ALERT.json")
    payload: Any = None
    if alert is not None:
        try:
            payload = json.loads(alert.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise fail(f"no such file: {alert}") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise fail(f"cannot read {alert} as JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise fail(f"{alert} must hold a JSON object (an alert or a webhook payload)")
    elif not text.strip():
        raise fail("the search text is empty")
    store = _open(_settings(ctx, mode, host, port, store_path), create=False)
    try:
        if payload is not None:
            hits = _guarded(lambda: store.runbook_for(payload, k=k))
        else:
            hits = _guarded(lambda: store.search_runbooks(text, k=k))
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"hits": [h.model_dump(mode="json") for h in hits]}))
        return
    if not hits:
        console.print("no matching runbooks")
        return
    for h in hits:
        rb = h.runbook
        console.print(f"[bold]{h.score:.3f}[/bold] {rb.id} — {rb.title} ({', '.join(h.why)})")
        for name in ("diagnosis", "mitigation"):
            sec = rb.sections.get(name)
            if sec and sec.steps:
                console.print(f"  {name}: " + " | ".join(s.replace("\n", " ")[:100] for s in sec.steps[:3]))


@runbooks_app.command("list")
def runbooks_list(
    ctx: typer.Context,
    mode: str = _MODE, host: str = _HOST, port: int = _PORT, store_path: Path = _PATH, as_json: bool = _JSON,
) -> None:
    """List stored runbooks."""
    store = _open(_settings(ctx, mode, host, port, store_path), create=False)
    try:
        items = _guarded(lambda: store.list_runbooks())
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"runbooks": [{"id": r.id, "title": r.title, "alert_names": r.alert_names}
                                            for r in items]}))
        return
    table = Table(title=f"{len(items)} runbooks")
    for col in ("id", "title", "alerts"):
        table.add_column(col)
    for r in items:
        table.add_row(r.id, r.title, ", ".join(r.alert_names[:4]))
    console.print(table)
