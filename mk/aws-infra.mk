# Terraform module infra/aws: formatting, validation, checkov and an apply against moto.
# `make test-infra-aws` runs all of it under the local servers (tests/infra/test_aws.py, ~2 min).

AWS_INFRA_PYTEST ?= .tools/venv/bin/python -m pytest

.PHONY: test-infra-aws fmt-infra-aws

test-infra-aws:
	tests/servers/with-servers.sh $(AWS_INFRA_PYTEST) tests/infra/test_aws.py -q -p no:cacheprovider

fmt-infra-aws:
	terraform fmt -recursive infra/aws
