# A member account (and the central account too): forwards the events snapwatch consumes from
# EVERY region to the central bus. CloudTrail logs a call in the region where it happens
# (CopySnapshot in the destination region), so a region without a forwarder is a blind spot.
#
# These are the 17 regions enabled by default. Add a provider + module pair for each opt-in
# region you enabled (af-south-1, ap-east-1, eu-south-1, me-south-1, …), or deny the regions you
# do not use with an SCP. Terraform cannot loop over providers, hence one block per region.

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 6.0"
    }
  }
}

variable "central_event_bus_arn" {
  description = "Output central_event_bus_arn of the central example."
  type        = string
}

# IAM is global: one role for every region's forwarder.
provider "aws" {
  region = "us-east-1"
}

module "forwarder_role" {
  source = "../../../modules/forwarder-role"

  central_event_bus_arn = var.central_event_bus_arn
}

provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
}

module "forward_us_east_1" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.us_east_1 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "us_east_2"
  region = "us-east-2"
}

module "forward_us_east_2" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.us_east_2 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "us_west_1"
  region = "us-west-1"
}

module "forward_us_west_1" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.us_west_1 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "us_west_2"
  region = "us-west-2"
}

module "forward_us_west_2" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.us_west_2 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "ca_central_1"
  region = "ca-central-1"
}

module "forward_ca_central_1" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.ca_central_1 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "sa_east_1"
  region = "sa-east-1"
}

module "forward_sa_east_1" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.sa_east_1 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"
}

module "forward_eu_west_1" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.eu_west_1 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "eu_west_2"
  region = "eu-west-2"
}

module "forward_eu_west_2" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.eu_west_2 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "eu_west_3"
  region = "eu-west-3"
}

module "forward_eu_west_3" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.eu_west_3 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "eu_central_1"
  region = "eu-central-1"
}

module "forward_eu_central_1" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.eu_central_1 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "eu_north_1"
  region = "eu-north-1"
}

module "forward_eu_north_1" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.eu_north_1 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "ap_south_1"
  region = "ap-south-1"
}

module "forward_ap_south_1" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.ap_south_1 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "ap_northeast_1"
  region = "ap-northeast-1"
}

module "forward_ap_northeast_1" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.ap_northeast_1 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "ap_northeast_2"
  region = "ap-northeast-2"
}

module "forward_ap_northeast_2" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.ap_northeast_2 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "ap_northeast_3"
  region = "ap-northeast-3"
}

module "forward_ap_northeast_3" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.ap_northeast_3 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "ap_southeast_1"
  region = "ap-southeast-1"
}

module "forward_ap_southeast_1" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.ap_southeast_1 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}

provider "aws" {
  alias  = "ap_southeast_2"
  region = "ap-southeast-2"
}

module "forward_ap_southeast_2" {
  source    = "../../../modules/forwarder"
  providers = { aws = aws.ap_southeast_2 }

  central_event_bus_arn = var.central_event_bus_arn
  forwarding_role_arn   = module.forwarder_role.role_arn
}
