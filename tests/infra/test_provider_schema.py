"""Every .tf file of infra/aws, infra/azure and infra/gcp (examples and submodules included) against
the pinned provider schemas (see provider_schema.py): no unknown resource type, argument or block,
no missing required argument or block. The AWS module is also `terraform validate`d against moto
in test_aws.py, so it cross-checks this checker.

Run: .tools/venv/bin/python -m pytest -q tests/infra/test_provider_schema.py
"""

import re
import textwrap

import pytest

import provider_schema as schema

MODULES = {"aws": "aws", "azure": "azurerm", "gcp": "google"}


@pytest.fixture(scope="module")
def indexes():
    return {provider: schema.load_index(schema.PROVIDER_PACKAGE[provider]) for provider in MODULES.values()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_matches_the_provider_schema(module, indexes):
    problems = schema.check_module(schema.REPO / "infra" / module, indexes)
    assert not problems, "provider schema check:\n" + "\n".join(str(p) for p in problems)


def test_make_tools_installs_the_pinned_packages():
    makefile = (schema.REPO / "Makefile").read_text()
    pinned = dict(re.findall(r"(@cdktf/provider-[a-z]+)@([0-9.]+)", makefile))
    assert pinned == {package: version for package, (version, _) in schema.PINNED.items()}


def test_each_pinned_package_is_the_provider_version_the_modules_allow(indexes):
    """The schema checked is one the modules' version constraints accept."""
    constraints = {
        "aws": (schema.REPO / "infra/aws/versions.tf").read_text(),
        "azurerm": (schema.REPO / "infra/azure/versions.tf").read_text(),
        "google": (schema.REPO / "infra/gcp/versions.tf").read_text(),
    }
    for provider, text in constraints.items():
        _, provider_version = schema.PINNED[schema.PROVIDER_PACKAGE[provider]]
        block = re.search(rf"{provider}\s*=\s*\{{[^}}]*version\s*=\s*\"([^\"]+)\"", text)
        assert block, f"no version constraint for {provider}"
        for clause in block.group(1).split(","):
            op, wanted = re.match(r"\s*(>=|<=|<|>|=|~>)?\s*([0-9.]+)", clause).groups()
            have = tuple(int(x) for x in provider_version.split("."))
            want = tuple(int(x) for x in wanted.split("."))
            have = have[: len(want)] if op in ("<", "<=") else have
            assert {
                ">=": have >= want, ">": have > want, "<": have < want, "<=": have <= want,
                None: have == want, "=": have == want, "~>": have >= want,
            }[op], f"{provider} {provider_version} does not satisfy {block.group(1)}"


def write_module(tmp_path, text):
    (tmp_path / "main.tf").write_text(textwrap.dedent(text))
    (tmp_path / "variables.tf").write_text('variable "needed" {\n  type = string\n}\n')
    return tmp_path


def test_the_checker_names_file_and_line_of_each_kind_of_mistake(tmp_path, indexes):
    """The check can fail: one of each mistake, each reported where it is."""
    module = write_module(tmp_path, """\
        resource "google_cloud_run_v2_service" "s" {
          name     = "x"
          location = "europe-west1"
          templat  = "typo"

          template {
            containers {
              image = "x"
              bogus_setting = 1
            }
            dynamic "nonsense" {
              for_each = []
              content {}
            }
          }
        }

        resource "google_no_such_thing" "x" {
          name = "x"
        }

        resource "google_secret_manager_secret" "s" {
          project = "p"
          replication {
            auto {}
          }
        }

        resource "azurerm_linux_function_app" "f" {
          name                = "x"
          location            = "x"
          resource_group_name = "x"
          service_plan_id     = "x"
          site_config {}
          lifecycle {
            ignore_changes = [app_setting["X"]]
          }
        }

        module "child" {
          source = "./"
          unknown_input = 1
        }
        """)
    found = {str(p).split(":", 1)[1] for p in schema.check_module(module, indexes)}
    assert found == {
        "4: google_cloud_run_v2_service.s: unknown argument `templat`",
        "9: google_cloud_run_v2_service.s.template.containers: unknown argument `bogus_setting`",
        "11: google_cloud_run_v2_service.s.template: unknown block `nonsense` (dynamic)",
        "18: google_no_such_thing.x: unknown resource type `google_no_such_thing`",
        "22: google_secret_manager_secret.s: missing required `secret_id`",
        "35: azurerm_linux_function_app.f: lifecycle.ignore_changes names unknown `app_setting`",
        "42: module.child: unknown variable `unknown_input`",
        "40: module.child: missing required variable `needed`",
    }, found
