terraform {
  # Preconditions need 1.2; 1.5 is the oldest release this was written against. The example root
  # pins the provider further.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.40: Lambda `logging_config` (JSON logs into a named log group) and Scheduler targets.
      version = ">= 5.40, < 7.0"
    }
  }
}
