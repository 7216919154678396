# Azure: the Functions custom handler (functions/azure) and its Terraform module (infra/azure).
# Included by the Makefile, which defines the tool variables ($(CARGO), $(CARGO_LAMBDA), …).
#   make package-azure    target/azure/package/ and target/azure/snapwatch-azure.zip
#   make test-azure       the crate's tests, with Azurite started by the local-server wrapper
#   make test-infra-azure terraform fmt -check, checkov, structural test
#   make fmt-infra-azure  terraform fmt over infra/azure
#   make deploy-azure     first or later deployment: apply, package, deploy, apply again
.PHONY: package-azure test-azure test-infra-azure fmt-infra-azure deploy-azure

AZURE_PACKAGE := target/azure/package
AZURE_ZIP := target/azure/snapwatch-azure.zip

# Deployable folder and zip: host.json, one folder per function with its function.json, and the
# handler binary at the root (host.json's defaultExecutablePath). cargo-lambda's zig linker pins
# the glibc floor at 2.28 so the binary runs on every current Functions Linux image (a plain
# `cargo build` here would need the build machine's glibc, 2.34+).
AZURE_GLIBC_TARGET := x86_64-unknown-linux-gnu.2.28

# cargo-lambda (zig linker) comes from the tools venv (installed on first use, as `make tools` does);
# `zip` from the system (README, Quick start).
package-azure: $(TOOLS)/venv/.done
	@command -v zip >/dev/null 2>&1 || { echo "package-azure: zip is not installed (apt-get install zip)"; exit 1; }
	$(CARGO_LAMBDA) build --release -p snapwatch-azure \
		--bin snapwatch-azure --target $(AZURE_GLIBC_TARGET) --lambda-dir target/azure/build
	rm -rf $(AZURE_PACKAGE) $(AZURE_ZIP)
	mkdir -p $(AZURE_PACKAGE)
	cp -R functions/azure/app/. $(AZURE_PACKAGE)/
	cp target/azure/build/snapwatch-azure/bootstrap $(AZURE_PACKAGE)/snapwatch-azure
	chmod 755 $(AZURE_PACKAGE)/snapwatch-azure
	cd $(AZURE_PACKAGE) && zip -q -r -X ../snapwatch-azure.zip .
	@ls -l $(AZURE_PACKAGE)/snapwatch-azure $(AZURE_ZIP)

test-azure:
	$(WITH_SERVERS) $(CARGO) $(TEST_RUNNER) -p snapwatch-azure -p snapwatch-azure-inventory

test-infra-azure:
	$(TERRAFORM) fmt -check -recursive infra/azure
	$(CHECKOV) -d infra/azure --framework terraform --skip-download --compact --quiet
	$(PYTEST) -q tests/infra/test_azure.py

fmt-infra-azure:
	$(TERRAFORM) fmt -recursive infra/azure

deploy-azure:
	infra/azure/deploy.sh
