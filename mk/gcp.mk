# GCP: the Cloud Run service (functions/gcp) and its Terraform module (infra/gcp).
#   make test-gcp         handler + Firestore emulator tests (starts the local servers)
#   make test-infra-gcp   terraform fmt, checkov, structural trigger/method test
#   make package-gcp      release binary and its size (the image itself needs Docker: see Dockerfile)
.PHONY: test-gcp test-infra-gcp package-gcp

test-gcp:
	tests/servers/with-servers.sh $(CARGO) nextest run -p snapwatch-gcp --no-fail-fast

test-infra-gcp:
	TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive infra/gcp
	.tools/checkov/bin/checkov -d infra/gcp --framework terraform --skip-download --compact --quiet
	.tools/venv/bin/python -m pytest -q tests/infra/test_gcp.py

package-gcp:
	$(CARGO) build --release -p snapwatch-gcp
	@ls -l target/release/snapwatch-gcp | awk '{print "snapwatch-gcp release binary:", $$5, "bytes"}'
