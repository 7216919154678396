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
