"""The README runs as written, top to bottom, in one clean directory: Python and shell blocks.

Blocks run in their order in the README, in one temporary directory (so a later block sees the
files an earlier one wrote, as a reader's session would), each Python block in a fresh
namespace and each shell command through bash with this environment's ``directionkit`` first on
``PATH``.  A block right after ``<!-- not run by tests: reason -->`` is skipped and listed with
its reason.  Every ``directionkit`` command's output is checked against what it wrote.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import directionkit as dk

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*not run by tests:\s*(.*?)\s*-->\s*$")
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)


@dataclass
class Block:
    index: int
    language: str
    code: str
    skipped: str | None  # the reason, for a block marked not to run


def read_blocks(text: str) -> list[Block]:
    blocks = []
    for i, match in enumerate(BLOCK.finditer(text)):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = SKIP.search(before)
        blocks.append(Block(i, match[1], match[2], marker[1] if marker else None))
    return blocks


BLOCKS = read_blocks(README.read_text())


def commands(code: str) -> list[str]:
    """The logical lines of a shell block.

    Continuations are joined, blank and comment lines dropped, and a here-document
    (``cat > f <<'END'`` up to ``END``) kept whole as one command.
    """
    joined = re.sub(r"\\\n\s*", " ", code)
    out: list[str] = []
    lines = iter(joined.splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        heredoc = re.search(r"<<-?'?(\w+)'?", line)
        if heredoc:
            body = []
            for more in lines:
                body.append(more)
                if more.strip() == heredoc[1]:
                    break
            line = "\n".join([line, *body])
        out.append(line)
    return out


@dataclass
class Session:
    """The README read top to bottom in ``cwd``; ``done`` blocks already ran."""

    cwd: Path
    done: int = 0
    outputs: dict[str, str] = field(default_factory=dict)  # shell command -> its stdout

    def run_until(self, index: int) -> None:
        while self.done <= index:
            block = BLOCKS[self.done]
            self.done += 1
            if block.skipped is None:
                (self.python if block.language == "python" else self.shell)(block)

    def python(self, block: Block) -> None:
        if "torch" in block.code:
            pytest.importorskip("torch")
        if "onnx" in block.code:
            pytest.importorskip("onnxruntime")
        if "transformers" in block.code:
            from tests import zoo

            zoo.transformers()  # beside PyPI's CUDA-built torchvision: see tests/zoo.py
        previous = Path.cwd()
        os.chdir(self.cwd)
        try:
            exec(compile(block.code, f"{README}:block{block.index}", "exec"), {})
        finally:
            os.chdir(previous)

    def shell(self, block: Block) -> None:
        if "directionkit train" in block.code or "model.onnx" in block.code:
            pytest.importorskip("torch")
            pytest.importorskip("onnxruntime")
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        for command in commands(block.code):
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=self.cwd,
                                  env=env, capture_output=True, text=True)  # fmt: skip
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            self.outputs[command] = done.stdout
            check_command(command, done.stdout, self.cwd)


def _option(command: str, name: str) -> str | None:
    match = re.search(rf"{name}\s+(\S+)", command)
    return match[1] if match else None


def _printed(text: str, label: str) -> float:
    match = re.search(rf"^{re.escape(label)}\s\s+(\S+)", text, re.M)
    assert match is not None, f"{label!r} not printed:\n{text}"
    return float(match[1])


def check_command(command: str, out: str, cwd: Path) -> None:
    """What a ``directionkit`` command printed agrees with the files it wrote."""
    words = command.split()
    if words[:1] != ["directionkit"]:
        return
    target = _option(command, "--out")
    if words[1] == "train":
        assert target is not None
        run = cwd / target
        assert (run / "config.json").is_file() and (run / "model.onnx").is_file()
        last = xr.open_zarr(run / "history.zarr").isel(epoch=-1)
        printed = re.search(r"train accuracy (\S+), test accuracy (\S+)", out)
        assert printed is not None, out
        assert float(printed[1]) == pytest.approx(float(last["train_accuracy"]), abs=5e-5)
        assert float(printed[2]) == pytest.approx(float(last["test_accuracy"]), abs=5e-5)
    elif words[1] in ("analyze", "show"):
        store = dk.open(cwd / (target if words[1] == "analyze" else words[2]))
        assert _printed(out, "accuracy") == pytest.approx(float(store["accuracy"]), abs=5e-5)
        if "near_chance" in store:  # the marker is printed exactly for a flagged model
            assert ("(near chance" in out) == bool(store["near_chance"])
        scopes = store["ablation_auc"]["scope"].values if "ablation_auc" in store else []
        for scope in scopes:
            printed = _printed(out, f"ablation AUC [{scope}]")
            assert printed == pytest.approx(float(store["ablation_auc"].sel(scope=scope)), abs=5e-5)
        if "n_examples" in store.attrs:  # the demo's store does not say
            n = int(store.attrs["n_examples"])
            assert re.search(rf"^data\s+.*, {n} examples$", out, re.M), out
    elif words[1] == "report":
        assert target is not None
        page = cwd / target / "report.html"
        assert out.strip() == f"wrote {Path(target) / 'report.html'}" and page.is_file()
        fmt = _option(command, "--format") or "png"
        suffixes = {"png": [".png"], "svg": [".svg"], "both": [".png", ".svg"]}[fmt]
        figures = {p.suffix for p in page.parent.iterdir() if p.name != ".directionkit"}
        assert sorted(figures - {".html"}) == suffixes


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    return Session(tmp_path_factory.mktemp("readme"))


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{b.index}-{b.language}" for b in BLOCKS])
def test_readme_block_runs(block: Block, session: Session) -> None:
    if block.skipped is not None:
        pytest.skip(f"README block {block.index} not run by tests: {block.skipped}")
    session.run_until(block.index)


def test_readme_true_and_shuffled_runs_differ_only_in_their_labels(session: Session) -> None:
    """The README's comparison: same settings but --corruption; memorisation shows."""
    session.run_until(len(BLOCKS) - 1)
    trains = [c for c in session.outputs if c.startswith("directionkit train")]
    assert len(trains) == 2
    settings = [set(re.sub(r"--out \S+|--corruption \S+", "", c).split()) for c in trains]
    assert settings[0] == settings[1]
    shuffled = next(c for c in trains if "--corruption 1.0" in c)
    true = next(c for c in trains if c is not shuffled)
    for command, test_floor, test_ceiling in ((true, 0.8, 1.0), (shuffled, 0.0, 0.25)):
        last = xr.open_zarr(session.cwd / str(_option(command, "--out")) / "history.zarr")
        final = last.isel(epoch=-1)
        assert float(final["train_accuracy"]) >= 0.95
        assert test_floor <= float(final["test_accuracy"]) <= test_ceiling
    auc = {name: float(dk.open(session.cwd / f"{name}.zarr")["ablation_auc"].sel(scope="all"))
           for name in ("true", "shuffled")}  # fmt: skip
    assert auc["shuffled"] < auc["true"]  # the README says so


def test_readme_sweeps_show_the_papers_effect_and_select_a_model_that_learned(
    session: Session,
) -> None:
    """The README's sweeps train until every network learned its labels (99%), so that
    the AUC falls with corruption and ``select`` picks the true labels' network."""
    pytest.importorskip("torch")
    pytest.importorskip("distributed")
    index = next(b.index for b in BLOCKS if "store=\"sweep.zarr\"" in b.code)
    session.run_until(index)
    result = dk.open_sweep(session.cwd / "sweep.zarr")
    assert (result["train_accuracy"].values >= 0.99).all()
    assert not result["near_chance"].values.any()
    auc = result["ablation_auc"].sel(scope="all").values
    corruption = [float(str(m).split("=")[1]) for m in result["model"].values]
    assert list(np.argsort(corruption)) == list(np.argsort(-auc))  # AUC falls with corruption
    assert str(dk.select(result)["model"].values[0]) == "corruption=0.0"
    index = next(b.index for b in BLOCKS if "sweep.toml" in b.code and b.language == "bash")
    session.run_until(index)
    grid = dk.open_sweep(session.cwd / "grid.zarr")
    assert (grid["train_accuracy"].values >= 0.99).all()
    by = {float(c): float(a) for c, a in zip(
        grid["config_corruption"].values, grid["ablation_auc"].sel(scope="all").values,
        strict=True,
    )}  # fmt: skip
    assert by[1.0] < by[0.0]


def test_readme_skips_few_blocks_and_says_why() -> None:
    skipped = [(b.index, b.skipped) for b in BLOCKS if b.skipped is not None]
    print("README blocks not run by tests:", skipped)
    assert len(skipped) <= 3 and all(reason for _, reason in skipped)
    assert sum(b.language == "bash" and b.skipped is None for b in BLOCKS) >= 2


def test_readme_names_no_missing_file() -> None:
    text = README.read_text()
    for name in re.findall(r"`([A-Za-z_]+\.md)`", text):
        assert (ROOT / name).is_file(), f"README refers to {name}, which is not in the repository"


def test_the_extras_hold_what_the_readme_and_train_import() -> None:
    """Each extra installs what its features import: no module only the test extra brings."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}

    installed = (
        names(project["dependencies"]) | names(extras["torch"]) | names(extras["onnx"])
        | names(extras["transformers"])
    )  # fmt: skip
    distributions = packages_distributions()
    for block in BLOCKS:
        if block.language != "python" or block.skipped is not None:
            continue  # (the torchvision block says where its torchvision comes from)
        for module in re.findall(r"^(?:from|import) (\w+)", block.code, re.M):
            if module in sys.stdlib_module_names or module == "directionkit":
                continue
            provided = {d.lower() for d in distributions.get(module, [module])}
            assert provided & installed, f"README imports {module}; no extra it names has it"
    # `directionkit train` exports with torch.onnx (dynamo), which imports onnxscript
    assert "onnxscript" in names(extras["torch"])
    assert not names(extras["test"]) & {"onnxscript", "skl2onnx"}  # runtime needs, not tools


def test_the_definitions_table_names_every_choice_of_analyze() -> None:
    """Every non-default choice of an ``analyze`` option that selects a definition is in the
    README's Definitions section as ``name="choice"``, beside the stored names it gives."""
    import inspect
    import typing

    text = README.read_text()
    section = text[text.index("## Definitions") :]
    section = section[: section.index("\n## ", 1)]
    signature = inspect.signature(dk.analyze)
    hints = typing.get_type_hints(dk.analyze)
    checked = []
    for name in ("ablate_to", "noise_sd", "accuracy", "binning"):
        default = signature.parameters[name].default
        for choice in typing.get_args(hints[name]):
            if choice != default:
                assert f'{name}="{choice}"' in section, (name, choice)
                checked.append(choice)
    assert len(checked) >= 5
    for named in ('scopes="paper-conv"', "n_bins=", "noise_scales=", "noise_repeats=",
                  "weight_l1_folded", "unit_std", "sigmoid-probabilities"):  # fmt: skip
        assert named in section, named


def test_the_torchvision_audit_runs_with_torchvision_imported_as_the_tests_do(
    tmp_path: Path,
) -> None:
    """The README's torchvision block (not run in the README's order: PyPI's torchvision
    does not import beside the CPU torch) runs as written once torchvision is imported
    the way tests/zoo.py imports it, and prints what the README says it prints."""
    from tests import zoo

    (block,) = [b for b in BLOCKS if "torchvision.models" in b.code]
    assert block.skipped is not None and "torchvision" in block.skipped
    zoo.torchvision()
    previous = Path.cwd()
    os.chdir(tmp_path)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block.code, f"{README}:block{block.index}", "exec"), {})
    finally:
        os.chdir(previous)
    assert out.getvalue().split("\n")[0] == "3072 [1, 1, 3072] 2"
