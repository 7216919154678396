# GCP: the Cloud Run service (functions/gcp) and its Terraform module (infra/gcp).
#   make test-gcp         handler + Firestore emulator tests (starts the local servers)
#   make test-infra-gcp   terraform fmt, checkov, structural trigger/method test
#   make package-gcp      the Cloud Run image (functions/gcp/Dockerfile) with Docker, tagged GCP_IMAGE
#   make binary-gcp       the release binary alone and its size (no Docker needed)
#   make deploy-gcp       first or later deployment: image, apply, Slack secret, apply (infra/gcp/deploy.sh)
.PHONY: test-gcp test-infra-gcp package-gcp binary-gcp deploy-gcp

GCP_IMAGE ?= snapwatch-gcp:local

test-gcp:
	tests/servers/with-servers.sh $(CARGO) nextest run -p snapwatch-gcp --no-fail-fast

test-infra-gcp:
	TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive infra/gcp
	.tools/checkov/bin/checkov -d infra/gcp --framework terraform --skip-download --compact --quiet
	.tools/venv/bin/python -m pytest -q tests/infra/test_gcp.py

package-gcp:
	@command -v docker >/dev/null 2>&1 || { echo "package-gcp: Docker is not installed; make deploy-gcp builds the image with Cloud Build instead"; exit 1; }
	docker build -f functions/gcp/Dockerfile -t $(GCP_IMAGE) .

deploy-gcp:
	infra/gcp/deploy.sh

binary-gcp:
	$(CARGO) build --release -p snapwatch-gcp
	@ls -l target/release/snapwatch-gcp | awk '{print "snapwatch-gcp release binary:", $$5, "bytes"}'
