"""Tests of the Terraform module infra/aws.

Run under the local servers (moto), as `make test-infra-aws` does:

    tests/servers/with-servers.sh .tools/venv/bin/python -m pytest tests/infra/test_aws.py -q

Terraform runs in a temporary copy of infra/ (so no .terraform/ or state lands in the
repository), with providers from the machine's filesystem mirror through infra/terraform.rc.
A missing terraform, mirror or moto endpoint fails the tests with the reason: never a silent pass.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import uuid

from conftest import snapwatch_consumed
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MODULE = INFRA / "aws"
CLI_CONFIG = INFRA / "terraform.rc"
FIXTURES = REPO / "tests" / "fixtures" / "aws"
# Public samples beside the repository (never copied into it); optional.
CORPUS = REPO.parent / "shared" / "corpus" / "aws"

MOTO_VARIABLE = "SNAPWATCH_MOTO_ENDPOINT"
REGION = "us-east-1"
MOTO_ACCOUNT = "123456789012"
SLACK_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{MOTO_ACCOUNT}:secret:snapwatch/slack-webhook-AbCdEf"

DETAIL_TYPE_API_CALL = "AWS API Call via CloudTrail"
DETAIL_TYPE_SERVICE_EVENT = "AWS Service Event via CloudTrail"

# Every service the module creates something in (or reads from): the provider must send all
# of them to moto, never to AWS.
MOTO_SERVICES = ["dynamodb", "events", "iam", "kms", "lambda", "logs", "s3", "scheduler", "secretsmanager", "sns", "sqs", "ssm", "sts"]

# The snapshot baseline's read-only inventory (issue 6): exactly these, nothing writable.
BASELINE_LISTING_ACTIONS = {"ec2:DescribeSnapshots", "ec2:DescribeImages", "rds:DescribeDBSnapshots", "rds:DescribeDBClusterSnapshots"}
BASELINE_ATTRIBUTE_ACTIONS = {
    "ec2:DescribeSnapshotAttribute",
    "ec2:DescribeImageAttribute",
    "rds:DescribeDBSnapshotAttributes",
    "rds:DescribeDBClusterSnapshotAttributes",
}
BASELINE_INVENTORY_ACTIONS = BASELINE_LISTING_ACTIONS | BASELINE_ATTRIBUTE_ACTIONS
BASELINE_GATE = "${local.baseline_enabled ? 1 : 0}"
# The Security Hub sink (issue 15): opt-in, one action, on the account's default product only.
SECURITY_HUB_ACTION = "securityhub:BatchImportFindings"
SECURITY_HUB_PRODUCT_ARN = f"arn:aws:securityhub:{REGION}:{MOTO_ACCOUNT}:product/{MOTO_ACCOUNT}/default"
# The opt-in response (issue 13): re-reads while a rule is dry-run or enforce, remove/revoke only
# while enforced, nothing while every mode is off.
RESPONSE_SOURCES = "${concat([data.aws_iam_policy_document.state_access.json], data.aws_iam_policy_document.response[*].json)}"
RESPONSE_SHARE_READ = {
    "ec2:DescribeSnapshotAttribute",
    "ec2:DescribeImageAttribute",
    "rds:DescribeDBSnapshotAttributes",
    "rds:DescribeDBClusterSnapshotAttributes",
    "rds:ListTagsForResource",
}
RESPONSE_SHARE_REMOVE = {
    "ec2:ModifySnapshotAttribute",
    "ec2:ModifyImageAttribute",
    "rds:ModifyDBSnapshotAttribute",
    "rds:ModifyDBClusterSnapshotAttribute",
}


# ---- tools ----------------------------------------------------------------------------------


def terraform_binary() -> str:
    found = shutil.which("terraform")
    if found is None:
        pytest.fail("terraform is not installed (Terraform 1.11 expected on PATH): the infra/aws tests cannot run")
    return found


def mirror_path() -> Path:
    text = CLI_CONFIG.read_text()
    match = re.search(r'path\s*=\s*"([^"]+)"', text)
    if match is None:
        pytest.fail(f"{CLI_CONFIG} names no filesystem_mirror path")
    mirror = Path(match.group(1))
    if not (mirror / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.fail(f"the AWS provider mirror {mirror}/registry.terraform.io/hashicorp/aws is missing: terraform init cannot run offline")
    return mirror


def moto_endpoint() -> str:
    endpoint = os.environ.get(MOTO_VARIABLE)
    if not endpoint:
        pytest.fail(f"{MOTO_VARIABLE} is not set: run under tests/servers/with-servers.sh (make test does)")
    if not re.match(r"^http://127\.0\.0\.1:\d+/?$", endpoint):
        pytest.fail(f"{MOTO_VARIABLE}={endpoint!r}: only a loopback moto endpoint is allowed")
    return endpoint.rstrip("/")


def terraform_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TF_CLI_CONFIG_FILE=str(CLI_CONFIG),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
        # Fake credentials: the provider must never find real ones on this machine.
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.pop("AWS_PROFILE", None)
    return env


def terraform(cwd: Path, *args: str, timeout: int = 300) -> str:
    result = subprocess.run(
        [terraform_binary(), *args, "-no-color"],
        cwd=cwd,
        env=terraform_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(f"terraform {' '.join(args)} in {cwd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def infra_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of infra/ (examples refer to the module by relative path)."""
    mirror_path()
    root = tmp_path_factory.mktemp("infra") / "infra"
    shutil.copytree(INFRA, root, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))
    return root


def example_dirs() -> list[Path]:
    return sorted({path.parent for path in (MODULE / "examples").rglob("*.tf")})


# ---- what the core consumes -----------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def core_consumed_events() -> frozenset[tuple[str, str]]:
    """(eventSource, eventName) pairs the core consumes, as `snapwatch consumed aws` prints them.

    `make test` builds the workspace (and so the CLI) before the infra tests.
    """
    listed = snapwatch_consumed("aws")
    pairs = frozenset((entry["eventSource"], entry["eventName"]) for entry in listed)
    assert len(pairs) == len(listed) and pairs, f"unexpected `snapwatch consumed aws` output: {listed}"
    return pairs


def pattern_pairs(pattern: dict) -> set[tuple[str, str]]:
    """(eventSource, eventName) pairs an event pattern of this module admits."""
    pairs: set[tuple[str, str]] = set()
    for branch in pattern["detail"]["$or"]:
        for event_source in branch["eventSource"]:
            pairs.update((event_source, name) for name in branch["eventName"])
    return pairs


def event_bridge_source(event_source: str) -> str:
    return "aws." + event_source.split(".", 1)[0]


def core_treats_as_relevant(record: dict, consumed: set[tuple[str, str]]) -> bool:
    """The core's own test (parse/aws.rs `parse_record`): a consumed name, its service, no errorCode."""
    name = record.get("eventName")
    event_source = record.get("eventSource")
    error_code = record.get("errorCode")
    if not isinstance(name, str) or not isinstance(event_source, str):
        return False
    if isinstance(error_code, str) and error_code.strip():
        return False
    return (event_source.strip(), name.strip()) in consumed


def envelope(record: dict) -> dict:
    """The EventBridge event CloudTrail delivers for a bare record."""
    service_event = record.get("eventType") == "AwsServiceEvent"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE_SERVICE_EVENT if service_event else DETAIL_TYPE_API_CALL,
        "source": event_bridge_source(record["eventSource"]),
        "account": record.get("recipientAccountId", MOTO_ACCOUNT),
        "time": record.get("eventTime", "2025-01-01T00:00:00Z"),
        "region": record.get("awsRegion", REGION),
        "resources": [],
        "detail": record,
    }


def as_event(document: dict) -> dict | None:
    """An EventBridge event for a fixture/corpus document, or None if it is no CloudTrail record."""
    if "detail-type" in document:
        detail = document.get("detail")
        return document if isinstance(detail, dict) and "eventName" in detail else None
    if "eventName" in document and "eventSource" in document:
        return envelope(document)
    return None


def load_documents(path: Path) -> list[dict]:
    """The JSON objects of a file: one object, an array, {"Records": [...]}, or JSON lines."""
    text = path.read_text()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
    items = parsed if isinstance(parsed, list) else [parsed]
    documents: list[dict] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("Records"), list):
            documents.extend(record for record in item["Records"] if isinstance(record, dict))
        elif isinstance(item, dict):
            documents.append(item)
    return documents


# ---- static checks (no server) --------------------------------------------------------------


def test_terraform_fmt() -> None:
    terraform(REPO, "fmt", "-check", "-recursive", "-diff", str(MODULE))


@pytest.mark.parametrize("example", example_dirs(), ids=lambda path: str(path.relative_to(MODULE / "examples")))
def test_example_inits_and_validates(infra_copy: Path, example: Path) -> None:
    workdir = infra_copy / example.relative_to(INFRA)
    terraform(workdir, "init", "-backend=false", "-input=false")
    output = terraform(workdir, "validate")
    assert "Success! The configuration is valid." in output


def test_every_region_forwards_in_the_member_example() -> None:
    """CopySnapshot is logged in the destination region: a region without a forwarder is blind."""
    default_regions = {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
        "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1",
        "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2",
    }  # fmt: skip
    member = (MODULE / "examples" / "organization" / "member" / "main.tf").read_text()
    providers = dict(re.findall(r'alias\s*=\s*"([a-z0-9_]+)"\s*\n\s*region\s*=\s*"([a-z0-9-]+)"', member))
    assert set(providers.values()) == default_regions
    forwarded = set(re.findall(r"providers\s*=\s*\{\s*aws\s*=\s*aws\.([a-z0-9_]+)\s*\}", member))
    assert forwarded == set(providers), "every regional provider needs its forwarder module"


def test_pattern_module_lists_exactly_what_the_core_consumes(infra_copy: Path) -> None:
    workdir = infra_copy / "aws" / "modules" / "event-pattern"
    terraform(workdir, "init", "-backend=false", "-input=false")
    result = subprocess.run(
        [terraform_binary(), "console", "-no-color"],
        cwd=workdir,
        env=terraform_env(),
        input="jsonencode(local.pattern)\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    pattern = json.loads(json.loads(result.stdout))
    core = core_consumed_events()
    assert pattern_pairs(pattern) == core
    assert sorted(pattern["source"]) == sorted({event_bridge_source(source) for source, _ in core})
    assert sorted(pattern["detail-type"]) == [DETAIL_TYPE_API_CALL, DETAIL_TYPE_SERVICE_EVENT]
    assert pattern["detail"]["errorCode"] == [{"exists": False}]


def test_checkov_passes_or_explains_every_skip() -> None:
    checkov = REPO / ".tools" / "checkov" / "bin" / "checkov"
    if not checkov.exists():
        pytest.fail(f"{checkov} is missing: run `make tools`")
    result = subprocess.run(
        [str(checkov), "-d", str(MODULE), "--framework", "terraform", "--skip-download", "--compact", "--quiet", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout.strip(), f"checkov printed nothing (exit {result.returncode}):\n{result.stderr}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    for report in reports:
        for check in report.get("results", {}).get("skipped_checks", []):
            reason = (check.get("check_result") or {}).get("suppress_comment") or ""
            assert len(reason) > 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"
    assert result.returncode == 0, result.stderr


# ---- structural checks of the snapshot baseline (python-hcl2, no server) --------------------


def hcl_string(value):
    """python-hcl2 keeps the quotes of string literals: `"x"` -> `x`; expressions stay `${...}`."""
    if isinstance(value, str) and len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    return value


@functools.lru_cache(maxsize=1)
def module_blocks() -> dict[str, dict[tuple[str, str], dict]]:
    """Every resource and data block of infra/aws (root module files only), by kind and (type, name)."""
    import hcl2

    blocks: dict[str, dict[tuple[str, str], dict]] = {"resource": {}, "data": {}, "locals": {}, "variable": {}}
    for path in sorted(MODULE.glob("*.tf")):
        parsed = hcl2.loads(path.read_text())
        for kind in ("resource", "data"):
            for entry in parsed.get(kind, []):
                for block_type, named in entry.items():
                    for name, body in named.items():
                        blocks[kind][(hcl_string(block_type), hcl_string(name))] = dict(body, __file__=path.name)
        for entry in parsed.get("locals", []):
            for name, value in entry.items():
                blocks["locals"][("local", name)] = value
        for entry in parsed.get("variable", []):
            for name, body in entry.items():
                blocks["variable"][("var", hcl_string(name))] = body
    return blocks


def statements_by_sid(document_body: dict) -> dict[str, dict]:
    return {hcl_string(statement["sid"]): statement for statement in document_body.get("statement", [])}


def test_baseline_is_off_by_default_and_every_block_of_it_is_gated() -> None:
    blocks = module_blocks()
    variable = blocks["variable"][("var", "baseline_enabled")]
    assert variable["default"] is False
    assert blocks["locals"][("local", "baseline_enabled")] == "${var.baseline_enabled}"
    gated = {(kind, *key) for kind in ("resource", "data") for key, body in blocks[kind].items() if body.get("count") == BASELINE_GATE}
    named = {(kind, *key) for kind in ("resource", "data") for key in blocks[kind] if "baseline" in key[1]}
    in_file = {(kind, *key) for kind in ("resource", "data") for key, body in blocks[kind].items() if body["__file__"] == "baseline.tf"}
    # Everything of the baseline (by name and by file) has count 0 when disabled, and nothing else does.
    assert gated == named == in_file, (gated, named, in_file)
    assert {key[1:] for key in gated} >= {
        ("aws_lambda_function", "baseline"),
        ("aws_scheduler_schedule", "baseline"),
        ("aws_iam_role", "baseline"),
        ("aws_iam_role", "baseline_scheduler"),
        ("aws_cloudwatch_log_group", "baseline"),
    }
    # The outputs read the gated resources through one(), null when disabled.
    outputs = (MODULE / "outputs.tf").read_text()
    for output in re.findall(r'output "(baseline_[a-z_]+)"', outputs):
        body = outputs.split(f'output "{output}"', 1)[1].split("\n}", 1)[0]
        assert re.search(r"value\s*=\s*one\(aws_[a-z_]+\.baseline[a-z_]*\[\*\]\.[a-z_]+\)", body), output


def test_baseline_role_lists_read_only_and_shares_the_detectors_state_access() -> None:
    blocks = module_blocks()
    listing = {hcl_string(action) for action in blocks["locals"][("local", "baseline_listing_actions")]}
    attributes = {hcl_string(action) for action in blocks["locals"][("local", "baseline_attribute_actions")]}
    assert listing == BASELINE_LISTING_ACTIONS
    assert attributes == BASELINE_ATTRIBUTE_ACTIONS
    assert all(action.split(":", 1)[1].startswith("Describe") for action in listing | attributes)
    document = blocks["data"][("aws_iam_policy_document", "baseline")]
    assert document["source_policy_documents"] == ["${data.aws_iam_policy_document.state_access.json}"]
    detector = blocks["data"][("aws_iam_policy_document", "detector")]
    # The detector adds only the response's document (present while some rule responds).
    assert detector["source_policy_documents"] == RESPONSE_SOURCES
    own = statements_by_sid(document)
    assert set(own) == {"SnapshotListing", "SnapshotAttributes", "Logs"}
    assert own["SnapshotListing"]["actions"] == "${local.baseline_listing_actions}"
    assert own["SnapshotAttributes"]["actions"] == "${local.baseline_attribute_actions}"
    assert own["SnapshotAttributes"]["resources"] == "${local.baseline_attribute_resources}"
    assert own["Logs"]["resources"] == ['"${aws_cloudwatch_log_group.baseline[0].arn}:*"']
    # The shared document grants nothing to EC2 or RDS: the inventory is the baseline's own.
    shared = statements_by_sid(blocks["data"][("aws_iam_policy_document", "state_access")])
    shared_actions = {hcl_string(action) for statement in shared.values() for action in statement["actions"]}
    assert not {action for action in shared_actions if action.startswith(("ec2:", "rds:"))}


def test_security_hub_is_opt_in_with_one_action_on_the_default_product() -> None:
    blocks = module_blocks()
    assert blocks["variable"][("var", "security_hub_enabled")]["default"] is False
    assert hcl_string(blocks["locals"][("local", "security_hub_product_arn")]) == (
        "arn:${local.partition}:securityhub:${local.region}:${local.account_id}:product/${local.account_id}/default"
    )
    # Both functions' environments come from one local: on when enabled, off otherwise.
    environment = blocks["locals"][("local", "function_environment")]
    assert 'SNAPWATCH_SECURITYHUB = var.security_hub_enabled ? "on" : "off"' in environment, environment
    # The grant lives in the document both roles are built from, gated by the variable: no
    # statement at all when disabled, and nowhere else does Security Hub appear.
    gated = []
    for key, body in blocks["data"].items():
        for dynamic in body.get("dynamic", []):
            named = {hcl_string(name): value for name, value in dynamic.items()}
            for statement in as_list(named.get("statement", [])):
                content = statement["content"][0] if isinstance(statement["content"], list) else statement["content"]
                actions = [hcl_string(action) for action in content.get("actions", [])]
                if any(action.startswith("securityhub:") for action in actions):
                    gated.append((key, statement["for_each"], hcl_string(content["sid"]), actions, content["resources"]))
        for statement in body.get("statement", []):
            assert not [a for a in statement.get("actions", []) if "securityhub" in a], key
    assert gated == [
        (
            ("aws_iam_policy_document", "state_access"),
            "${var.security_hub_enabled ? [1] : []}",
            "SecurityHubImport",
            [SECURITY_HUB_ACTION],
            ["${local.security_hub_product_arn}"],
        )
    ], gated
    for example in example_dirs():
        text = (example / "main.tf").read_text()
        if 'source = "../.."' in text:
            assert "security_hub_enabled       = var.security_hub_enabled" in text, example


def test_response_is_off_by_default_and_its_grants_exist_only_with_it() -> None:
    blocks = module_blocks()
    assert blocks["variable"][("var", "response_modes")]["default"] == {}
    document = blocks["data"][("aws_iam_policy_document", "response")]
    assert document["count"] == "${local.response_enabled ? 1 : 0}"
    assert document["__file__"] == "response.tf"
    # Only the detector's role sources it; the baseline never acts.
    sourcing = [key for key, body in blocks["data"].items() if "aws_iam_policy_document.response" in json.dumps(body.get("source_policy_documents", ""))]
    assert sourcing == [("aws_iam_policy_document", "detector")], sourcing
    # Nothing outside response.tf grants a write to EC2 or RDS.
    for key, body in blocks["data"].items():
        if key == ("aws_iam_policy_document", "response"):
            continue
        text = json.dumps(body)
        assert not re.search(r"(ec2|rds):(Modify|Revoke)", text), key


def response_policy(workdir: Path, variables: list[str], modes: dict[str, str]) -> dict[str, dict] | None:
    """The response document's statements by Sid as planned with `modes`, None when it is not planned."""
    plan_file = workdir / f"plan-{uuid.uuid4().hex[:8]}.tfplan"
    modes_hcl = "{" + ", ".join(f'"{rule}" = "{mode}"' for rule, mode in modes.items()) + "}"
    terraform(workdir, "plan", "-input=false", f"-out={plan_file}", *variables, f"-var=response_modes={modes_hcl}")
    shown = json.loads(terraform(workdir, "show", "-json", str(plan_file)))
    read = shown.get("prior_state", {}).get("values", {}).get("root_module", {}).get("resources", [])
    documents = [r for r in read if r["address"].startswith("data.aws_iam_policy_document.response")]
    if not documents:
        return None
    (document,) = documents
    statements = json.loads(document["values"]["json"])["Statement"]
    return {statement["Sid"]: statement for statement in statements}


def test_response_modes_grant_exactly_their_calls(module_root: tuple[Path, list[str]]) -> None:
    workdir, variables = module_root
    assert response_policy(workdir, variables, {}) is None
    assert response_policy(workdir, variables, {"snapshot.public": "off", "chain.exposed-restore": "off"}) is None

    dry = response_policy(workdir, variables, {"snapshot.public": "dry-run"})
    assert set(dry) == {"ResponseDescribe", "ResponseShareRead"}, dry
    assert set(as_list(dry["ResponseDescribe"]["Action"])) == {"ec2:DescribeTags"}
    assert set(as_list(dry["ResponseShareRead"]["Action"])) == RESPONSE_SHARE_READ

    enforced = response_policy(workdir, variables, {"snapshot.shared-external": "enforce", "chain.exposed-restore": "enforce"})
    assert set(enforced) == {"ResponseDescribe", "ResponseShareRead", "ResponseShareRemove", "ResponseIngressRevoke"}, enforced
    assert set(as_list(enforced["ResponseDescribe"]["Action"])) == {"ec2:DescribeTags", "ec2:DescribeSecurityGroupRules"}
    assert set(as_list(enforced["ResponseShareRemove"]["Action"])) == RESPONSE_SHARE_REMOVE
    assert enforced["ResponseShareRemove"]["Condition"] == {"StringEquals": {"aws:ResourceAccount": MOTO_ACCOUNT}}
    assert set(as_list(enforced["ResponseShareRemove"]["Resource"])) == {
        "arn:aws:ec2:*::snapshot/*",
        "arn:aws:ec2:*::image/*",
        f"arn:aws:rds:*:{MOTO_ACCOUNT}:snapshot:*",
        f"arn:aws:rds:*:{MOTO_ACCOUNT}:cluster-snapshot:*",
    }
    assert as_list(enforced["ResponseIngressRevoke"]["Action"]) == ["ec2:RevokeSecurityGroupIngress"]
    assert set(as_list(enforced["ResponseIngressRevoke"]["Resource"])) == {
        f"arn:aws:ec2:*:{MOTO_ACCOUNT}:security-group/*",
        f"arn:aws:ec2:*:{MOTO_ACCOUNT}:security-group-rule/*",
    }
    for statement in enforced.values():
        assert not [a for a in as_list(statement["Action"]) if "*" in a], statement

    # Only the ingress rule: no share grants at all.
    ingress = response_policy(workdir, variables, {"chain.exposed-restore": "dry-run"})
    assert set(ingress) == {"ResponseDescribe"}, ingress


def test_response_modes_reject_unknown_rules_and_modes(module_root: tuple[Path, list[str]]) -> None:
    workdir, variables = module_root
    for modes in ('{"snapshot.public" = "on"}', '{"snapshot.unexplained" = "enforce"}'):
        result = subprocess.run(
            [terraform_binary(), "plan", "-input=false", "-no-color", *variables, f"-var=response_modes={modes}"],
            cwd=workdir,
            env=terraform_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode != 0, modes
        assert "response_modes maps snapshot.public" in result.stderr, result.stderr


def test_scheduler_role_may_only_invoke_the_baseline_function() -> None:
    blocks = module_blocks()
    document = blocks["data"][("aws_iam_policy_document", "baseline_scheduler")]
    (statement,) = document["statement"]
    assert [hcl_string(action) for action in statement["actions"]] == ["lambda:InvokeFunction"]
    assert statement["resources"] == ["${aws_lambda_function.baseline[0].arn}"]
    assert "effect" not in statement or hcl_string(statement["effect"]) == "Allow"
    policy = blocks["resource"][("aws_iam_role_policy", "baseline_scheduler")]
    assert policy["role"] == "${aws_iam_role.baseline_scheduler[0].id}"
    assert policy["policy"] == "${data.aws_iam_policy_document.baseline_scheduler[0].json}"
    # No other policy is attached to the scheduler role.
    attached = [
        key
        for key, body in blocks["resource"].items()
        if key[0] in ("aws_iam_role_policy", "aws_iam_role_policy_attachment", "aws_iam_policy_attachment")
        and "baseline_scheduler" in json.dumps(body.get("role", body.get("roles", "")))
    ]
    assert attached == [("aws_iam_role_policy", "baseline_scheduler")]
    trust = blocks["data"][("aws_iam_policy_document", "assume_baseline_scheduler")]
    (assume,) = trust["statement"]
    (principal,) = assume["principals"]
    assert [hcl_string(identifier) for identifier in principal["identifiers"]] == ["scheduler.amazonaws.com"]
    schedule = blocks["resource"][("aws_scheduler_schedule", "baseline")]
    (target,) = schedule["target"]
    assert target["role_arn"] == "${aws_iam_role.baseline_scheduler[0].arn}"
    assert target["arn"] == "${aws_lambda_function.baseline[0].arn}"
    assert [hcl_string(window["mode"]) for window in schedule["flexible_time_window"]] == ["OFF"]


# ---- applied against moto -------------------------------------------------------------------


def moto_override(endpoint: str) -> str:
    endpoints = "\n".join(f'    {service} = "{endpoint}"' for service in MOTO_SERVICES)
    return f"""# Written by tests/infra/test_aws.py: every AWS call goes to the local moto server.
provider "aws" {{
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {{
{endpoints}
  }}
}}
"""


def boto_client(service: str):
    import boto3

    return boto3.client(
        service,
        endpoint_url=moto_endpoint(),
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def deployed(infra_copy: Path, tmp_path_factory: pytest.TempPathFactory):
    """The single-account example applied to moto (and destroyed after the module's tests).

    A forwarder (organization mode) rides along in the same apply: FORWARDER_TEST_ROOT.
    """
    endpoint = moto_endpoint()
    workdir = infra_copy / "aws" / "examples" / "single-account"
    (workdir / "moto_override.tf").write_text(moto_override(endpoint))
    (workdir / "test_forwarder.tf").write_text(FORWARDER_TEST_ROOT)
    # Moto stores the function but never runs it: any zip with a bootstrap will do.
    bundle = tmp_path_factory.mktemp("lambda") / "bootstrap.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    prefix = f"sw{uuid.uuid4().hex[:8]}"
    # The archive path reads an existing trail bucket (SSE-KMS with its own key): made first.
    archive_bucket = f"{prefix}-trail"
    boto_client("s3").create_bucket(Bucket=archive_bucket)
    archive_key_arn = boto_client("kms").create_key(Description="trail bucket key")["KeyMetadata"]["Arn"]
    variables = [
        f"-var=name_prefix={prefix}",
        f"-var=lambda_zip_path={bundle}",
        f"-var=baseline_zip_path={bundle}",
        f"-var=archive_bucket_name={archive_bucket}",
        f"-var=archive_zip_path={bundle}",
        f"-var=archive_kms_key_arn={archive_key_arn}",
        "-var=archive_prefix=org-trail",
        f"-var=slack_webhook_secret_arn={SLACK_SECRET_ARN}",
        "-var=enable_deletion_protection=false",
        "-var=security_hub_enabled=true",
        f"-var=region={REGION}",
    ]
    terraform(workdir, "init", "-backend=false", "-input=false")
    try:
        terraform(workdir, "apply", "-auto-approve", "-input=false", *variables, timeout=600)
        outputs = {name: value["value"] for name, value in json.loads(terraform(workdir, "output", "-json")).items()}
        outputs.update(archive_bucket=archive_bucket, archive_key_arn=archive_key_arn)
        yield outputs
    finally:
        terraform(workdir, "destroy", "-auto-approve", "-input=false", "-refresh=false", *variables, timeout=600)
    # After destroy nothing of this deployment may be left behind.
    assert prefix + "-state" not in boto_client("dynamodb").list_tables()["TableNames"]
    assert not [s["Name"] for s in boto_client("scheduler").list_schedules()["Schedules"] if s["Name"].startswith(prefix)]
    assert not [f["FunctionName"] for f in boto_client("lambda").list_functions()["Functions"] if f["FunctionName"].startswith(prefix)]
    assert not [r["RoleName"] for r in boto_client("iam").list_roles()["Roles"] if r["RoleName"].startswith(prefix)]
    assert not [url for url in boto_client("sqs").list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])]
    assert not boto_client("s3").get_bucket_notification_configuration(Bucket=archive_bucket).get("QueueConfigurations")
    assert not [rule for rule in boto_client("events").list_rules(NamePrefix=prefix)["Rules"]]
    assert not [bus for bus in boto_client("events").list_event_buses(NamePrefix=prefix)["EventBuses"]]


def test_table_is_on_demand_with_ttl_pitr_and_kms(deployed: dict) -> None:
    dynamodb = boto_client("dynamodb")
    table = dynamodb.describe_table(TableName=deployed["table_name"])["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {(key["AttributeName"], key["KeyType"]) for key in table["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert table["SSEDescription"]["SSEType"] == "KMS"
    assert table["SSEDescription"]["KMSMasterKeyArn"] == deployed["kms_key_arn"]
    ttl = dynamodb.describe_time_to_live(TableName=deployed["table_name"])["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    backups = dynamodb.describe_continuous_backups(TableName=deployed["table_name"])["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_topic_is_encrypted_with_the_key(deployed: dict) -> None:
    attributes = boto_client("sns").get_topic_attributes(TopicArn=deployed["alerts_topic_arn"])["Attributes"]
    assert attributes["KmsMasterKeyId"] == deployed["kms_key_arn"]


def test_dead_letter_queue_is_encrypted_and_open_only_to_the_rule(deployed: dict) -> None:
    sqs = boto_client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=deployed["dead_letter_queue_url"], AttributeNames=["All"])["Attributes"]
    assert attributes["QueueArn"] == deployed["dead_letter_queue_arn"]
    assert attributes["KmsMasterKeyId"] == deployed["kms_key_arn"]
    assert attributes["MessageRetentionPeriod"] == "1209600"
    statements = json.loads(attributes["Policy"])["Statement"]
    allows = [statement for statement in statements if statement["Effect"] == "Allow"]
    assert len(allows) == 1
    assert allows[0]["Principal"] == {"Service": "events.amazonaws.com"}
    assert allows[0]["Action"] == "sqs:SendMessage"
    assert allows[0]["Condition"] == {"ArnEquals": {"aws:SourceArn": deployed["rule_arn"]}}


def test_rule_pattern_lists_exactly_what_the_core_consumes(deployed: dict) -> None:
    rule = boto_client("events").describe_rule(Name=deployed["rule_name"])
    assert rule["State"] == "ENABLED"
    pattern = json.loads(rule["EventPattern"])
    core = core_consumed_events()
    assert pattern_pairs(pattern) == core
    # Each branch pairs names with their own service only.
    for branch in pattern["detail"]["$or"]:
        (event_source,) = branch["eventSource"]
        assert {(event_source, name) for name in branch["eventName"]} <= core
    assert sorted(pattern["source"]) == ["aws.ebs", "aws.ec2", "aws.rds"]
    assert sorted(pattern["detail-type"]) == [DETAIL_TYPE_API_CALL, DETAIL_TYPE_SERVICE_EVENT]
    assert pattern["detail"]["errorCode"] == [{"exists": False}]


def test_rule_targets_the_function_with_retries_and_dead_letters(deployed: dict) -> None:
    targets = boto_client("events").list_targets_by_rule(Rule=deployed["rule_name"])["Targets"]
    assert len(targets) == 1
    (target,) = targets
    function = boto_client("lambda").get_function_configuration(FunctionName=deployed["function_name"])
    assert target["Arn"] == function["FunctionArn"]
    assert target["DeadLetterConfig"] == {"Arn": deployed["dead_letter_queue_arn"]}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 21600}


def test_function_runtime_tracing_concurrency_and_environment(deployed: dict) -> None:
    lambda_client = boto_client("lambda")
    function = lambda_client.get_function_configuration(FunctionName=deployed["function_name"])
    assert function["Runtime"] == "provided.al2023"
    assert function["Handler"] == "bootstrap"
    assert function["Architectures"] == ["arm64"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Role"] == deployed["role_arn"]
    environment = function["Environment"]["Variables"]
    assert environment["SNAPWATCH_TABLE_NAME"] == deployed["table_name"]
    assert environment["SNAPWATCH_SNS_TOPIC_ARN"] == deployed["alerts_topic_arn"]
    assert environment["SNAPWATCH_DEAD_LETTER_QUEUE_URL"] == deployed["dead_letter_queue_url"]
    assert environment["SNAPWATCH_SLACK_WEBHOOK_SECRET_ARN"] == SLACK_SECRET_ARN
    assert environment["SNAPWATCH_WINDOW_DAYS"] == "30"
    assert environment["SNAPWATCH_ADMIN_PORTS"] == "22,3389"
    assert environment["SNAPWATCH_MIN_SEVERITY"] == "medium"
    assert environment["SNAPWATCH_SECURITYHUB"] == "on"
    assert environment["SNAPWATCH_SNS_FORMAT"] == "finding"
    assert not [value for value in environment.values() if "hooks.slack.com" in value], "a webhook URL in plain env"
    concurrency = lambda_client.get_function_concurrency(FunctionName=deployed["function_name"])
    assert concurrency["ReservedConcurrentExecutions"] == 10
    invoke_config = lambda_client.get_function_event_invoke_config(FunctionName=deployed["function_name"])
    assert invoke_config["MaximumRetryAttempts"] == 2
    assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"] == deployed["dead_letter_queue_arn"]
    log_groups = boto_client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{deployed['function_name']}")
    (log_group,) = log_groups["logGroups"]
    assert log_group["retentionInDays"] == 365
    assert log_group["kmsKeyId"] == deployed["kms_key_arn"]


def test_function_role_reaches_only_its_own_resources(deployed: dict) -> None:
    iam = boto_client("iam")
    role_name = deployed["role_arn"].rsplit("/", 1)[1]
    (policy_name,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    table_arn = boto_client("dynamodb").describe_table(TableName=deployed["table_name"])["Table"]["TableArn"]
    log_group_arn = f"arn:aws:logs:{REGION}:{MOTO_ACCOUNT}:log-group:/aws/lambda/{deployed['function_name']}:*"
    expected = {
        "ChainState": [table_arn],
        "Alerts": [deployed["alerts_topic_arn"]],
        "DeadLetters": [deployed["dead_letter_queue_arn"]],
        "EncryptedResources": [deployed["kms_key_arn"]],
        "Logs": [log_group_arn],
        "Tracing": ["*"],
        "SlackWebhookSecret": [SLACK_SECRET_ARN],
        "SecurityHubImport": [SECURITY_HUB_PRODUCT_ARN],
    }
    by_sid = {statement["Sid"]: statement for statement in document["Statement"]}
    assert set(by_sid) == set(expected)
    for sid, statement in by_sid.items():
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert resources == expected[sid], sid
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [action for action in actions if "*" in action], f"{sid}: wildcard action"
    tracing_actions = by_sid["Tracing"]["Action"]
    assert sorted(tracing_actions) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    assert by_sid["SlackWebhookSecret"]["Action"] in ("secretsmanager:GetSecretValue", ["secretsmanager:GetSecretValue"])
    assert as_list(by_sid["SecurityHubImport"]["Action"]) == [SECURITY_HUB_ACTION]
    dynamodb_actions = set(by_sid["ChainState"]["Action"])
    assert dynamodb_actions == {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}


# ---- the snapshot baseline, as applied (the single-account example enables it) ---------------


def policy_statements(role_name: str) -> dict[str, dict]:
    iam = boto_client("iam")
    (policy_name,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    statements = document["Statement"]
    by_sid = {statement.get("Sid"): statement for statement in statements}
    assert len(by_sid) == len(statements), "statements without or with duplicate Sids"
    return by_sid


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_baseline_schedule_invokes_the_function_hourly_with_retries(deployed: dict) -> None:
    schedule = boto_client("scheduler").get_schedule(Name=deployed["baseline_schedule_name"], GroupName="default")
    function = boto_client("lambda").get_function_configuration(FunctionName=deployed["baseline_function_name"])
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["State"] == "ENABLED"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert target["Arn"] == function["FunctionArn"]
    assert target["RoleArn"] == deployed["baseline_scheduler_role_arn"]
    assert json.loads(target["Input"]) == {}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 185}
    # Failed runs reach the queue through the function's on-failure destination instead.
    assert "DeadLetterConfig" not in target


def test_baseline_function_settings_and_environment(deployed: dict) -> None:
    lambda_client = boto_client("lambda")
    function = lambda_client.get_function_configuration(FunctionName=deployed["baseline_function_name"])
    detector = lambda_client.get_function_configuration(FunctionName=deployed["function_name"])
    assert function["FunctionName"] == deployed["function_name"].replace("-detector", "-baseline")
    assert function["Runtime"] == "provided.al2023"
    assert function["Handler"] == "bootstrap"
    assert function["Architectures"] == ["arm64"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Timeout"] == 300
    assert function["MemorySize"] == 256
    assert function["Role"] == deployed["baseline_role_arn"]
    assert function["KMSKeyArn"] == deployed["kms_key_arn"] == detector["KMSKeyArn"]
    environment = function["Environment"]["Variables"]
    detector_environment = detector["Environment"]["Variables"]
    # The detector's settings, no dead-letter URL, plus the regions (default: the deployment's).
    assert environment["SNAPWATCH_BASELINE_REGIONS"] == REGION
    assert "SNAPWATCH_DEAD_LETTER_QUEUE_URL" not in environment
    expected = {name: value for name, value in detector_environment.items() if name != "SNAPWATCH_DEAD_LETTER_QUEUE_URL"}
    assert {name: value for name, value in environment.items() if name != "SNAPWATCH_BASELINE_REGIONS"} == expected
    assert environment["SNAPWATCH_TABLE_NAME"] == deployed["table_name"]
    assert environment["SNAPWATCH_SNS_TOPIC_ARN"] == deployed["alerts_topic_arn"]
    assert environment["SNAPWATCH_SLACK_WEBHOOK_SECRET_ARN"] == SLACK_SECRET_ARN
    assert not [value for value in environment.values() if "hooks.slack.com" in value], "a webhook URL in plain env"
    concurrency = lambda_client.get_function_concurrency(FunctionName=deployed["baseline_function_name"])
    assert concurrency["ReservedConcurrentExecutions"] == 1
    invoke_config = lambda_client.get_function_event_invoke_config(FunctionName=deployed["baseline_function_name"])
    assert invoke_config["MaximumRetryAttempts"] == 2
    assert invoke_config["MaximumEventAgeInSeconds"] == 3600
    assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"] == deployed["dead_letter_queue_arn"]
    log_groups = boto_client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{deployed['baseline_function_name']}")
    (log_group,) = log_groups["logGroups"]
    assert log_group["retentionInDays"] == 365
    assert log_group["kmsKeyId"] == deployed["kms_key_arn"]


def test_key_lets_logs_encrypt_every_function_log_group(deployed: dict) -> None:
    kms = boto_client("kms")
    policy = json.loads(kms.get_key_policy(KeyId=deployed["kms_key_arn"], PolicyName="default")["Policy"])
    (logs,) = [statement for statement in policy["Statement"] if statement.get("Sid") == "LogsEncryptTheFunctionLogGroup"]
    arns = as_list(logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"])
    prefix = f"arn:aws:logs:{REGION}:{MOTO_ACCOUNT}:log-group:/aws/lambda/"
    functions = (deployed["function_name"], deployed["baseline_function_name"], deployed["archive_function_name"])
    assert sorted(arns) == sorted(prefix + name for name in functions)


def test_baseline_role_lists_read_only_and_reaches_only_this_deployment(deployed: dict) -> None:
    baseline = policy_statements(deployed["baseline_role_arn"].rsplit("/", 1)[1])
    detector = policy_statements(deployed["role_arn"].rsplit("/", 1)[1])
    shared = {"ChainState", "Alerts", "DeadLetters", "EncryptedResources", "Tracing", "SlackWebhookSecret", "SecurityHubImport"}
    assert set(baseline) == shared | {"SnapshotListing", "SnapshotAttributes", "Logs"}
    # The detector's table, topic, queue, key, tracing and secret statements, unchanged.
    for sid in shared:
        assert baseline[sid] == detector[sid], sid
    for statement in baseline.values():
        assert statement["Effect"] == "Allow"
        assert not [action for action in as_list(statement["Action"]) if "*" in action], statement["Sid"]
    inventory = {
        action
        for statement in baseline.values()
        for action in as_list(statement["Action"])
        if action.split(":", 1)[0] in ("ec2", "rds")
    }
    assert inventory == BASELINE_INVENTORY_ACTIONS
    assert set(as_list(baseline["SnapshotListing"]["Action"])) == BASELINE_LISTING_ACTIONS
    assert as_list(baseline["SnapshotListing"]["Resource"]) == ["*"]
    assert set(as_list(baseline["SnapshotAttributes"]["Action"])) == BASELINE_ATTRIBUTE_ACTIONS
    assert sorted(as_list(baseline["SnapshotAttributes"]["Resource"])) == sorted(
        [
            f"arn:aws:ec2:{REGION}::snapshot/*",
            f"arn:aws:ec2:{REGION}::image/*",
            f"arn:aws:rds:{REGION}:{MOTO_ACCOUNT}:snapshot:*",
            f"arn:aws:rds:{REGION}:{MOTO_ACCOUNT}:cluster-snapshot:*",
        ]
    )
    log_group_arn = f"arn:aws:logs:{REGION}:{MOTO_ACCOUNT}:log-group:/aws/lambda/{deployed['baseline_function_name']}:*"
    assert as_list(baseline["Logs"]["Resource"]) == [log_group_arn]
    # Statements with Resource "*" hold only reads (Describe) and X-Ray's trace upload.
    for statement in baseline.values():
        if "*" in as_list(statement["Resource"]):
            actions = as_list(statement["Action"])
            assert all(action.split(":", 1)[1].startswith("Describe") or action.startswith("xray:Put") for action in actions), actions


def test_scheduler_role_may_only_invoke_the_baseline(deployed: dict) -> None:
    iam = boto_client("iam")
    role_name = deployed["baseline_scheduler_role_arn"].rsplit("/", 1)[1]
    trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    (assume,) = trust["Statement"]
    assert assume["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert assume["Action"] == "sts:AssumeRole"
    assert assume["Condition"] == {"StringEquals": {"aws:SourceAccount": MOTO_ACCOUNT}}
    statements = policy_statements(role_name)
    function = boto_client("lambda").get_function_configuration(FunctionName=deployed["baseline_function_name"])
    assert statements == {
        "InvokeBaseline": {
            "Sid": "InvokeBaseline",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": function["FunctionArn"],
        }
    }


# ---- the module alone, planned against moto: the baseline switch -----------------------------


@pytest.fixture(scope="module")
def module_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """infra/aws as a root module (its own copy: the example's copy must stay a child module)."""
    mirror_path()
    workdir = tmp_path_factory.mktemp("module") / "aws"
    shutil.copytree(MODULE, workdir, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl", "examples"))
    (workdir / "moto_override.tf").write_text(moto_override(moto_endpoint()))
    bundle = workdir.parent / "bootstrap.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    terraform(workdir, "init", "-backend=false", "-input=false")
    return workdir, [f"-var=lambda_zip_path={bundle}", f"-var=name_prefix=sw{uuid.uuid4().hex[:8]}"]


def planned_addresses(workdir: Path, variables: list[str]) -> set[str]:
    plan_file = workdir / f"plan-{uuid.uuid4().hex[:8]}.tfplan"
    terraform(workdir, "plan", "-input=false", f"-out={plan_file}", *variables)
    shown = json.loads(terraform(workdir, "show", "-json", str(plan_file)))
    return {
        change["address"]
        for change in shown.get("resource_changes", [])
        if change["mode"] == "managed" and change["change"]["actions"] == ["create"]
    }


def test_baseline_disabled_by_default_plans_nothing_of_it(module_root: tuple[Path, list[str]]) -> None:
    workdir, variables = module_root
    disabled = planned_addresses(workdir, variables)
    assert "aws_lambda_function.detector" in disabled
    assert not [address for address in disabled if "baseline" in address], disabled
    enabled = planned_addresses(workdir, [*variables, "-var=baseline_enabled=true", f"-var=baseline_zip_path={variables[0].split('=', 2)[2]}"])
    added = enabled - disabled
    assert added == {
        "aws_cloudwatch_log_group.baseline[0]",
        "aws_iam_role.baseline[0]",
        "aws_iam_role.baseline_scheduler[0]",
        "aws_iam_role_policy.baseline[0]",
        "aws_iam_role_policy.baseline_scheduler[0]",
        "aws_lambda_function.baseline[0]",
        "aws_lambda_function_event_invoke_config.baseline[0]",
        "aws_scheduler_schedule.baseline[0]",
    }, added


def test_baseline_enabled_without_its_zip_names_the_variable(module_root: tuple[Path, list[str]]) -> None:
    workdir, variables = module_root
    result = subprocess.run(
        [terraform_binary(), "plan", "-input=false", "-no-color", *variables, "-var=baseline_enabled=true"],
        cwd=workdir,
        env=terraform_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0, "plan accepted baseline_enabled without baseline_zip_path"
    assert "baseline_zip_path is required when baseline_enabled is true" in result.stderr, result.stderr


def test_sns_format_takes_finding_or_ocsf_and_a_typo_names_the_variable(module_root: tuple[Path, list[str]]) -> None:
    # The applied environment (SNAPWATCH_SNS_FORMAT) is checked on the deployment above; the
    # plan cannot show it, as the map holds values known only after apply.
    workdir, variables = module_root
    assert "aws_lambda_function.detector" in planned_addresses(workdir, [*variables, "-var=sns_format=ocsf"])
    result = subprocess.run(
        [terraform_binary(), "plan", "-input=false", "-no-color", *variables, "-var=sns_format=json"],
        cwd=workdir,
        env=terraform_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0, "plan accepted sns_format=json"
    assert "sns_format must be finding or ocsf" in result.stderr, result.stderr


class PatternRouter:
    """Which events the deployed rule's pattern lets through, decided by moto's EventBridge.

    moto 5.2 does not implement TestEventPattern (it answers with an empty body), so the
    deployed pattern is copied verbatim onto a rule of a private bus whose target is an SQS
    queue; an event matched if it arrives in the queue. moto routes during PutEvents.
    """

    def __init__(self, pattern: str) -> None:
        self.events = boto_client("events")
        self.sqs = boto_client("sqs")
        suffix = uuid.uuid4().hex[:8]
        self.bus = f"snapwatch-pattern-test-{suffix}"
        self.rule = f"snapwatch-pattern-test-{suffix}"
        self.queue_url = self.sqs.create_queue(QueueName=f"snapwatch-pattern-test-{suffix}")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.create_event_bus(Name=self.bus)
        self.events.put_rule(Name=self.rule, EventBusName=self.bus, EventPattern=pattern)
        self.events.put_targets(Rule=self.rule, EventBusName=self.bus, Targets=[{"Id": "queue", "Arn": queue_arn}])

    def matches(self, events: list[dict]) -> list[bool]:
        sent: list[str] = []
        for start in range(0, len(events), 10):  # PutEvents takes at most 10 entries
            entries = [
                {
                    "EventBusName": self.bus,
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event.get("resources", []),
                }
                for event in events[start : start + 10]
            ]
            response = self.events.put_events(Entries=entries)
            assert response["FailedEntryCount"] == 0, response["Entries"]
            sent.extend(entry["EventId"] for entry in response["Entries"])
        delivered: set[str] = set()
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for message in messages:
                delivered.add(json.loads(message["Body"])["id"])
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        assert delivered <= set(sent), "the test queue received events this test did not send"
        return [event_id in delivered for event_id in sent]

    def close(self) -> None:
        self.events.remove_targets(Rule=self.rule, EventBusName=self.bus, Ids=["queue"])
        self.events.delete_rule(Name=self.rule, EventBusName=self.bus)
        self.events.delete_event_bus(Name=self.bus)
        self.sqs.delete_queue(QueueUrl=self.queue_url)


@pytest.fixture(scope="module")
def deployed_pattern(deployed: dict):
    pattern = boto_client("events").describe_rule(Name=deployed["rule_name"])["EventPattern"]
    router = PatternRouter(pattern)
    yield router
    router.close()


def test_every_relevant_fixture_matches_the_deployed_rule(deployed_pattern: PatternRouter) -> None:
    consumed = core_consumed_events()
    fixtures = sorted(FIXTURES.glob("*.json"))
    assert fixtures, f"no AWS fixtures under {FIXTURES}"
    labelled: list[tuple[str, dict, bool]] = []
    for path in fixtures:
        for document in load_documents(path):
            event = as_event(document)
            assert event is not None, f"{path.name}: not a CloudTrail record or EventBridge envelope"
            labelled.append((path.name, event, core_treats_as_relevant(event["detail"], consumed)))
    matched = deployed_pattern.matches([event for _, event, _ in labelled])
    disagreements = [
        f"{name}: the core {'consumes' if expected else 'ignores'} it, the rule {'matches' if got else 'does not'}"
        for (name, _, expected), got in zip(labelled, matched)
        if got != expected
    ]
    assert not disagreements, "\n".join(disagreements)
    relevant = sum(expected for _, _, expected in labelled)
    # The fixtures hold both kinds: otherwise this test proves half of what it claims.
    assert relevant >= 30 and len(labelled) - relevant >= 2, (relevant, len(labelled))


def test_rule_ignores_lookalikes(deployed_pattern: PatternRouter) -> None:
    base = json.loads((FIXTURES / "create_snapshot.json").read_text())
    lookalikes = {
        # Storage Gateway has its own CreateSnapshot.
        "other service, same name": dict(base, eventSource="storagegateway.amazonaws.com"),
        # A consumed name under the wrong consumed service.
        "rds name from ec2": dict(base, eventName="CreateDBSnapshot"),
        "read-only call": dict(base, eventName="DescribeSnapshots"),
        "failed call": dict(base, errorCode="Client.UnauthorizedOperation", errorMessage="denied"),
    }
    events = {label: envelope(record) for label, record in lookalikes.items()}
    events["not a CloudTrail event"] = dict(envelope(base), **{"detail-type": "EBS Snapshot Notification"})
    events["the original"] = envelope(base)
    matched = dict(zip(events, deployed_pattern.matches(list(events.values()))))
    assert matched == {label: label == "the original" for label in events}


def test_corpus_records_the_core_consumes_match_the_deployed_rule(deployed_pattern: PatternRouter) -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"no public sample corpus at {CORPUS}")
    consumed = core_consumed_events()
    labelled: list[tuple[str, dict, bool]] = []
    for path in sorted(CORPUS.iterdir()):
        if path.suffix not in (".json", ".jsonl"):
            continue
        for document in load_documents(path):
            event = as_event(document)
            if event is None:
                continue  # EBS notifications, scrubbed records without eventSource, other shapes
            labelled.append((path.name, event, core_treats_as_relevant(event["detail"], consumed)))
    assert labelled, f"no CloudTrail records found in {CORPUS}"
    matched = deployed_pattern.matches([event for _, event, _ in labelled])
    disagreements = [name for (name, _, expected), got in zip(labelled, matched) if got != expected]
    assert not disagreements, disagreements


# ---- organization mode: a member account's forwarder, applied against moto -----------------


# Applied together with the single-account example (see `deployed`), so its creation overlaps the
# provider's SQS waits instead of adding a second apply and destroy.
FORWARDER_TEST_ROOT = """
# Written by tests/infra/test_aws.py: a member account's forwarder (organization mode) to a
# central bus, applied in the same run as the detector.
resource "aws_cloudwatch_event_bus" "test_central" {
  name = "${var.name_prefix}-central"
}

module "test_forwarder_role" {
  source                = "../../modules/forwarder-role"
  name_prefix           = var.name_prefix
  central_event_bus_arn = aws_cloudwatch_event_bus.test_central.arn
}

module "test_forwarder" {
  source                = "../../modules/forwarder"
  name_prefix           = var.name_prefix
  central_event_bus_arn = aws_cloudwatch_event_bus.test_central.arn
  forwarding_role_arn   = module.test_forwarder_role.role_arn
}

output "test_forwarder" {
  value = {
    central_bus_arn = aws_cloudwatch_event_bus.test_central.arn
    role_arn        = module.test_forwarder_role.role_arn
    rule_arn        = module.test_forwarder.rule_arn
    rule_name       = "${var.name_prefix}-forward-consumed-events"
  }
}
"""


@pytest.fixture(scope="module")
def forwarder(deployed: dict) -> dict:
    """modules/forwarder-role + modules/forwarder, as applied to moto with the detector.

    Routing is not exercised (moto would invoke the detector's Lambda on the shared default
    bus); the tests check the rule, its target and the role instead.
    """
    return deployed["test_forwarder"]


def test_forwarder_sends_the_same_events_to_the_central_bus(forwarder: dict) -> None:
    events = boto_client("events")
    rule = events.describe_rule(Name=forwarder["rule_name"])
    assert rule["Arn"] == forwarder["rule_arn"]
    assert rule.get("EventBusName", "default") == "default"
    pattern = json.loads(rule["EventPattern"])
    assert pattern_pairs(pattern) == core_consumed_events()
    assert pattern["detail"]["errorCode"] == [{"exists": False}]
    (target,) = events.list_targets_by_rule(Rule=forwarder["rule_name"])["Targets"]
    assert target["Arn"] == forwarder["central_bus_arn"]
    assert target["RoleArn"] == forwarder["role_arn"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}


def test_forwarder_role_may_only_put_events_on_the_central_bus(forwarder: dict) -> None:
    iam = boto_client("iam")
    role_name = forwarder["role_arn"].rsplit("/", 1)[1]
    role = iam.get_role(RoleName=role_name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    (assume,) = trust["Statement"]
    assert assume["Principal"] == {"Service": "events.amazonaws.com"}
    assert assume["Condition"] == {"StringEquals": {"aws:SourceAccount": MOTO_ACCOUNT}}
    (policy_name,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    (statement,) = document["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == forwarder["central_bus_arn"]


# ---- the CloudTrail archive path (issue 12) -------------------------------------------------

ARCHIVE_GATE = "${local.archive_enabled ? 1 : 0}"
ARCHIVE_NOTIFICATION_GATE = "${local.archive_enabled && var.archive_manage_bucket_notification ? 1 : 0}"
ARCHIVE_QUEUE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


def test_archive_is_off_by_default_and_every_block_of_it_is_gated() -> None:
    blocks = module_blocks()
    assert blocks["variable"][("var", "archive_bucket_name")]["default"] is None
    assert blocks["locals"][("local", "archive_enabled")] == "${var.archive_bucket_name != null}"
    in_file = {(kind, *key) for kind in ("resource", "data") for key, body in blocks[kind].items() if body["__file__"] == "archive.tf"}
    named = {(kind, *key) for kind in ("resource", "data") for key in blocks[kind] if "archive" in key[1]}
    gated = {
        (kind, *key)
        for kind in ("resource", "data")
        for key, body in blocks[kind].items()
        if body.get("count") in (ARCHIVE_GATE, ARCHIVE_NOTIFICATION_GATE)
    }
    assert gated == named == in_file, (gated, named, in_file)
    assert {key[1:] for key in gated} >= {
        ("aws_lambda_function", "archive"),
        ("aws_lambda_event_source_mapping", "archive"),
        ("aws_sqs_queue", "archive"),
        ("aws_sqs_queue", "archive_dead_letters"),
        ("aws_s3_bucket_notification", "archive"),
        ("aws_iam_role", "archive"),
    }
    outputs = (MODULE / "outputs.tf").read_text()
    for output in re.findall(r'output "(archive_[a-z_]+)"', outputs):
        body = outputs.split(f'output "{output}"', 1)[1].split("\n}", 1)[0]
        assert re.search(r"one\(aws_[a-z_]+\.archive[a-z_]*\[\*\]\.[a-z_]+\)|local\.archive_enabled \?", body), output


def test_archive_role_reads_only_the_trails_log_files_and_shares_the_detectors_state_access() -> None:
    blocks = module_blocks()
    document = blocks["data"][("aws_iam_policy_document", "archive")]
    detector = blocks["data"][("aws_iam_policy_document", "detector")]
    # The detector's state access, and not its response grants: the archive reader never responds.
    state_access = "${data.aws_iam_policy_document.state_access.json}"
    assert document["source_policy_documents"] == [state_access]
    assert "data.aws_iam_policy_document.state_access.json" in str(detector["source_policy_documents"])
    assert "response" not in str(document["source_policy_documents"])
    own = statements_by_sid(document)
    assert set(own) == {"ArchiveQueue", "ArchiveLogFiles", "Logs"}
    assert {hcl_string(a) for a in own["ArchiveQueue"]["actions"]} == ARCHIVE_QUEUE_ACTIONS
    assert own["ArchiveQueue"]["resources"] == ["${aws_sqs_queue.archive[0].arn}"]
    assert [hcl_string(a) for a in own["ArchiveLogFiles"]["actions"]] == ["s3:GetObject"]
    assert own["ArchiveLogFiles"]["resources"] == ['"${local.archive_bucket_arn}/${local.archive_key_prefix}*"']
    (dynamic,) = document["dynamic"]
    (key_statement,) = as_list({hcl_string(name): value for name, value in dynamic.items()}["statement"])
    assert key_statement["for_each"] == "${local.archive_kms_encrypted ? [1] : []}"
    content = key_statement["content"][0] if isinstance(key_statement["content"], list) else key_statement["content"]
    assert [hcl_string(a) for a in content["actions"]] == ["kms:Decrypt"]
    assert content["resources"] == ["${var.archive_kms_key_arn}"]
    (condition,) = content["condition"]
    assert (hcl_string(condition["test"]), hcl_string(condition["variable"])) == ("StringEquals", "kms:ViaService")
    assert condition["values"] == ['"s3.${local.region}.amazonaws.com"']
    mapping = blocks["resource"][("aws_lambda_event_source_mapping", "archive")]
    assert [hcl_string(t) for t in mapping["function_response_types"]] == ["ReportBatchItemFailures"]
    # Only S3, from that bucket in its owner's account, may send to the queue.
    queue_policy = statements_by_sid(blocks["data"][("aws_iam_policy_document", "archive_queue")])
    notifies = queue_policy["TrailBucketNotifies"]
    assert [hcl_string(a) for a in notifies["actions"]] == ["sqs:SendMessage"]
    conditions = {hcl_string(c["variable"]): (hcl_string(c["test"]), c["values"]) for c in notifies["condition"]}
    assert conditions == {
        "aws:SourceArn": ("ArnEquals", ["${local.archive_bucket_arn}"]),
        "aws:SourceAccount": ("StringEquals", ["${local.archive_bucket_owner}"]),
    }


def test_archive_disabled_by_default_plans_nothing_of_it(module_root: tuple[Path, list[str]]) -> None:
    workdir, variables = module_root
    bundle = variables[0].split("=", 2)[2]
    disabled = planned_addresses(workdir, variables)
    assert not [address for address in disabled if "archive" in address], disabled
    enabled = planned_addresses(
        workdir,
        [*variables, "-var=archive_bucket_name=trail-archive", f"-var=archive_zip_path={bundle}", "-var=archive_kms_key_arn=arn:aws:kms:us-east-1:123456789012:key/k"],
    )
    assert enabled - disabled == {
        "aws_cloudwatch_log_group.archive[0]",
        "aws_iam_role.archive[0]",
        "aws_iam_role_policy.archive[0]",
        "aws_lambda_event_source_mapping.archive[0]",
        "aws_lambda_function.archive[0]",
        "aws_s3_bucket_notification.archive[0]",
        "aws_sqs_queue.archive[0]",
        "aws_sqs_queue.archive_dead_letters[0]",
    }, enabled - disabled
    # The key is replaced in place when the archive adds a log group to its policy.
    unmanaged = planned_addresses(
        workdir,
        [*variables, "-var=archive_bucket_name=trail-archive", f"-var=archive_zip_path={bundle}", "-var=archive_manage_bucket_notification=false"],
    )
    assert enabled - unmanaged == {"aws_s3_bucket_notification.archive[0]"}
    result = subprocess.run(
        [terraform_binary(), "plan", "-input=false", "-no-color", *variables, "-var=archive_bucket_name=trail-archive"],
        cwd=workdir,
        env=terraform_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0, "plan accepted archive_bucket_name without archive_zip_path"
    assert "archive_zip_path is required when archive_bucket_name is set" in result.stderr, result.stderr


def test_archive_queue_notifies_from_the_trail_bucket_with_its_own_dead_letter_queue(deployed: dict) -> None:
    sqs = boto_client("sqs")
    queue = sqs.get_queue_attributes(QueueUrl=deployed["archive_queue_url"], AttributeNames=["All"])["Attributes"]
    dead_letters = sqs.get_queue_attributes(QueueUrl=deployed["archive_dead_letter_queue_url"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dead_letters["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == 5
    assert queue["SqsManagedSseEnabled"] == "true" and dead_letters["SqsManagedSseEnabled"] == "true"
    assert int(queue["VisibilityTimeout"]) == 6 * 300
    policy = json.loads(queue["Policy"])
    (notifies,) = [statement for statement in policy["Statement"] if statement.get("Sid") == "TrailBucketNotifies"]
    assert notifies["Principal"] == {"Service": "s3.amazonaws.com"}
    assert notifies["Condition"] == {
        "ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{deployed['archive_bucket']}"},
        "StringEquals": {"aws:SourceAccount": MOTO_ACCOUNT},
    }
    notification = boto_client("s3").get_bucket_notification_configuration(Bucket=deployed["archive_bucket"])
    (config,) = notification["QueueConfigurations"]
    assert config["QueueArn"] == deployed["archive_queue_arn"]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    rules = {rule["Name"].lower(): rule["Value"] for rule in config["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "org-trail/AWSLogs/", "suffix": ".json.gz"}


def test_archive_function_shares_the_detectors_settings_and_reports_batch_item_failures(deployed: dict) -> None:
    lambda_client = boto_client("lambda")
    function = lambda_client.get_function_configuration(FunctionName=deployed["archive_function_name"])
    detector = lambda_client.get_function_configuration(FunctionName=deployed["function_name"])
    assert function["Runtime"] == "provided.al2023"
    assert function["Timeout"] == 300
    assert function["Role"] == deployed["archive_role_arn"]
    assert function["Environment"]["Variables"] == detector["Environment"]["Variables"]
    # Moto filters mappings by function ARN only (AWS takes the name too).
    (mapping,) = lambda_client.list_event_source_mappings(EventSourceArn=deployed["archive_queue_arn"])["EventSourceMappings"]
    assert mapping["FunctionArn"] == function["FunctionArn"]
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_archive_role_reaches_only_its_queue_the_trails_log_files_and_the_detectors_resources(deployed: dict) -> None:
    archive = policy_statements(deployed["archive_role_arn"].rsplit("/", 1)[1])
    detector = policy_statements(deployed["role_arn"].rsplit("/", 1)[1])
    shared = {"ChainState", "Alerts", "DeadLetters", "EncryptedResources", "Tracing", "SlackWebhookSecret", "SecurityHubImport"}
    assert set(archive) == shared | {"ArchiveQueue", "ArchiveLogFiles", "ArchiveLogFilesKey", "Logs"}
    for sid in shared:
        assert archive[sid] == detector[sid], sid
    assert set(as_list(archive["ArchiveQueue"]["Action"])) == ARCHIVE_QUEUE_ACTIONS
    assert as_list(archive["ArchiveQueue"]["Resource"]) == [deployed["archive_queue_arn"]]
    assert as_list(archive["ArchiveLogFiles"]["Action"]) == ["s3:GetObject"]
    assert as_list(archive["ArchiveLogFiles"]["Resource"]) == [f"arn:aws:s3:::{deployed['archive_bucket']}/org-trail/AWSLogs/*"]
    assert as_list(archive["ArchiveLogFilesKey"]["Action"]) == ["kms:Decrypt"]
    assert as_list(archive["ArchiveLogFilesKey"]["Resource"]) == [deployed["archive_key_arn"]]
    assert archive["ArchiveLogFilesKey"]["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}
    for statement in archive.values():
        assert statement["Effect"] == "Allow"
        assert not [action for action in as_list(statement["Action"]) if "*" in action], statement["Sid"]
