# AWS Lambda functions (functions/aws). `make package-aws` builds the deployment zips the Terraform
# module uploads (arm64, provided.al2023): target/lambda/snapwatch-aws/bootstrap.zip (events) and
# target/lambda/snapwatch-aws-baseline/bootstrap.zip (the scheduled snapshot baseline).
# cargo-lambda and zig come from the venv, installed on first use (the `make tools` step).
AWS_LAMBDA_ARCH ?= --arm64
AWS_LAMBDA_PROFILE ?= lambda
CARGO_LAMBDA := PATH="$(CURDIR)/$(TOOLS)/venv/bin:$$PATH" $(TOOLS)/venv/bin/cargo-lambda lambda

.PHONY: package-aws test-fn-aws

package-aws: $(TOOLS)/venv/.done
	$(CARGO_LAMBDA) build --profile $(AWS_LAMBDA_PROFILE) $(AWS_LAMBDA_ARCH) --output-format zip -p snapwatch-aws
	@ls -l target/lambda/snapwatch-aws/bootstrap.zip target/lambda/snapwatch-aws-baseline/bootstrap.zip

# The function's own tests: handler tests without network, the store conformance suite and whole
# chains against moto + dynalite, and the real Lambda runtime under `cargo lambda watch`.
test-fn-aws:
	tests/servers/with-servers.sh $(CARGO) nextest run -p snapwatch-aws --no-fail-fast
