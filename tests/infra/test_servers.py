"""The test wrapper stops every server it started, children included.

The Firestore emulator is gcloud → a shell script → java; killing gcloud alone left the JVM running
after every `make test` (eighteen of them on one machine in a day).

Run: .tools/venv/bin/python -m pytest -q tests/infra/test_servers.py
"""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def processes_mentioning(port):
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if re.search(rf"(?<![0-9]){port}(?![0-9])", cmdline):
            found.append(f"{entry.name}: {cmdline[:160]}")
    return found


def test_no_server_outlives_the_wrapper():
    result = subprocess.run(
        [str(ROOT / "tests/servers/with-servers.sh"), "bash", "-c",
         'echo "ports ${SNAPWATCH_MOTO_ENDPOINT##*:} ${SNAPWATCH_DYNALITE_ENDPOINT##*:} '
         '${FIRESTORE_EMULATOR_HOST##*:}"'],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={key: value for key, value in os.environ.items() if key != "FIRESTORE_EMULATOR_HOST"},
    )
    assert result.returncode == 0, result.stderr
    ports = [port for port in result.stdout.split("ports", 1)[1].split() if port.isdigit()]
    assert len(ports) >= 2, result.stdout
    left = [line for port in ports for line in processes_mentioning(port)]
    assert not left, f"still running after the wrapper exited: {left}"
