"""The project's own set-up: what CI refuses to skip, and the Python it needs."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_dataset_fails_in_ci_and_skips_elsewhere(tmp_path: Path, ci: str) -> None:
    env = {**os.environ, "CI": ci, "ANOMALIST_DATASETS": str(tmp_path / "no-such-datasets")}
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/test_eval_ts.py::test_hdfs_real_count_pca"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    if ci:
        assert p.returncode == 1 and "1 error" in p.stdout and "CI=true" in p.stdout, p.stdout[-2000:]
    else:
        assert p.returncode == 0 and "1 skipped" in p.stdout and "no-such-datasets" in p.stdout, p.stdout[-2000:]


def test_requires_python_is_what_the_code_needs() -> None:
    """3.11 (``tomllib``, ``datetime.UTC``): the metadata says so, and this interpreter satisfies it."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    assert declared == ">=3.11"
    assert metadata.metadata("anomalist")["Requires-Python"] == declared
    assert sys.version_info >= (3, 11)


def _packages_on_disk() -> list[str]:
    tops = ("agent", "tools", "eval", "detectors", "prompts")
    return sorted("anomalist." + str(d.relative_to(REPO)).replace("/", ".") for t in tops
                  for d in [REPO / t, *(REPO / t).rglob("*")] if d.is_dir() and (d / "__init__.py").is_file())


def test_every_package_folder_is_declared() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    assert sorted(declared) == _packages_on_disk()


@pytest.mark.slow
def test_wheel_installs_one_namespace_beside_a_package_named_tools(tmp_path: Path) -> None:
    """``pip install .`` puts only ``anomalist`` (and its dist-info) into site-packages, so a distribution with a
    top-level ``tools`` or ``eval`` package lives beside it; the console script points into the namespace."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(REPO)], check=True, timeout=300, capture_output=True)
    (wheel,) = wheels.glob("anomalist-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "tools").mkdir(parents=True)
    (site / "tools" / "__init__.py").write_text("WHO = 'another distribution'\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, timeout=300, capture_output=True)
    ours = {p.name for p in site.iterdir()} - {"tools", "__pycache__"}
    assert {n for n in ours if not n.endswith(".dist-info")} == {"anomalist"}, ours
    installed = sorted(str(d.relative_to(site)).replace("/", ".") for d in (site / "anomalist").rglob("*")
                       if d.is_dir() and (d / "__init__.py").is_file())
    assert installed == _packages_on_disk()
    assert list((site / "anomalist" / "prompts").glob("*.j2")) and (site / "anomalist" / "eval" / "data").is_dir()
    # Both packages import side by side; the stdlib-only masking module runs without the project's dependencies.
    code = ("import tools, anomalist.tools.masking as m; assert tools.WHO == 'another distribution'; "
            "print(m.canonical('<*>,<*> sent'))")
    out = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "<*> sent"
    assert "anomalist.agent.cli.main" in (venv / "bin" / "anomalist").read_text()
