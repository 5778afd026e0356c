"""``anomalist eval parsing-speed``: Anomalist's parser vs plain drain3 on a long generated stream.

The stream re-fills the ground-truth templates of every Loghub-2k system in ``data`` with fresh random values of
the same kind: each generated line copies a random line of the sample (its header and constant text) and replaces
every digit run inside the template's variables by random digits of the same length. Lines repeat in template,
not in content, and the ground truth of every line is known.

Both parsers read the same files, split headers with the same preset regex and mask with the same patterns
(:data:`tools.masking.VARIABLE_REGEX` and the canonical-form rules, given to drain3 as its masking instructions).
Anomalist runs its real streaming path (:func:`tools.parsing.iter_parsed`, parameters extracted); drain3 runs
``TemplateMiner.add_log_message`` per line with the published Drain settings of each system.
"""

from __future__ import annotations

import logging
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from rich.table import Table

from anomalist.eval import loghub
from anomalist.eval.parsing_metrics import grouping_accuracy
from anomalist.tools import logformats, masking
from anomalist.tools.drain_parser import miner_config
from anomalist.tools.errors import InputError
from anomalist.tools.parsing import iter_parsed

logger = logging.getLogger(__name__)
_DIGITS = re.compile(r"(\d+)")


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class _LineModel:
    """One sample line as constant pieces and digit runs to re-draw."""

    __slots__ = ("pieces", "truth")

    def __init__(self, pieces: list[str | tuple[int, bool]], truth: int) -> None:
        self.pieces = pieces
        self.truth = truth


def _models(system: loghub.LoghubSystem, fmt: logformats.LogFormat, truth_ids: dict[str, int]
            ) -> list[_LineModel]:
    gt = system.ground_truth()
    raw = [ln.rstrip("\r") for ln in system.log_path.read_text(encoding="utf-8", errors="replace").split("\n")]
    out: list[_LineModel] = []
    for row in gt.itertuples(index=False):
        line_id = int(getattr(row, "LineId", len(out) + 1))
        if line_id - 1 >= len(raw):
            continue
        line = raw[line_id - 1]
        m = fmt.regex.match(line)
        if m is None or m.start("Content") < 0:
            continue
        header, content = line[: m.start("Content")], m.group("Content") or ""
        template = str(row.EventTemplate)
        key = f"{system.name}\x00{template}"
        truth = truth_ids.setdefault(key, len(truth_ids))
        pieces: list[str | tuple[int, bool]] = [header]
        pat = masking.template_regex(template)
        pm = pat.match(content) if pat is not None else None
        if pm is None:  # the template does not fit its line: keep the line constant
            pieces.append(content)
        else:
            pos = 0
            for g in range(1, (pm.lastindex or 0) + 1):
                a, b = pm.span(g)
                pieces.append(content[pos:a])
                for k, part in enumerate(_DIGITS.split(content[a:b])):
                    if k % 2:
                        pieces.append((len(part), part[0] != "0" and len(part) > 1))
                    elif part:
                        pieces.append(part)
                pos = b
            pieces.append(content[pos:])
        out.append(_LineModel([p for p in pieces if p != ""], truth))
    return out


class _Digits:
    """Random digit text drawn in bulk (fast per-line slicing)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._refill()

    def _refill(self) -> None:
        self.any = (self.rng.integers(0, 10, size=1 << 22, dtype=np.uint8) + 48).tobytes().decode()
        self.nonzero = (self.rng.integers(1, 10, size=1 << 20, dtype=np.uint8) + 48).tobytes().decode()
        self.i = 0
        self.j = 0

    def take(self, n: int, lead_nonzero: bool) -> str:
        if self.i + n >= len(self.any) or self.j + 1 >= len(self.nonzero):
            self._refill()
        if lead_nonzero:
            s = self.nonzero[self.j] + self.any[self.i : self.i + n - 1]
            self.j += 1
            self.i += n - 1
        else:
            s = self.any[self.i : self.i + n]
            self.i += n
        return s


def generate_stream(data: Path, n_lines: int, out_dir: Path, seed: int = 0
                    ) -> tuple[list[tuple[str, Path, int]], np.ndarray]:
    """Write the stream, one file per system; returns (system, file, lines) and the true template id per line."""
    names = loghub.list_systems(data, "corrected")
    systems = [loghub.load_system(data, n, "corrected") for n in names
               if n.lower() in logformats.PRESETS]
    if not systems:
        raise InputError(f"no Loghub-2k system with a known preset under {data}")
    rng = np.random.default_rng(seed)
    digits = _Digits(rng)
    truth_ids: dict[str, int] = {}
    files: list[tuple[str, Path, int]] = []
    truths: list[np.ndarray] = []
    share = [n_lines // len(systems) + (1 if k < n_lines % len(systems) else 0) for k in range(len(systems))]
    for system, count in zip(systems, share, strict=True):
        if count == 0:
            continue
        models = _models(system, logformats.PRESETS[system.name.lower()], truth_ids)
        picks = rng.integers(0, len(models), size=count)
        path = out_dir / f"{system.name}.log"
        truth = np.empty(count, dtype=np.int64)
        take = digits.take
        with open(path, "w", encoding="utf-8") as fh:
            buf: list[str] = []
            for k, idx in enumerate(picks):
                model = models[idx]
                truth[k] = model.truth
                buf.append("".join(p if isinstance(p, str) else take(p[0], p[1]) for p in model.pieces))
                if len(buf) >= 50_000:
                    fh.write("\n".join(buf) + "\n")
                    buf.clear()
            if buf:
                fh.write("\n".join(buf) + "\n")
        files.append((system.name, path, count))
        truths.append(truth)
    return files, np.concatenate(truths)


def drain3_masking() -> list[MaskingInstruction]:
    """Anomalist's masking expressed as drain3 masking instructions (same output, applied in order)."""
    return [MaskingInstruction(masking.VARIABLE_REGEX.pattern, "*")] + [
        MaskingInstruction(p.pattern, "*") for p in masking.DEFAULT_RULES.patterns()]


def _clock() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def _since(t0: tuple[float, float]) -> tuple[float, float]:
    cpu, wall = _clock()
    return cpu - t0[0], wall - t0[1]


def _run_anomalist(files: list[tuple[str, Path, int]]) -> tuple[np.ndarray, tuple[float, float]]:
    ids: list[np.ndarray] = []
    t0 = _clock()
    for k, (name, path, _) in enumerate(files):
        for chunk in iter_parsed(path, name):
            ids.append(chunk["template_id"].to_numpy() + (k << 32))
    return np.concatenate(ids), _since(t0)


def _run_drain3(files: list[tuple[str, Path, int]]) -> tuple[np.ndarray, tuple[float, float]]:
    ids: list[np.ndarray] = []
    t0 = _clock()
    for k, (name, path, n) in enumerate(files):
        fmt = logformats.PRESETS[name.lower()]
        cfg = miner_config(fmt.drain_depth, fmt.drain_sim, 100, None)
        cfg.masking_instructions = drain3_masking()
        miner = TemplateMiner(persistence_handler=None, config=cfg)
        match = fmt.regex.match
        out = np.empty(n, dtype=np.int64)
        i = 0
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.rstrip("\n")
                m = match(line)
                content = (m.group("Content") or "") if m else line
                out[i] = miner.add_log_message(content)["cluster_id"]
                i += 1
        ids.append(out[:i] + (k << 32))
    return np.concatenate(ids), _since(t0)


def run(data: Path, n_lines: int = 1_000_000, seed: int = 0) -> dict[str, Any]:
    """Generate the stream, parse it with both, and report lines/s, GA and Anomalist's peak RSS."""
    with tempfile.TemporaryDirectory(prefix="anomalist-speed-") as tmp:
        t0 = time.perf_counter()
        files, truth = generate_stream(Path(data), n_lines, Path(tmp), seed)
        gen_s = time.perf_counter() - t0
        ours, ours_s = _run_anomalist(files)
        ours_rss = _peak_rss_mb()
        base, base_s = _run_drain3(files)
    n = int(len(truth))
    if len(ours) != n or len(base) != n:
        raise RuntimeError(f"line count mismatch: truth {n}, anomalist {len(ours)}, drain3 {len(base)}")
    # lines/s per CPU second of this process: steady on a machine shared with other work (wall time is given too)
    a = {"lines_per_s": round(n / ours_s[0], 1), "ga": round(grouping_accuracy(truth, ours), 4),
         "peak_rss_mb": round(ours_rss, 1), "cpu_seconds": round(ours_s[0], 2), "wall_seconds": round(ours_s[1], 2),
         "templates": int(len(np.unique(ours)))}
    d = {"lines_per_s": round(n / base_s[0], 1), "ga": round(grouping_accuracy(truth, base), 4),
         "cpu_seconds": round(base_s[0], 2), "wall_seconds": round(base_s[1], 2),
         "templates": int(len(np.unique(base)))}
    return {"anomalist": a, "drain3": d, "ratio": round(a["lines_per_s"] / d["lines_per_s"], 2), "lines": n,
            "systems": [f[0] for f in files], "true_templates": int(len(np.unique(truth))),
            "generate_seconds": round(gen_s, 2)}


def render(result: dict[str, Any]) -> Table:
    """A rich table with both parsers side by side."""
    table = Table(title=f"Parsing speed on a {result['lines']:,}-line generated stream "
                        f"({len(result['systems'])} systems, {result['true_templates']} true templates)")
    for col in ("parser", "lines/CPU-s", "GA", "templates", "CPU s", "wall s", "peak RSS MB"):
        table.add_column(col, justify="right" if col != "parser" else "left")
    a, d = result["anomalist"], result["drain3"]
    table.add_row("anomalist", f"{a['lines_per_s']:,.0f}", f"{a['ga']:.4f}", str(a["templates"]),
                  f"{a['cpu_seconds']}", f"{a['wall_seconds']}", f"{a['peak_rss_mb']:.0f}")
    table.add_row("drain3", f"{d['lines_per_s']:,.0f}", f"{d['ga']:.4f}", str(d["templates"]), f"{d['cpu_seconds']}",
                  f"{d['wall_seconds']}", "")
    table.add_row("[bold]ratio[/bold]", f"[bold]{result['ratio']:.2f}x[/bold]", "", "", "", "", "")
    return table
