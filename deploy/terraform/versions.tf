terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }

  # No backend here on purpose: each environment configures its own remote state (an encrypted,
  # versioned S3 bucket with locking), e.g. `terraform init -backend-config=prod.s3.tfbackend`
  # with a `backend "s3" {}` block added in a file of the environment's own. The state holds no
  # secret values (see README.md), but it does hold ARNs and endpoints.
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      "app.kubernetes.io/part-of" = "strongroom"
      "strongroom:deployment"     = var.name
    })
  }
}
