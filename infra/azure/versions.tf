terraform {
  required_version = ">= 1.5"

  required_providers {
    # 4.40: the system topic's `source_resource_id` (earlier 4.x call it source_arm_resource_id).
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.40, < 5.0"
    }
    # time_sleep: waiting for RBAC propagation on a first apply.
    time = {
      source  = "hashicorp/time"
      version = ">= 0.9, < 1.0"
    }
  }
}
