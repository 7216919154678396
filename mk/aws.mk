# AWS: the Lambda functions (functions/aws) and their Terraform module (infra/aws). Included by
# the Makefile, which defines the tool variables ($(CARGO), $(CARGO_LAMBDA), $(PYTEST), …).
#   make package-aws      the deployment zips the module uploads (arm64, provided.al2023):
#                         target/lambda/snapwatch-aws/bootstrap.zip (events) and
#                         target/lambda/snapwatch-aws-baseline/bootstrap.zip (snapshot baseline) and
#                         target/lambda/snapwatch-aws-archive/bootstrap.zip (CloudTrail archive reader)
#   make test-aws         the function's own tests under the local servers
#   make test-infra-aws   terraform fmt, validate, checkov and an apply against moto (~2 min)
#   make fmt-infra-aws    terraform fmt over infra/aws
#   make load-aws         the organization load test (not part of `make test`; a few minutes)
.PHONY: package-aws test-aws test-infra-aws fmt-infra-aws load-aws

AWS_LAMBDA_ARCH ?= --arm64
AWS_LAMBDA_PROFILE ?= lambda

package-aws: $(TOOLS)/venv/.done
	$(CARGO_LAMBDA) build --profile $(AWS_LAMBDA_PROFILE) $(AWS_LAMBDA_ARCH) --output-format zip -p snapwatch-aws
	@ls -l target/lambda/snapwatch-aws/bootstrap.zip target/lambda/snapwatch-aws-baseline/bootstrap.zip target/lambda/snapwatch-aws-archive/bootstrap.zip

# Handler tests without network, the store conformance suite and whole chains against moto +
# dynalite, and the real Lambda runtime under `cargo lambda watch`.
test-aws:
	$(WITH_SERVERS) $(CARGO) $(TEST_RUNNER) -p snapwatch-aws

# tests/infra/test_aws.py runs fmt, validate and checkov itself, then applies against moto.
test-infra-aws:
	$(WITH_SERVERS) $(PYTEST) tests/infra/test_aws.py -q -p no:cacheprovider

fmt-infra-aws:
	$(TERRAFORM) fmt -recursive infra/aws

# The organization load test: a generated day of LOAD_ACCOUNTS × LOAD_REGIONS (the bench's
# realistic mix, LOAD_RECORDS records of it) replayed through the event function at each of
# LOAD_CONCURRENCY concurrent invocations, against dynalite that the driver starts with a
# persistent path and restarts once mid-run (LOAD_SERVER=moto: against moto instead, without the
# restart; moto answers a failed conditional write as DynamoDB does, dynalite does not). Prints
# the figures; exits non-zero if a fact is lost or a planted chain does not alert exactly once.
# Debug build (no release of this crate).
LOAD_RECORDS ?= 1000000
LOAD_ACCOUNTS ?= 1000
LOAD_REGIONS ?= 17
LOAD_CONCURRENCY ?= 8,32
LOAD_SERVER ?= dynalite
LOAD_DIR ?= target/load
LOAD_MIX := $(LOAD_DIR)/org-$(LOAD_RECORDS)-$(LOAD_ACCOUNTS)x$(LOAD_REGIONS).jsonl

load-aws:
	@test -e $(TOOLS)/node/node_modules/dynalite/cli.js || { echo "load-aws: dynalite is missing: run 'make tools' first" >&2; exit 1; }
	$(CARGO) build -q -p snapwatch-cli --example gen_cloudtrail
	$(CARGO) build -q -p snapwatch-aws --example org_load
	@mkdir -p $(LOAD_DIR)
	test -f $(LOAD_MIX) -a -f $(LOAD_MIX).chains || \
		target/debug/examples/gen_cloudtrail $(LOAD_RECORDS) $(LOAD_MIX) --days 1 --org $(LOAD_ACCOUNTS) $(LOAD_REGIONS)
	rm -rf $(LOAD_DIR)/dynalite
	LOAD_CONCURRENCY=$(LOAD_CONCURRENCY) LOAD_DIR=$(LOAD_DIR) \
		LOAD_DYNALITE=$(CURDIR)/$(TOOLS)/node/node_modules/dynalite/cli.js \
		LOAD_MOTO=$(if $(filter moto,$(LOAD_SERVER)),$(CURDIR)/$(TOOLS)/venv/bin/moto_server) \
		target/debug/examples/org_load $(LOAD_MIX)
