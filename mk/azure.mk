# Azure: the custom handler package and the infrastructure checks. Included by the Makefile.

AZURE_PACKAGE := target/azure/package
AZURE_ZIP := target/azure/snapwatch-azure.zip
PYTHON ?= .tools/venv/bin/python
CHECKOV ?= .tools/checkov/bin/checkov

.PHONY: package-azure test-azure test-infra-azure

# Deployable folder and zip: host.json, one folder per function with its function.json, and the
# handler binary at the root (host.json's defaultExecutablePath).
package-azure:
	$(CARGO) build --release -p snapwatch-azure --bin snapwatch-azure
	rm -rf $(AZURE_PACKAGE) $(AZURE_ZIP)
	mkdir -p $(AZURE_PACKAGE)
	cp -R functions/azure/app/. $(AZURE_PACKAGE)/
	cp target/release/snapwatch-azure $(AZURE_PACKAGE)/snapwatch-azure
	chmod 755 $(AZURE_PACKAGE)/snapwatch-azure
	cd $(AZURE_PACKAGE) && zip -q -r -X ../snapwatch-azure.zip .
	@ls -l $(AZURE_PACKAGE)/snapwatch-azure $(AZURE_ZIP)

# The Rust tests of the Azure crate, with Azurite started for the Table Storage ones.
test-azure:
	tests/servers/with-servers.sh $(CARGO) nextest run -p snapwatch-azure --no-fail-fast

test-infra-azure:
	terraform fmt -check -recursive infra/azure
	$(CHECKOV) -d infra/azure --framework terraform --skip-download --compact --quiet
	$(PYTHON) -m pytest -q tests/infra/test_azure.py
