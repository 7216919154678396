"""The declared minimum Rust versions are true for the locked dependency graph, and the Cloud Run
image is built with exactly the compiler snapwatch-gcp declares (issue 17, GCP 1).

`cargo metadata` gives every locked package's `rust_version`; each workspace member's declared
`rust-version` must be at least the newest one in its normal and build dependency graph (all
features, since the workspace is built and tested with them).

Run: .tools/venv/bin/python -m pytest -q tests/infra/test_msrv.py
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "functions" / "gcp" / "Dockerfile"


def version(text):
    return tuple(int(part) for part in text.split(".")) if text else (0,)


@pytest.fixture(scope="module")
def metadata():
    result = subprocess.run(
        [os.environ.get("CARGO", "cargo"), "metadata", "--format-version", "1", "--locked", "--all-features"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def newest_requirement(metadata, member):
    """(rust_version, name@version) of the most demanding package `member` builds on."""
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    seen, stack = set(), [member]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for dep in nodes[current]["deps"]:
            if any(kind["kind"] in (None, "build") for kind in dep["dep_kinds"]):
                stack.append(dep["pkg"])
    seen.discard(member)
    return max((version(packages[i].get("rust_version")), f"{packages[i]['name']}@{packages[i]['version']}") for i in seen)


def declared(metadata, name):
    return next(p for p in metadata["packages"] if p["name"] == name and p["id"] in metadata["workspace_members"])["rust_version"]


def test_every_member_declares_at_least_what_its_locked_graph_needs(metadata):
    too_low = []
    for member in metadata["workspace_members"]:
        package = next(p for p in metadata["packages"] if p["id"] == member)
        needed, by = newest_requirement(metadata, member)
        if version(package.get("rust_version")) < needed:
            too_low.append(f"{package['name']} declares rust-version {package.get('rust_version')}, "
                           f"but {by} needs {'.'.join(map(str, needed))}")
    assert not too_low, "\n".join(too_low)


def test_the_image_compiles_with_the_gcp_crate_s_declared_rust_version(metadata):
    build_stage = re.search(r"^FROM rust:([0-9.]+)-[a-z-]+ AS build$", DOCKERFILE.read_text(), re.M)
    assert build_stage, "the build stage must use an official rust:<version>-<variant> image"
    assert version(build_stage.group(1)) == version(declared(metadata, "snapwatch-gcp")), (
        f"Dockerfile builds with rust {build_stage.group(1)}, snapwatch-gcp declares "
        f"{declared(metadata, 'snapwatch-gcp')}")


def test_the_dockerfile_is_structurally_buildable():
    """No Docker engine here: check what a build would need instead."""
    text = DOCKERFILE.read_text()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY {path}: not in the repository"
    assert "cargo build --release --locked -p snapwatch-gcp" in text
    assert re.search(r"^USER nonroot", text, re.M)
    assert re.search(r'^ENTRYPOINT \["/snapwatch-gcp"\]', text, re.M)


def test_the_image_copies_every_workspace_member(metadata):
    """Cargo loads every member's manifest before building one: a member left out of the image
    (the CLI when it moved to cli/) fails the build with "failed to load manifest"."""
    copied = [path.rstrip("/") for source in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M)
              for path in source.split()]
    for member in metadata["workspace_members"]:
        package = next(p for p in metadata["packages"] if p["id"] == member)
        relative = Path(package["manifest_path"]).parent.relative_to(ROOT).as_posix()
        assert any(relative == c or relative.startswith(c + "/") for c in copied), \
            f"{package['name']} ({relative}) is not copied into the image"


def test_the_build_context_leaves_out_target_and_tools():
    ignore = (ROOT / ".dockerignore").read_text().split("\n")
    rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "everything is excluded first"
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    assert allowed == {"Cargo.toml", "Cargo.lock", "shared", "functions", "cli"}
    # Everything the Dockerfile copies is let through.
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M):
        for path in source.split():
            assert path.rstrip("/") in allowed, path


def test_cloud_build_uploads_no_build_output_either():
    """make deploy-gcp without Docker uploads the repository to Cloud Build: .gcloudignore."""
    gcloudignore = (ROOT / ".gcloudignore").read_text()
    assert "#!include:.gitignore" in gcloudignore and ".git\n" in gcloudignore
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert "/target" in gitignore and "/.tools" in gitignore
    cloudbuild = (ROOT / "functions/gcp/cloudbuild.yaml").read_text()
    assert '"-f", "functions/gcp/Dockerfile"' in cloudbuild
