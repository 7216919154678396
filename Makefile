# The commands a person types. `make demo` runs the detector on the bundled demo logs;
# `make test` runs every check CI runs.

CARGO ?= cargo
TERRAFORM ?= terraform
# Tools the tests use, installed by `make tools` into .tools/ (ignored by git). The per-cloud
# targets in mk/*.mk use these same variables.
TOOLS := .tools
PYTEST := $(TOOLS)/venv/bin/python -m pytest
CHECKOV := $(TOOLS)/checkov/bin/checkov
# cargo-lambda and the zig linker it drives, from the tools venv (packaging installs it first).
CARGO_LAMBDA := PATH="$(CURDIR)/$(TOOLS)/venv/bin:$$PATH" $(TOOLS)/venv/bin/cargo-lambda lambda
# Adapter tests talk to real local servers; the wrapper starts and stops them.
WITH_SERVERS := tests/servers/with-servers.sh

BENCH_RECORDS ?= 1000000
BENCH_DIR ?= bench-data

# cargo-nextest when installed (CI has it), plain cargo test otherwise.
TEST_RUNNER := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo "nextest run --no-fail-fast" || echo "test --no-fail-fast")

# Tests and lint build the CLI with `snapwatch baseline` (it shares the AWS crates the Lambda
# builds anyway), in one feature set so nothing is compiled twice.
WORKSPACE_FEATURES := --features snapwatch-cli/baseline

.PHONY: demo test fmt fmt-check lint check-core-deps unit test-infra bench clean tools report-picture check-chromium

# The demo's findings as one HTML page; `make demo` writes it and says where (on stderr, so the
# printed findings stay exactly what `snapwatch scan tests/demo` prints).
DEMO_REPORT := target/snapwatch-demo.html

demo:
	$(CARGO) run -q -p snapwatch-cli -- scan tests/demo
	@mkdir -p target
	@$(CARGO) run -q -p snapwatch-cli -- scan --format html tests/demo > $(DEMO_REPORT) 2> target/snapwatch-demo.log \
		|| { cat target/snapwatch-demo.log >&2; exit 1; }
	@echo "HTML report of these findings: $(DEMO_REPORT) (open it in a browser)" >&2

# The README's picture of the demo report: headless Chromium's screenshot of the page's top
# (summary table and the first finding).
CHROMIUM ?= /usr/bin/chromium
CHROMIUM_FLAGS := --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync --hide-scrollbars

check-chromium:
	@test -x $(CHROMIUM) || { echo "check-chromium: $(CHROMIUM) is missing (apt-get install -y chromium): the HTML report cannot be checked in a browser" >&2; exit 1; }

report-picture: check-chromium demo
	@mkdir -p docs
	profile=$$(mktemp -d) && \
	$(CHROMIUM) $(CHROMIUM_FLAGS) --user-data-dir=$$profile --window-size=1240,1466 \
		--screenshot=$(abspath docs/report-demo.png) file://$(abspath $(DEMO_REPORT)) 2>/dev/null; \
	status=$$?; rm -rf $$profile; exit $$status

test: tools fmt-check lint check-core-deps unit test-infra

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets $(WORKSPACE_FEATURES) -- -D warnings
	# The core's rustdoc is enforced (missing_docs); its links must resolve too.
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -q -p snapwatch-core --no-deps

# The core must stay free of async runtimes, cloud SDKs and HTTP frameworks.
check-core-deps:
	@leaks=$$($(CARGO) tree -p snapwatch-core -e normal --prefix none | \
		grep -E '^(tokio|aws-|lambda_|azure|hyper|axum|reqwest|google-|gcloud|firestore|actix|warp|tonic) ' | sort -u); \
	if [ -n "$$leaks" ]; then echo "snapwatch-core depends on forbidden crates:"; echo "$$leaks"; exit 1; fi; \
	echo "check-core-deps: snapwatch-core has no runtime, SDK or HTTP framework dependency"

unit:
	$(WITH_SERVERS) $(CARGO) $(TEST_RUNNER) --workspace $(WORKSPACE_FEATURES)

# Terraform fmt and checkov over every module, then the structural tests and (AWS) the apply
# against moto in tests/infra.
test-infra:
	$(TERRAFORM) fmt -check -recursive infra
	@for module in infra/*/; do \
		echo "checkov $$module"; \
		$(CHECKOV) -d $$module --framework terraform --skip-download --compact --quiet || exit 1; \
	done
	$(WITH_SERVERS) $(PYTEST) -q tests/infra tests/formats

bench:
	BENCH_RECORDS=$(BENCH_RECORDS) BENCH_DIR=$(BENCH_DIR) bash tests/bench/run.sh

# Fuzzing (nightly toolchain + cargo-fuzz): each target for FUZZ_SECONDS; `fuzz-smoke` is the
# short bounded pass CI runs so that a regression that panics is caught.
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 20
.PHONY: fuzz fuzz-smoke
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh

fuzz-smoke:
	FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) bash fuzz/run.sh

clean:
	$(CARGO) clean
	rm -rf $(BENCH_DIR)

# Local servers and tools the tests use, installed into $(TOOLS).
.PHONY: tools
tools: $(TOOLS)/venv/.done $(TOOLS)/checkov/.done $(TOOLS)/node/.done $(TOOLS)/cdktf/.done

$(TOOLS)/venv/.done:
	python3 -m venv $(TOOLS)/venv
	$(TOOLS)/venv/bin/pip install -q --disable-pip-version-check 'moto[server]==5.*' 'cargo-lambda' 'python-hcl2' 'boto3' 'pytest' 'py-ocsf-models==0.10.0'
	touch $@

# checkov gets its own venv: it and python-hcl2 overwrite each other's `hcl2` package.
$(TOOLS)/checkov/.done:
	python3 -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install -q --disable-pip-version-check checkov
	touch $@

$(TOOLS)/node/.done:
	mkdir -p $(TOOLS)/node
	cd $(TOOLS)/node && npm install --silent --no-audit --no-fund dynalite azurite@3.35
	touch $@

# Prebuilt Terraform CDK provider bindings: only their `.jsii` schema manifests are read, by the
# offline provider-schema check (tests/infra/provider_schema.py pins the same versions). About
# 10 s and 0.9 GB; no install scripts, no cdktf peer dependency.
CDKTF_PROVIDERS := @cdktf/provider-aws@19.65.1 @cdktf/provider-azurerm@14.23.1 @cdktf/provider-google@16.12.1
$(TOOLS)/cdktf/.done:
	mkdir -p $(TOOLS)/cdktf
	cd $(TOOLS)/cdktf && npm install --silent --no-audit --no-fund --ignore-scripts --legacy-peer-deps --save-exact $(CDKTF_PROVIDERS)
	touch $@

# Per-cloud targets, one file per cloud, one naming scheme: package-<cloud>, test-<cloud> (the
# function crate's tests), test-infra-<cloud>, fmt-infra-<cloud>, deploy-<cloud> (Azure, GCP).
-include mk/*.mk
