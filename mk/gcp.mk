# GCP: the Cloud Run service (functions/gcp) and its Terraform module (infra/gcp). Included by
# the Makefile, which defines the tool variables ($(CARGO), $(PYTEST), $(CHECKOV), …).
#   make package-gcp      the Cloud Run image (functions/gcp/Dockerfile) with Docker, tagged GCP_IMAGE
#   make binary-gcp       the release binary alone and its size (no Docker needed)
#   make test-gcp         handler + Firestore emulator tests (starts the local servers)
#   make test-infra-gcp   terraform fmt -check, checkov, structural trigger/method test
#   make fmt-infra-gcp    terraform fmt over infra/gcp
#   make deploy-gcp       first or later deployment: image, apply, Slack secret, apply (infra/gcp/deploy.sh)
.PHONY: package-gcp binary-gcp test-gcp test-infra-gcp fmt-infra-gcp deploy-gcp

GCP_IMAGE ?= snapwatch-gcp:local

package-gcp:
	@command -v docker >/dev/null 2>&1 || { echo "package-gcp: Docker is not installed; make deploy-gcp builds the image with Cloud Build instead"; exit 1; }
	docker build -f functions/gcp/Dockerfile -t $(GCP_IMAGE) .

binary-gcp:
	$(CARGO) build --release -p snapwatch-gcp
	@ls -l target/release/snapwatch-gcp | awk '{print "snapwatch-gcp release binary:", $$5, "bytes"}'

test-gcp:
	$(WITH_SERVERS) $(CARGO) $(TEST_RUNNER) -p snapwatch-gcp -p snapwatch-gcp-inventory

test-infra-gcp:
	TF_CLI_CONFIG_FILE=/dev/null $(TERRAFORM) fmt -check -recursive infra/gcp
	$(CHECKOV) -d infra/gcp --framework terraform --skip-download --compact --quiet
	$(PYTEST) -q tests/infra/test_gcp.py

fmt-infra-gcp:
	$(TERRAFORM) fmt -recursive infra/gcp

deploy-gcp:
	infra/gcp/deploy.sh
