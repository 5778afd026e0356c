"""One typed settings object for all of Anomalist.

Precedence (lowest to highest): defaults < config file (YAML or TOML) < ``ANOMALIST_*`` environment variables
< command-line flags. Nested fields use ``__`` in the environment, e.g. ``ANOMALIST_LLM__BACKEND=openai``.
Settings are read only at the edges (CLI, server start-up) and passed down explicitly.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from platformdirs import user_data_dir
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


def default_data_dir() -> Path:
    """The per-user data directory (e.g. ``~/.local/share/anomalist``)."""
    return Path(user_data_dir("anomalist", appauthor=False))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogSettings(_Section):
    """How logs are read and parsed."""

    format: str | None = Field(None, description="Preset name or custom '<Date> <Time> <Level>: <Content>' format; None = detect")
    max_line_bytes: int = Field(64 * 1024, ge=256, description="Longer lines are truncated (and counted)")
    parser_state: Path | None = Field(None, description="File where the Drain parser state is saved/loaded")
    json_message_field: str = "message"
    json_timestamp_field: str = "timestamp"
    json_level_field: str = "level"


class DetectorSettings(_Section):
    """Numerical detectors."""

    metric_detector: str = "auto"
    device: str = Field("auto", description="'auto' uses CUDA when present, else CPU")
    seed: int = 0
    torch_threads: int | None = Field(None, description="None = let the detector pick (min(cores, 2))")

    def params_for(self, name: str, **extra: Any) -> dict[str, Any]:
        """Seed and device (plus ``extra``) for detector ``name``: only the parameters it accepts, None dropped
        (detectors refuse unknown parameters)."""
        from anomalist.detectors import detector_class

        accepted = detector_class(name)._param_names()
        wanted = {"seed": self.seed, "device": self.device, **extra}
        return {k: v for k, v in wanted.items() if k in accepted and v is not None}


class LLMSettings(_Section):
    """LLM backend (see agent.llm)."""

    backend: Literal["local", "openai", "vllm", "none"] = "local"
    writes_answers: bool | None = Field(None, description="The model writes chat answers (grounded: sentences "
                                        "with uncited facts are dropped); false = answers are composed from the "
                                        "tool results. Default: true for openai/vllm, false for the embedded model")
    model_path: Path | None = Field(None, description="GGUF file or HF folder for 'local'; None = embedded SmolLM2")
    base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://localhost:8000/v1")
    model: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = 30.0
    max_retries: int = 2
    concurrency: int = 4
    temperature: float = 0.0
    n_threads: int = Field(1, description="llama.cpp threads; 1 stays steady when other work shares the cores")
    n_ctx: int = 2048
    cache_dir: Path | None = Field(None, description="Verdict cache; None = <data_dir>/llm_cache")
    redact_ips: bool = False
    redact_hostnames: bool = False
    extra_redaction_patterns: list[str] = Field(default_factory=list)
    local_instances: int = Field(2, ge=1, le=16, description="Copies of a local GGUF model (parallel judgments)")
    gguf_f16: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Read a quantized GGUF through an F16 copy built once in the cache dir: 1.8x faster prompt reading "
        "for the embedded 135M model on CPU; 'auto' = for files up to 256 MB (big models would double their memory)",
    )
    seed: int = 0
    max_output_tokens: int = Field(256, ge=16, description="Answer budget of explanations and summaries")
    reason_tokens: int = Field(20, ge=0, description="Tokens of the short reason a local judgment generates")
    reason_for: Literal["all", "anomalous", "none"] = Field(
        # The embedded 135M model's generated reasons were measured to be empty phrases ("no response."), and they
        # cost about 15% of judgment throughput; a larger local model can turn them on.
        "none", description="Which local verdicts get a generated reason (others get the evidence-based one)"
    )
    judge_mode: Literal["auto", "label", "json_schema", "tool_call", "json_text", "cot"] = Field(
        "auto", description="auto = label likelihood on in-process models, the best the server supports on openai"
    )
    use_prior: bool = Field(True, description="Blend the semantic prior into log verdicts")
    prior_weight: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Weight of the semantic prior in a blended verdict; None = 0.8 with the embedded 135M model "
        "(its verdicts are weak), 0.5 with any other model",
    )
    probe: bool = Field(True, description="Probe an openai server's capabilities at start-up")
    supports_tools: bool | None = Field(None, description="Override: does the chat model plan with tool calls")
    breaker_failures: int = Field(3, ge=1, description="Consecutive failed calls that open the circuit breaker")
    breaker_reset_s: float = Field(30.0, gt=0, description="Seconds before a trial call after the breaker opened")
    cache_max_entries: int = Field(100_000, ge=100)


class StoreSettings(_Section):
    """Incident and runbook memory (chromadb)."""

    mode: Literal["embedded", "server"] = "embedded"
    path: Path | None = Field(None, description="Embedded store directory; None = <data_dir>/store")
    host: str = "localhost"
    port: int = 8000
    token: SecretStr | None = None
    ssl: bool = False
    timeout_s: float = Field(5.0, gt=0, description="Server connect/heartbeat timeout; unreachable = degraded fast")
    query_threads: int | None = Field(1, ge=1, description="torch threads to embed a query (1 stays fast under load)")
    import_threads: int | None = Field(None, ge=1, description="threads to embed imports; None = the backend's default")
    embedding_backend: Literal["onnx-int8", "torch"] = Field(
        "onnx-int8",
        description="all-MiniLM-L6-v2 on onnxruntime int8 (about 2.8x faster on CPU, cosine 0.994 with fp32) or "
        "torch fp32 (used on CUDA either way)",
    )


class TriageSettings(_Section):
    """Batch triage."""

    top_k: int = Field(5, ge=1, le=50)
    llm_budget_s: float = Field(60.0, description="A triage never waits on the LLM longer than this in total")
    window: str = "5min"
    fail_on: Literal["warning", "critical"] | None = None
    log_detectors: list[str] = Field(
        default_factory=lambda: ["new_template", "template_spike", "count_iforest"],
        description="Log detectors run on the batch's window counts (count_pca needs many more windows than templates)",
    )
    max_windows: int = Field(2000, ge=50, description="Logs spanning more windows than this get a wider window")
    baseline_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="Leading share of windows new_template learns from")
    min_strength: float = Field(0.6, ge=0.5, le=1.0, description="Hits weaker than this (0.5 = at threshold) are dropped")
    max_findings: int = Field(20, ge=1, le=200, description="Findings kept in the report (the top_k are enriched)")
    incidents_k: int = Field(3, ge=0, le=20, description="Similar incidents retrieved per enriched finding")
    metric_robust_k: float = Field(5.0, gt=0.0, description="Metric rows flagged above median + k robust SDs of the batch's scores")
    llm_explain_k: int | None = Field(
        None, ge=0, le=50,
        description="Top findings that get an LLM explanation (all top_k are judged); None = 3 on servers, 0 in-process",
    )
    llm_summary: bool | None = Field(None, description="Ask the LLM for a report summary; None = on servers only")
    engine: Literal["local", "ray"] = Field(
        "local", description="Where reading, parsing and counting run: in this process, or as Ray tasks over shards")
    ray_address: str | None = Field(None, description="Ray cluster to join (auto, ray://host:port); None = a local one")
    shard_mb: float = Field(32.0, gt=0, description="Plain log files larger than this are cut into byte ranges")


class RCASettings(_Section):
    """Root-cause analysis: which service (and pod) broke, when, and how (see ``agent.rca``)."""

    enabled: bool = True
    resolution: str = Field("1min", description="Time bin of the per-service evidence (onsets are this precise)")
    service_map: dict[str, str] = Field(
        default_factory=dict,
        description="Pod name regex -> service (groups allowed, first match wins); default: strip the Deployment/"
        "StatefulSet suffixes (ts-contacts-service-866bd68c97-xcqfx -> ts-contacts-service)",
    )
    max_candidates: int = Field(5, ge=1, le=50, description="Root-cause candidates in the report")


class PrometheusSettings(_Section):
    """Prometheus as a metric source (``tools.prometheus``): the server, its credentials and the query bounds."""

    url: str | None = Field(None, description="Base URL, e.g. http://127.0.0.1:9090 (None: no Prometheus)")
    bearer_token: SecretStr | None = None
    bearer_token_file: str | None = Field(None, description="File holding the bearer token (read on each use)")
    username: str | None = Field(None, description="Basic auth user (instead of a bearer token)")
    password: SecretStr | None = None
    verify: bool = Field(True, description="Verify the server's TLS certificate")
    ca_file: str | None = Field(None, description="CA bundle to verify it with")
    timeout_s: float = Field(10.0, gt=0, description="Timeout of one query")
    max_series: int = Field(500, ge=1, description="A query returning more series is refused")
    max_points: int = Field(2_000_000, ge=1, description="A query returning more points is refused")
    step_s: float | None = Field(None, gt=0, description="Query step (default: from the window, ~600 points)")
    baseline: str = Field("preceding:6h", description="What normal looks like: 'preceding:<dur>' (the range "
                          "before the window), 'offsets:1d,7d' (the same window a day and a week earlier), 'none'")
    alert_expr: bool = Field(True, description="For an alert, also query the expression behind it (generatorURL)")


class PrometheusSource(_Section):
    """A service's metrics in Prometheus: PromQL queries (``{{service}}``, ``{{namespace}}``, ``{{pod}}`` and any
    other alert label are filled in) and/or a label selector that takes every series matching it."""

    queries: dict[str, str] = Field(default_factory=dict, description="name -> PromQL")
    selector: str | None = Field(None, description='e.g. {namespace="{{namespace}}",pod=~"{{service}}-.*"}')


class MetricSource(_Section):
    """Where a service's metrics live: a file or directory (``path``), or Prometheus."""

    path: str | None = None
    prometheus: PrometheusSource | None = None


class JournaldSource(_Section):
    """Logs from the systemd journal, read with ``journalctl -o json`` (no extra daemon)."""

    units: list[str] = Field(default_factory=list, description="systemd units (-u); empty: every unit")
    identifiers: list[str] = Field(default_factory=list, description="syslog identifiers (-t)")
    directory: str | None = Field(None, description="journal directory (-D) instead of the system journal")
    file: str | None = Field(None, description="one journal file (--file)")
    journalctl: str = "journalctl"
    max_entries: int = Field(200_000, ge=1, description="Most entries read per triage (the newest are kept)")
    timeout_s: float = Field(60.0, gt=0)


class LogSource(_Section):
    """Where a service's logs live, besides plain globs: files/globs (also Kubernetes pod log files) or journald."""

    files: list[str] = Field(default_factory=list, description="globs (/var/log/pods/<ns>_<pod>_*/*/*.log, ...)")
    journald: JournaldSource | None = None


class ServerSettings(_Section):
    """HTTP service."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: SecretStr | None = None
    max_body_mb: float = 50.0
    request_timeout_s: float = 120.0
    sync_max_bytes: int = Field(2_000_000, description="Larger triage uploads run as background jobs")
    sources: dict[str, list[str | LogSource]] = Field(
        default_factory=dict, description="service -> log sources for alerts: globs, or {files: [...]} / {journald: {...}}")
    metrics_sources: dict[str, str | MetricSource] = Field(
        default_factory=dict, description="service -> metrics: a CSV/directory path, or {prometheus: {queries, selector}}")
    outgoing_webhook: str | None = None
    outgoing_timeout_s: float = Field(10.0, gt=0, description="Timeout of one POST to the outgoing webhook")
    workers: int = Field(2, ge=1, le=64, description="Triage worker threads (bounded pool; webhooks never wait)")
    max_queue: int = Field(200, ge=1, description="Queued triages beyond this are refused with 503")
    chat_concurrency: int = Field(2, ge=1, le=64, description="Chat turns running at once (others wait)")
    chat_max_steps: int = Field(6, ge=1, le=20, description="Most model calls per chat turn")
    alert_lookback_minutes: int = Field(120, ge=1, description="Metrics window before an alert's startsAt")
    dedup_capacity: int = Field(10_000, ge=100, description="Alert (fingerprint, startsAt) keys remembered")
    max_conversations: int = Field(256, ge=1, description="Chat conversations kept in memory (LRU)")


class Settings(BaseSettings):
    """All of Anomalist's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="ANOMALIST_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    logs: LogSettings = Field(default_factory=LogSettings)
    detectors: DetectorSettings = Field(default_factory=DetectorSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    triage: TriageSettings = Field(default_factory=TriageSettings)
    rca: RCASettings = Field(default_factory=RCASettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)

    @property
    def store_path(self) -> Path:
        return self.store.path or self.data_dir / "store"

    @property
    def llm_cache_dir(self) -> Path:
        return self.llm.cache_dir or self.data_dir / "llm_cache"


class _DictSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]):
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML or TOML config file into a dict (``ValueError`` naming the file on bad content)."""
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot parse config file {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at the top level")
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build the settings: file < environment < ``overrides`` (command-line flags, nested dicts allowed).

    ``overrides`` values that are None are ignored, so unset flags do not hide the environment.
    """
    file_data = read_config_file(config_file) if config_file else {}
    flags = _drop_none(overrides or {})

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _DictSource(settings_cls, file_data))

    if not flags:
        return _Loaded()
    # Nested flags must not wipe environment/file values of the same section: merge onto them.
    base = _Loaded().model_dump()
    return _Loaded(**_deep_merge(base, flags))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            sub = _drop_none(v)
            if sub:
                out[k] = sub
        elif v is not None:
            out[k] = v
    return out
