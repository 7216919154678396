# Azure: the custom handler package and the infrastructure checks. Included by the Makefile.

AZURE_PACKAGE := target/azure/package
AZURE_ZIP := target/azure/snapwatch-azure.zip
AZURE_PYTHON ?= $(TOOLS)/venv/bin/python
AZURE_CHECKOV ?= $(TOOLS)/checkov/bin/checkov

.PHONY: package-azure test-azure test-infra-azure deploy-azure

# Deployable folder and zip: host.json, one folder per function with its function.json, and the
# handler binary at the root (host.json's defaultExecutablePath). cargo-lambda's zig linker pins
# the glibc floor at 2.28 so the binary runs on every current Functions Linux image (a plain
# `cargo build` here would need the build machine's glibc, 2.34+).
AZURE_GLIBC_TARGET := x86_64-unknown-linux-gnu.2.28

# cargo-lambda (zig linker) comes from the tools venv (installed on first use, as `make tools` does);
# `zip` from the system (README, Quick start).
package-azure: $(TOOLS)/venv/.done
	@command -v zip >/dev/null 2>&1 || { echo "package-azure: zip is not installed (apt-get install zip)"; exit 1; }
	PATH="$(CURDIR)/$(TOOLS)/venv/bin:$$PATH" $(CARGO) lambda build --release -p snapwatch-azure \
		--bin snapwatch-azure --target $(AZURE_GLIBC_TARGET) --lambda-dir target/azure/build
	rm -rf $(AZURE_PACKAGE) $(AZURE_ZIP)
	mkdir -p $(AZURE_PACKAGE)
	cp -R functions/azure/app/. $(AZURE_PACKAGE)/
	cp target/azure/build/snapwatch-azure/bootstrap $(AZURE_PACKAGE)/snapwatch-azure
	chmod 755 $(AZURE_PACKAGE)/snapwatch-azure
	cd $(AZURE_PACKAGE) && zip -q -r -X ../snapwatch-azure.zip .
	@ls -l $(AZURE_PACKAGE)/snapwatch-azure $(AZURE_ZIP)

# First or later deployment: apply, package, deploy, apply again (infra/azure/deploy.sh).
deploy-azure:
	infra/azure/deploy.sh

# The Rust tests of the Azure crate, with Azurite started for the Table Storage ones.
test-azure:
	tests/servers/with-servers.sh $(CARGO) nextest run -p snapwatch-azure --no-fail-fast

test-infra-azure:
	terraform fmt -check -recursive infra/azure
	$(AZURE_CHECKOV) -d infra/azure --framework terraform --skip-download --compact --quiet
	$(AZURE_PYTHON) -m pytest -q tests/infra/test_azure.py
