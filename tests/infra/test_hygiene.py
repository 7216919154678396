"""Hygiene the workspace keeps (issue 11, item 10), so that a new crate or file cannot quietly
fall outside it: `make lint` only enforces the unwrap/expect lints on members that opt in, and
only the core's own attribute makes its public items need rustdoc.

Run: .tools/venv/bin/python -m pytest -q tests/infra/test_hygiene.py
"""

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()


def workspace_manifests():
    result = subprocess.run(
        [os.environ.get("CARGO", "cargo"), "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    members = json.loads(result.stdout)["packages"]
    assert len(members) > 1, "cargo metadata listed no workspace members"
    return [Path(p["manifest_path"]) for p in members]


def test_the_workspace_denies_unwrap_and_expect():
    lints = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["lints"]["clippy"]
    assert lints.get("unwrap_used") == "deny" and lints.get("expect_used") == "deny", lints
    clippy = tomllib.loads((ROOT / "clippy.toml").read_text())
    assert clippy.get("allow-unwrap-in-tests") is True and clippy.get("allow-expect-in-tests") is True


def test_every_member_opts_into_the_workspace_lints():
    missing = [
        str(manifest.relative_to(ROOT))
        for manifest in workspace_manifests()
        if tomllib.loads(manifest.read_text()).get("lints", {}).get("workspace") is not True
    ]
    assert not missing, f"add `[lints] workspace = true` to {missing}"


def test_the_core_enforces_rustdoc_on_public_items():
    lib = (ROOT / "shared" / "core" / "src" / "lib.rs").read_text()
    assert re.search(r"^#!\[deny\(missing_docs\)\]", lib, re.M)


def test_the_core_uses_one_module_style():
    """`foo.rs` beside `foo/`, never `foo/mod.rs`."""
    mod_files = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "shared" / "core" / "src").rglob("mod.rs"))
    assert not mod_files, mod_files


def test_no_prose_points_at_documents_outside_the_repository():
    """Comments and docs say what they mean or point at the README, not at a handbook the reader
    of the repository does not have."""
    result = subprocess.run(
        ["git", "grep", "-n", "-I", "-E", r"DESIGN (section|contract)|\b(DESIGN|STYLE|TOOLING)\.md\b|handbook",
         "--", ".", f":!{THIS_FILE}"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode in (0, 1), result.stderr
    assert result.stdout == "", result.stdout
