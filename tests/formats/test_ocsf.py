"""`snapwatch scan --format ocsf` validated with py-ocsf-models, a published OCSF model package.

py-ocsf-models 0.10.0 (pinned in the Makefile's `tools` venv) models OCSF 1.5.0, the version the
core writes into `metadata.version`. Its pydantic models ignore attributes they do not declare, so
besides validating each line, the test checks that the model kept every attribute snapwatch
wrote, except the few the package has not modelled yet (listed in `NOT_MODELLED`).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import py_ocsf_models
from py_ocsf_models.events.findings.detection_finding import DetectionFinding

REPO = Path(__file__).resolve().parents[2]
OCSF_VERSION = "1.5.0"

# Evidence attributes of OCSF 1.5.0 that py-ocsf-models 0.10.0 leaves as TODO in its
# EvidenceArtifacts model, so it cannot check them; the test checks their shape itself.
NOT_MODELLED = {"evidences[].actor", "evidences[].src_endpoint"}


def snapwatch(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs the CLI `make test`'s unit step built; falls back to cargo when run alone."""
    binary = REPO / "target" / "debug" / "snapwatch"
    if binary.is_file():
        command = [str(binary), *args]
    else:
        command = [os.environ.get("CARGO", "cargo"), "run", "-q", "-p", "snapwatch-cli", "--", *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, timeout=1200)
    if check:
        assert result.returncode == 0, f"snapwatch {' '.join(args)} failed:\n{result.stderr.decode()}"
    return result


def dropped_paths(sent, kept, path: str = "") -> set[str]:
    """Attributes present in `sent` that the validated model no longer has."""
    if isinstance(sent, dict):
        kept = kept if isinstance(kept, dict) else {}
        out = set()
        for key, value in sent.items():
            child = f"{path}.{key}" if path else key
            if key not in kept:
                out.add(child)
            else:
                out |= dropped_paths(value, kept[key], child)
        return out
    if isinstance(sent, list) and isinstance(kept, list):
        out = set()
        for a, b in zip(sent, kept):
            out |= dropped_paths(a, b, f"{path}[]")
        return out
    return set()


def validate(line: bytes) -> dict:
    # One object per line even for tools that split on Unicode line breaks.
    text = line.decode("utf-8")
    for hazard in ("\u2028", "\u2029", "\u0085", "\u202e"):
        assert hazard not in text, f"raw {hazard!r} in {text!r}"
    event = json.loads(text)
    model = DetectionFinding.model_validate(copy.deepcopy(event))
    kept = model.model_dump(mode="json", exclude_none=True)
    assert dropped_paths(event, kept) <= NOT_MODELLED, dropped_paths(event, kept) - NOT_MODELLED
    assert model.metadata.version == OCSF_VERSION
    assert model.class_uid == 2004 and model.category_uid == 2
    assert int(model.type_uid) == 2004 * 100 + int(model.activity_id)
    for evidence in event["evidences"]:
        assert evidence["api"]["operation"]
        if "actor" in evidence:
            assert set(evidence["actor"]) == {"user"} and evidence["actor"]["user"]["uid"]
        if "src_endpoint" in evidence:
            assert set(evidence["src_endpoint"]) in ({"ip"}, {"name"})
    return event


def scan_both(path: Path) -> tuple[list[dict], list[dict]]:
    ocsf = snapwatch("scan", "--format", "ocsf", str(path)).stdout.splitlines()
    findings = snapwatch("scan", "--format", "jsonl", str(path)).stdout.splitlines()
    return [validate(line) for line in ocsf], [json.loads(line) for line in findings]


def test_the_validator_models_the_version_snapwatch_writes():
    assert py_ocsf_models.OCSF_VERSION == OCSF_VERSION


def test_demo_findings_validate_as_ocsf_detection_findings():
    events, findings = scan_both(REPO / "tests" / "demo")
    assert len(events) == len(findings) > 0
    for event, finding in zip(events, findings):
        info = event["finding_info"]
        assert info["uid"] == finding["id"]
        assert info["title"] == finding["title"]
        assert info["types"] == [finding["rule"]]
        sub_techniques = {a.get("sub_technique", a["technique"])["uid"] for a in info["attacks"]}
        assert sub_techniques == set(finding["techniques"])
        assert all(a.get("tactic", {}).get("uid", "").startswith("TA") for a in info["attacks"])
        assert event["severity"].lower() == {"info": "informational"}.get(finding["severity"], finding["severity"])
        assert [r["uid"] for r in event["resources"]] == finding["resources"]
        assert all(r.get("type") and r["owner"]["account"]["uid"] for r in event["resources"])
        assert [e["api"]["request"]["uid"] for e in event["evidences"]] == [e["id"] for e in finding["events"]]
        assert event["cloud"]["provider"] == {"aws": "AWS", "azure": "Azure", "gcp": "GCP"}[finding["cloud"]]
        assert event["cloud"]["account"]["uid"] == finding["account"]
    assert {e["cloud"]["provider"] for e in events} == {"AWS", "Azure", "GCP"}


def hostile_trail(directory: Path) -> Path:
    """A public share by a principal whose name carries line breaks, bidi and JSON-breaking text."""
    hostile = 'mallory\u2028forged\u2029\u0085\u202e\x1b[31m"}\n{"class_uid":0'
    record = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "arn": f"arn:aws:iam::111122223333:user/{hostile}",
            "accountId": "111122223333",
            "userName": hostile,
        },
        "eventTime": "2026-03-06T08:56:30Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "ModifySnapshotAttribute",
        "awsRegion": "us-east-1",
        "sourceIPAddress": f"203.0.113.77{hostile}",
        "requestParameters": {
            "snapshotId": "snap-0f1e2d3c4b5a69788",
            "attributeType": "CREATE_VOLUME_PERMISSION",
            "createVolumePermission": {"add": {"items": [{"group": "all"}]}},
        },
        "responseElements": {"_return": True},
        "eventID": "1c3e5a7c-9e1a-4c3e-8a7c-9e1a3c5e7a9c",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }
    path = directory / "hostile.json"
    path.write_text(json.dumps({"Records": [record]}, ensure_ascii=False), encoding="utf-8")
    return path


def test_hostile_text_validates_and_survives_unchanged(tmp_path):
    events, findings = scan_both(hostile_trail(tmp_path))
    assert len(events) == len(findings) == 1
    evidence = events[0]["evidences"][0]
    assert evidence["actor"]["user"]["uid"] == findings[0]["events"][0]["actor"]
    assert "\u2028" in evidence["actor"]["user"]["uid"]
    # Not an address, so not in `ip`.
    assert evidence["src_endpoint"] == {"name": findings[0]["events"][0]["source_ip"]}
