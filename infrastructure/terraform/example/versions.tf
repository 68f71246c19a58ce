terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }

  # State is local (terraform.tfstate here) unless you add a backend, e.g.
  #   backend "s3" {
  #     bucket       = "my-terraform-state"
  #     key          = "price-backfill/terraform.tfstate"
  #     region       = "us-east-1"
  #     use_lockfile = true
  #   }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Project = "price-backfill" }, var.tags)
  }
}
