"""Statements of the READMEs that a command can check (issue 17, item 15).

Run: .tools/venv/bin/python -m pytest -q tests/infra/test_readme_truths.py
"""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def snapwatch(*args):
    """The binary `make test`'s unit step built, else cargo run (as conftest.snapwatch_consumed)."""
    binary = ROOT / "target" / "debug" / "snapwatch"
    command = [str(binary), *args] if binary.is_file() else [
        os.environ.get("CARGO", "cargo"), "run", "-q", "-p", "snapwatch-cli", "--", *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_finding_excerpt_is_verbatim_demo_output():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Rules")[0]
    excerpt = re.search(r"```\n(\[CRITICAL\].*?)```", quick_start, re.S).group(1).rstrip("\n").split("\n")
    output = snapwatch("scan", "tests/demo").split("\n")
    start = output.index(excerpt[0])
    assert output[start:start + len(excerpt)] == excerpt, "the excerpt drops or changes lines"
    findings = sum(1 for line in output if re.match(r"^\[(CRITICAL|HIGH|MEDIUM|LOW|INFO)\] ", line))
    claimed = int(re.search(r"which prints (\d+) findings", quick_start).group(1))
    assert findings == claimed


def test_the_package_aws_command_the_readme_quotes_is_the_one_make_runs():
    dry_run = subprocess.run(["make", "-n", "package-aws"], cwd=ROOT, capture_output=True, text=True).stdout
    ran = re.search(r"cargo-lambda lambda (build [^\n]*)", dry_run).group(1).strip()
    quoted = re.search(r"`make package-aws` runs `cargo lambda ([^`]*)`",
                       (ROOT / "functions/aws/README.md").read_text()).group(1)
    assert quoted == ran, (quoted, ran)


def path_column(line):
    """The paths a layout line names: `a`, `a|b|c` or `a, b, c`, before its description."""
    return re.match(r"\s*([^\s,]+(?:,\s*[^\s,]+)*)", line).group(1)


def layout_block():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Repository layout")[1].split("\n## ")[0]
    return re.search(r"```\n(.*?)```", section, re.S).group(1)


def test_the_layout_names_only_paths_that_exist():
    """Issue 11: the layout section matches the tree. Every path it names (the first column,
    `a|b|c` alternatives, comma lists) exists; nested lines are relative to the crate above."""
    crate = None
    for line in layout_block().split("\n"):
        if not line.strip() or line.startswith(" " * 10):
            continue  # a continuation of the description above
        first = path_column(line)
        nested = line.startswith("  ")
        names = re.split(r",\s*", first)
        # `src/a.rs, b.rs`: the names after the first sit in the first one's folder.
        names = names[:1] + [str(Path(names[0]).parent / name) for name in names[1:]]
        for name in names:
            if nested:
                paths = [ROOT / crate / name]
            elif "|" in name:
                head, _, alternatives = name.rpartition("/")
                paths = [ROOT / head / alt for alt in alternatives.split("|")]
            else:
                paths = [ROOT / name]
            for path in paths:
                if "*" in path.name:
                    assert list(path.parent.glob(path.name)), f"layout names {path}: no match"
                else:
                    assert path.exists(), f"layout names {path.relative_to(ROOT)}, which does not exist"
        if not nested:
            crate = first


def test_the_layout_names_every_workspace_member_and_top_level_folder():
    block = layout_block()
    named = {path_column(line).rstrip("/") for line in block.split("\n") if line and not line.startswith(" ")}
    named |= {part.strip().rstrip("/") for entry in list(named) for part in entry.split(",")}
    members = re.search(r"members\s*=\s*\[(.*?)\]", (ROOT / "Cargo.toml").read_text(), re.S).group(1)
    for member in re.findall(r'"([^"]+)"', members):
        assert member in named, f"workspace member {member} is missing from the README layout"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    top = {path.split("/")[0] for path in tracked if "/" in path and not path.startswith(".")}
    for folder in sorted(top):
        assert any(entry == folder or entry.startswith(folder + "/") or entry.startswith(folder + "|")
                   for entry in named), f"top-level folder {folder}/ is missing from the README layout"
