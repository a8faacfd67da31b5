"""The command line: the demo writes a store that `show` and plain xarray read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

import directionkit as dk
from directionkit.cli import main


def test_demo_writes_a_store_and_show_reads_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo.zarr"
    assert main(["demo", "--out", str(out), "--hidden", "12"]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "saved to" in printed
    result = dk.open(out)
    assert result["selectivity"].sizes["unit"] == 12
    sel = result["selectivity"].values
    assert np.all((sel >= 0) & (sel <= 1))
    assert float(result["accuracy"]) > 0.9
    assert set(xr.open_zarr(out).data_vars) == set(result.dataset.data_vars)

    assert main(["show", str(out)]) == 0
    assert "selectivity" in capsys.readouterr().out


def test_demo_refuses_to_overwrite_without_the_flag(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo.zarr"
    assert main(["demo", "--out", str(out), "--hidden", "4"]) == 0
    assert main(["demo", "--out", str(out), "--hidden", "4"]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["demo", "--out", str(out), "--hidden", "4", "--overwrite"]) == 0


def test_bad_values_give_a_clear_error_and_exit_code(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--out", str(tmp_path / "x.zarr"), "--hidden", "0"]) == 2
    assert "'hidden' parameter of digits_demo" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "directionkit.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("directionkit ")
