"""Where settings come from: BUMPFIT_* variables, a file only where BUMPFIT_ENV_FILE names it; a `.env`
left in the working directory (the compose quick start's, with API keys) changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.http.auth import new_key
from tests.conftest import ROOT

_, ENTRY = new_key("read")  # an API key's stored form, as the quick start appends it to .env


def configured_keys(cwd: Path, **env: str) -> tuple[int, str, str]:
    """Run `bumpfit keys new --dotenv` in `cwd`; return its status, stdout and stderr."""
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "new", "--dotenv"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return r.returncode, r.stdout, r.stderr


def test_a_dotenv_in_the_working_directory_is_not_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"BUMPFIT_API_KEYS={ENTRY}\nBUMPFIT_DATABASE_URL=mysql://nope\n")
    status, out, err = configured_keys(tmp_path)
    assert status == 0, err
    (keys,) = [line for line in out.splitlines() if line.startswith("BUMPFIT_API_KEYS=")]
    assert ENTRY not in keys and "," not in keys  # only the new key: the file's key was not configured


def test_bumpfit_env_file_names_the_file_to_read(tmp_path: Path) -> None:
    (tmp_path / "bumpfit.env").write_text(f"BUMPFIT_API_KEYS={ENTRY}\n")
    status, out, err = configured_keys(tmp_path, BUMPFIT_ENV_FILE=str(tmp_path / "bumpfit.env"))
    assert status == 0, err
    (keys,) = [line for line in out.splitlines() if line.startswith("BUMPFIT_API_KEYS=")]
    assert keys.startswith(f"BUMPFIT_API_KEYS={ENTRY},")  # the file's key, then the new one


def test_a_missing_env_file_is_a_one_line_error(tmp_path: Path) -> None:
    status, out, err = configured_keys(tmp_path, BUMPFIT_ENV_FILE=str(tmp_path / "nope.env"))
    assert status == 1 and out == ""
    assert err.strip() == f"bumpfit: BUMPFIT_ENV_FILE: {str(tmp_path / 'nope.env')!r} is not a file"
