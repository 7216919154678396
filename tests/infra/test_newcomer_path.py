"""The newcomer's path (issue 17, items 11, 12 and 14) and the deployment scripts' order.

The deployment scripts run here against stand-ins for terraform, az, gcloud, make and docker
that record each call: the test reads back the sequence the real tools would have run.

Run: .tools/venv/bin/python -m pytest -q tests/infra/test_newcomer_path.py
"""

import os
import re
import stat
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "tests" / "servers" / "with-servers.sh"


def executable(path: Path, body: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# ---- item 11: packaging needs the tools, and says what else it needs --------------------------


def make_dry_run(target):
    result = subprocess.run(["make", "-n", "-p", target], cwd=ROOT, capture_output=True, text=True)
    return result.stdout


def test_packaging_targets_install_the_tools_they_run_first():
    for target in ("package-aws", "package-azure"):
        rules = make_dry_run(target)
        line = re.search(rf"^{target}:(.*)$", rules, re.M)
        assert line and ".tools/venv/.done" in line.group(1), f"{target} must depend on the tools venv"
    assert "command -v zip" in (ROOT / "mk" / "azure.mk").read_text()
    assert "command -v curl" in WRAPPER.read_text()
    quick_start = (ROOT / "README.md").read_text().split("## Rules")[0]
    for tool in ("`zip`", "`curl`"):
        assert tool in quick_start, f"README Quick start must list {tool}"


# ---- item 12: gcloud without its Firestore emulator (or without Java) --------------------------


def run_wrapper_with_fake_gcloud(tmp_path, component: bool, java_runs: bool):
    sdk = tmp_path / "google-cloud-sdk"
    # A gcloud whose emulator would never become ready: the wrapper must not wait for it.
    executable(sdk / "bin" / "gcloud", "sleep 300\n")
    if component:
        (sdk / "platform" / "cloud-firestore-emulator").mkdir(parents=True)
    executable(tmp_path / "bin" / "java", "exit 0\n" if java_runs else "exit 1\n")
    env = dict(os.environ, PATH=f"{sdk / 'bin'}:{tmp_path / 'bin'}:{os.environ['PATH']}")
    env.pop("FIRESTORE_EMULATOR_HOST", None)
    started = time.monotonic()
    result = subprocess.run(
        [str(WRAPPER), "sh", "-c", 'printf "%s|%s" "$SNAPWATCH_FIRESTORE_UNAVAILABLE" "${FIRESTORE_EMULATOR_HOST:-}"'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=75,
    )
    return result, time.monotonic() - started


def test_gcloud_without_the_emulator_component_skips_at_once(tmp_path):
    result, seconds = run_wrapper_with_fake_gcloud(tmp_path, component=False, java_runs=True)
    assert result.returncode == 0, result.stderr
    reason, host = result.stdout.split("|")
    assert "not its Firestore emulator component" in reason and host == ""
    assert "SKIPPED: Firestore emulator" in result.stderr
    assert seconds < 60, f"took {seconds:.0f} s"


def test_gcloud_with_the_component_but_no_java_skips_at_once(tmp_path):
    result, _ = run_wrapper_with_fake_gcloud(tmp_path, component=True, java_runs=False)
    assert result.returncode == 0, result.stderr
    reason, host = result.stdout.split("|")
    assert "needs Java" in reason and host == ""
    assert "SKIPPED: Firestore emulator" in result.stderr


# ---- item 14 and the deployment order -----------------------------------------------------------


def stub_tools(tmp_path, names, outputs=None):
    """Stand-ins that append `name args…` to calls.log (and print a canned answer, if any)."""
    log = tmp_path / "calls.log"
    for name in names:
        answer = (outputs or {}).get(name, "")
        executable(tmp_path / "bin" / name, f'echo "{name} $*" >> "{log}"\n{answer}')
    return log


def test_make_package_gcp_builds_the_image_from_the_dockerfile(tmp_path):
    log = stub_tools(tmp_path, ["docker"])
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    result = subprocess.run(["make", "package-gcp", "GCP_IMAGE=example/snapwatch-gcp:t"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert log.read_text().split("\n")[0] == "docker build -f functions/gcp/Dockerfile -t example/snapwatch-gcp:t ."
    deploy_table = (ROOT / "README.md").read_text()
    assert "`make package-gcp` (the image, `functions/gcp/Dockerfile`" in deploy_table


def test_deploy_azure_applies_packages_deploys_and_applies_again_in_that_order(tmp_path):
    outputs = {
        "terraform": 'case "$*" in *"output -raw resource_group_name"*) echo rg;; *"output -raw function_app_name"*) echo app;; esac\n',
    }
    log = stub_tools(tmp_path, ["terraform", "az", "make", "zip"], outputs)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", TF_APPLY_FLAGS="-auto-approve")
    result = subprocess.run([str(ROOT / "infra/azure/deploy.sh")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = [re.sub(r"-chdir=\S+ ", "", c).replace(str(ROOT), "ROOT") for c in log.read_text().splitlines()]
    assert calls == [
        "terraform init -input=false",
        "terraform apply -input=false -auto-approve -target=module.snapwatch.azurerm_linux_function_app.this",
        "make -C ROOT package-azure",
        "terraform output -raw resource_group_name",
        "terraform output -raw function_app_name",
        "az functionapp deployment source config-zip -g rg -n app --src ROOT/target/azure/snapwatch-azure.zip",
        "az functionapp function show -g rg -n app --function-name ResourceEvents",
        "terraform apply -input=false -auto-approve",
    ], calls
    assert "deploy-azure:\n\tinfra/azure/deploy.sh" in (ROOT / "mk" / "azure.mk").read_text()


def test_deploy_gcp_packages_applies_adds_the_secret_and_applies_again(tmp_path):
    outputs = {
        "gcloud": 'case "$*" in *"images describe"*) echo sha256:abc;; esac\n',
        "terraform": 'case "$*" in *"output -raw slack_secret_id"*) echo snapwatch-slack-webhook;; esac\n',
        "git": "echo 0123456789ab\n",
    }
    log = stub_tools(tmp_path, ["terraform", "gcloud", "git"], outputs)
    path = f"{tmp_path / 'bin'}:" + ":".join(
        p for p in os.environ["PATH"].split(":") if not (Path(p) / "docker").exists())
    env = dict(os.environ, PATH=path, GCP_PROJECT="acme-prod", SLACK_WEBHOOK_URL="https://hooks.example/x")
    result = subprocess.run([str(ROOT / "infra/gcp/deploy.sh")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = [re.sub(r"-chdir=\S+ ", "", c).replace(str(ROOT), "ROOT") for c in log.read_text().splitlines()]
    image = "europe-west1-docker.pkg.dev/acme-prod/snapwatch/snapwatch-gcp"
    steps = [c.split(" ")[0] + " " + c.split(" ")[1] for c in calls]
    build = next(i for i, c in enumerate(calls) if c.startswith("gcloud builds submit"))
    applies = [i for i, c in enumerate(calls) if c.startswith("terraform apply")]
    secret = next(i for i, c in enumerate(calls) if c.startswith("gcloud secrets versions add"))
    assert build < applies[0] < secret < applies[1] and len(applies) == 2, steps
    assert f"-var image={image}@sha256:abc" in calls[applies[0]]
    assert "slack_secret_version" not in calls[applies[0]], "the first apply refers to no secret version"
    assert calls[applies[1]].endswith("-var slack_secret_version=latest")
    # The second apply deploys the same image: no change to the package the first one deployed.
    assert f"-var image={image}@sha256:abc" in calls[applies[1]]
    assert f"--substitutions _IMAGE={image}:0123456789ab" in calls[build]
    assert "deploy-gcp:\n\tinfra/gcp/deploy.sh" in (ROOT / "mk" / "gcp.mk").read_text()
