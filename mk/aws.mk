# AWS: the Lambda functions (functions/aws) and their Terraform module (infra/aws). Included by
# the Makefile, which defines the tool variables ($(CARGO), $(CARGO_LAMBDA), $(PYTEST), …).
#   make package-aws      the deployment zips the module uploads (arm64, provided.al2023):
#                         target/lambda/snapwatch-aws/bootstrap.zip (events) and
#                         target/lambda/snapwatch-aws-baseline/bootstrap.zip (snapshot baseline) and
#                         target/lambda/snapwatch-aws-archive/bootstrap.zip (CloudTrail archive reader)
#   make test-aws         the function's own tests under the local servers
#   make test-infra-aws   terraform fmt, validate, checkov and an apply against moto (~2 min)
#   make fmt-infra-aws    terraform fmt over infra/aws
.PHONY: package-aws test-aws test-infra-aws fmt-infra-aws

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
