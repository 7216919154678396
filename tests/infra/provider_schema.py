"""Offline provider-schema check of the Terraform modules.

`terraform validate` needs the provider binary, which this machine has only for AWS. The npm
packages of the Terraform CDK's prebuilt provider bindings carry a `.jsii` manifest: JSON listing
every resource and data source of one provider version, each argument and nested block, and
whether it is required. This module turns a manifest into a compact schema index and checks
every `.tf` file of a module against it: unknown resource or data source types, unknown
arguments or blocks, missing required arguments or blocks, unknown `lifecycle.ignore_changes`
roots, and module calls passing unknown or omitting required variables. Each problem names the
file and line.

The package versions are pinned here and installed by `make tools` into `.tools/cdktf`
(tests/infra/test_provider_schema.py checks the Makefile pins the same versions).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import hcl2

REPO = Path(__file__).resolve().parents[2]
PACKAGES_DIR = REPO / ".tools" / "cdktf"

# npm package → (version, Terraform provider version it was generated from).
PINNED = {
    "@cdktf/provider-aws": ("19.65.1", "5.99.1"),
    "@cdktf/provider-azurerm": ("14.23.1", "4.55.0"),
    "@cdktf/provider-google": ("16.12.1", "6.50.0"),
}
PROVIDER_PACKAGE = {"aws": "@cdktf/provider-aws", "azurerm": "@cdktf/provider-azurerm", "google": "@cdktf/provider-google"}

# Arguments and blocks Terraform itself accepts on every resource / data source.
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}

_REPRESENTS = re.compile(
    r"Represents a \{@link https://registry\.terraform\.io/providers/hashicorp/[a-z0-9]+/[0-9.]+/docs"
    r"(?:/(resources|data-sources)/[a-z0-9_]+)? ([a-z0-9_]+)\}"
)
_ANCHOR = re.compile(r"#([a-z0-9_]+) [A-Za-z0-9]+#")


def _snake(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", camel).lower()


def _struct_of(type_ref):
    """The nested struct FQN a property's type names (a block), or None for a plain argument."""
    if not isinstance(type_ref, dict):
        return None
    if "fqn" in type_ref:
        return type_ref["fqn"] if not type_ref["fqn"].startswith("cdktf.") else None
    if "union" in type_ref:
        for member in type_ref["union"]["types"]:
            found = _struct_of(member)
            if found:
                return found
    if "collection" in type_ref:
        return _struct_of(type_ref["collection"]["elementtype"])
    return None


def build_index(jsii_path: Path) -> dict:
    """{"resource": {type: struct}, "data": {type: struct}, "provider": {name: struct},
    "structs": {fqn: {name: [required, nested_fqn_or_null]}}} from a `.jsii` manifest."""
    types = json.loads(jsii_path.read_text())["types"]
    index = {"resource": {}, "data": {}, "provider": {}, "structs": {}}
    wanted = []
    for fqn, body in types.items():
        match = _REPRESENTS.match(body.get("docs", {}).get("summary", ""))
        if not match or body.get("kind") != "class":
            continue
        kind = {"resources": "resource", "data-sources": "data", None: "provider"}[match.group(1)]
        config = fqn + "Config"
        if config in types:
            index[kind][match.group(2)] = config
            wanted.append(config)

    structs = index["structs"]
    while wanted:
        fqn = wanted.pop()
        if fqn in structs or fqn not in types:
            continue
        props = {}
        pending = [fqn]
        while pending:  # the struct and the provider-package interfaces it extends
            body = types.get(pending.pop(), {})
            pending.extend(i for i in body.get("interfaces", []) if not i.startswith("cdktf."))
            for prop in body.get("properties", []):
                docs = prop.get("docs", {})
                anchor = _ANCHOR.search(docs.get("remarks", "") + " " + docs.get("summary", ""))
                name = anchor.group(1) if anchor else _snake(prop["name"])
                nested = _struct_of(prop["type"])
                props[name] = [not prop.get("optional", False), nested]
                if nested:
                    wanted.append(nested)
        structs[fqn] = props
    return index


def load_index(package: str) -> dict:
    """The index of one pinned package, cached beside it (the manifests are ~100 MB each)."""
    version, _ = PINNED[package]
    root = PACKAGES_DIR / "node_modules" / package
    manifest = root / ".jsii"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing: run `make tools` (installs {package}@{version})")
    installed = json.loads((root / "package.json").read_text())["version"]
    if installed != version:
        raise RuntimeError(f"{package} {installed} is installed, {version} is pinned: run `make tools`")
    cache = PACKAGES_DIR / f"index-{package.split('/')[-1]}-{version}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    index = build_index(manifest)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(index))
    tmp.replace(cache)
    return index


# ---- reading the HCL ------------------------------------------------------------------------


def _unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@dataclass
class Problem:
    path: Path
    line: int
    message: str

    def __str__(self):
        try:
            shown = self.path.relative_to(REPO)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}: {self.message}"


@dataclass
class _Source:
    path: Path
    lines: list = field(default_factory=list)

    def block_start(self, pattern: str, after: int = 0) -> int:
        regex = re.compile(pattern)
        for number in range(after, len(self.lines)):
            if regex.search(self.lines[number]):
                return number + 1
        return after + 1 if after else 1

    def block_end(self, start: int) -> int:
        """Last line of the block opening at `start` (1-based), by brace depth (strings aware enough
        for this repository's HCL: no braces inside quoted strings outside `${}`)."""
        depth = 0
        seen = False
        for number in range(start - 1, len(self.lines)):
            text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', self.lines[number].split("#")[0])
            depth += text.count("{") - text.count("}")
            seen = seen or "{" in text
            if seen and depth <= 0:
                return number + 1
        return len(self.lines)

    def name_line(self, name: str, start: int, end: int) -> int:
        regex = re.compile(rf'^\s*(?:dynamic\s+)?"?{re.escape(name)}"?\s*(=|\{{)')
        for number in range(start - 1, end):
            if regex.search(self.lines[number]):
                return number + 1
        return start


def _blocks(value):
    """A nested block's bodies (python-hcl2 gives a list of dicts)."""
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    if isinstance(value, dict):
        return [value]
    return []


def _check_body(body, struct, index, source, start, end, where, problems, top_level):
    """Check one resource / block body against its struct; recurse into nested blocks."""
    props = index["structs"].get(struct, {})
    present = set()
    for key, value in body.items():
        if key.startswith("__"):
            continue
        name = _unquote(key)
        if name == "dynamic":
            for dynamic in _blocks(value):
                for dyn_name, dyn_body in dynamic.items():
                    dyn_name = _unquote(dyn_name)
                    if dyn_name.startswith("__"):
                        continue
                    present.add(dyn_name)
                    line = source.name_line(dyn_name, start, end)
                    if dyn_name not in props or not props[dyn_name][1]:
                        problems.append(Problem(source.path, line, f"{where}: unknown block `{dyn_name}` (dynamic)"))
                        continue
                    for content in _blocks(dyn_body.get("content")):
                        _check_body(content, props[dyn_name][1], index, source, line, source.block_end(line),
                                    f"{where}.{dyn_name}", problems, False)
            continue
        present.add(name)
        line = source.name_line(name, start, end)
        if top_level and name in META_ARGUMENTS:
            if name == "lifecycle":
                for lifecycle in _blocks(value):
                    _check_ignore_changes(lifecycle, props, source, line, where, problems)
            continue
        if name not in props:
            kind = "block" if isinstance(value, list) and value and isinstance(value[0], dict) and value[0].get("__is_block__") else "argument"
            problems.append(Problem(source.path, line, f"{where}: unknown {kind} `{name}`"))
            continue
        nested = props[name][1]
        if nested:
            for block in _blocks(value):
                if block.get("__is_block__"):
                    block_end = source.block_end(line)
                    _check_body(block, nested, index, source, line, block_end, f"{where}.{name}", problems, False)
                    line = source.name_line(name, block_end + 1, end) if block_end < end else line
    for name, (required, _) in sorted(props.items()):
        if required and name not in present:
            problems.append(Problem(source.path, start, f"{where}: missing required `{name}`"))


def _check_ignore_changes(lifecycle, props, source, line, where, problems):
    ignored = lifecycle.get("ignore_changes")
    if not isinstance(ignored, list):
        return
    for item in ignored:
        text = _unquote(item)
        root = re.match(r"^\$?\{?([a-z0-9_]+)", text or "")
        if root and root.group(1) not in props:
            problems.append(Problem(source.path, line, f"{where}: lifecycle.ignore_changes names unknown `{root.group(1)}`"))


def _module_variables(directory: Path):
    """{name: has_default} of the module at `directory`."""
    variables = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle)
        for block in parsed.get("variable", []):
            for name, body in block.items():
                variables[_unquote(name)] = "default" in body
    return variables


def _provider_of(type_name: str) -> str:
    return type_name.split("_", 1)[0]


def check_module(directory: Path, indexes: dict) -> list:
    """Problems in every .tf file under `directory` (recursively: examples and submodules too).
    `indexes` maps provider name → index (see `load_index`)."""
    problems = []
    for path in sorted(directory.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        source = _Source(path, path.read_text().splitlines())
        with path.open() as handle:
            parsed = hcl2.load(handle)
        for kind, keyword in (("resource", "resource"), ("data", "data")):
            for block in parsed.get(kind, []):
                for type_key, named in block.items():
                    type_name = _unquote(type_key)
                    if type_name.startswith("__"):
                        continue
                    provider = _provider_of(type_name)
                    for name_key, body in named.items():
                        name = _unquote(name_key)
                        if name.startswith("__"):
                            continue
                        start = source.block_start(rf'^\s*{keyword}\s+"{type_name}"\s+"{name}"')
                        end = source.block_end(start)
                        where = f"{'data.' if kind == 'data' else ''}{type_name}.{name}"
                        if provider not in indexes:
                            if provider not in ("terraform", "time", "null", "random", "archive", "local"):
                                problems.append(Problem(path, start, f"{where}: provider `{provider}` has no pinned schema"))
                            continue
                        struct = indexes[provider][kind].get(type_name)
                        if struct is None:
                            problems.append(Problem(path, start, f"{where}: unknown {kind} type `{type_name}`"))
                            continue
                        _check_body(body, struct, indexes[provider], source, start, end, where, problems, True)
        for block in parsed.get("provider", []):
            for provider_key, body in block.items():
                provider = _unquote(provider_key)
                if provider.startswith("__") or provider not in indexes:
                    continue
                start = source.block_start(rf'^\s*provider\s+"{provider}"')
                struct = indexes[provider]["provider"].get(provider)
                if struct:
                    body = {k: v for k, v in body.items() if _unquote(k) != "alias"}
                    _check_body(body, struct, indexes[provider], source, start, source.block_end(start),
                                f"provider.{provider}", problems, False)
        for block in parsed.get("module", []):
            for module_key, body in block.items():
                module_name = _unquote(module_key)
                if module_name.startswith("__"):
                    continue
                module_source = _unquote(body.get("source", ""))
                if not module_source.startswith("."):
                    continue
                start = source.block_start(rf'^\s*module\s+"{module_name}"')
                end = source.block_end(start)
                variables = _module_variables((path.parent / module_source).resolve())
                for key in body:
                    name = _unquote(key)
                    if name.startswith("__") or name in ("source", "version", "providers", "count", "for_each", "depends_on"):
                        continue
                    if name not in variables:
                        problems.append(Problem(path, source.name_line(name, start, end), f"module.{module_name}: unknown variable `{name}`"))
                for name, has_default in sorted(variables.items()):
                    if not has_default and name not in {_unquote(k) for k in body}:
                        problems.append(Problem(path, start, f"module.{module_name}: missing required variable `{name}`"))
    return problems
