variable "name" {
  description = "Name prefix for every resource (cluster identifier, secrets, role, keys). Lowercase letters, digits and hyphens."
  type        = string
  default     = "strongroom"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "AWS region to deploy into, e.g. eu-west-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like eu-west-1."
  }
}

variable "vpc_id" {
  description = "VPC that holds the EKS cluster and the database subnets."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (no route to an internet gateway) for the Aurora cluster, in at least two availability zones."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "private_subnet_ids needs at least two subnet ids (subnet-...), in different availability zones."
  }
}

variable "client_security_group_ids" {
  description = "Security groups allowed to reach PostgreSQL on 5432: the EKS node security group, or the pod security group when security groups for pods are used. Nothing else can connect."
  type        = list(string)

  validation {
    condition     = length(var.client_security_group_ids) >= 1 && alltrue([for s in var.client_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "client_security_group_ids needs at least one security group id (sg-...)."
  }
}

variable "eks_oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>), trusted for IRSA."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.eks_oidc_provider_arn))
    error_message = "eks_oidc_provider_arn must be an IAM OIDC provider ARN."
  }
}

variable "k8s_namespace" {
  description = "Kubernetes namespace the Strongroom pods run in (the kustomize overlay's namespace)."
  type        = string
  default     = "strongroom"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.k8s_namespace))
    error_message = "k8s_namespace must be a DNS-1123 label."
  }
}

variable "k8s_service_account" {
  description = "Kubernetes ServiceAccount of the server pods (deploy/k8s/serviceaccount.yaml). Only this account in k8s_namespace may assume the pod role."
  type        = string
  default     = "strongroom"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.k8s_service_account))
    error_message = "k8s_service_account must be a DNS-1123 subdomain."
  }
}

variable "engine_version" {
  description = "Aurora PostgreSQL engine version; must be a 15.x release available in the region."
  type        = string
  default     = "15.10"

  validation {
    condition     = can(regex("^15\\.[0-9]+$", var.engine_version))
    error_message = "engine_version must be an Aurora PostgreSQL 15.x version, e.g. 15.10."
  }
}

variable "instance_class" {
  description = "Instance class of the Aurora instances."
  type        = string
  default     = "db.r6g.large"

  validation {
    condition     = can(regex("^db\\.", var.instance_class))
    error_message = "instance_class must be an RDS instance class (db.*)."
  }
}

variable "instance_count" {
  description = "Number of Aurora instances: one writer plus readers, spread over the subnets' availability zones. 2 or more for failover."
  type        = number
  default     = 2

  validation {
    condition     = var.instance_count >= 1 && var.instance_count <= 15 && floor(var.instance_count) == var.instance_count
    error_message = "instance_count must be a whole number from 1 to 15."
  }
}

variable "database_name" {
  description = "Name of the database Strongroom uses."
  type        = string
  default     = "strongroom"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.database_name))
    error_message = "database_name must start with a letter and hold only lowercase letters, digits and underscores (max 63)."
  }
}

variable "master_username" {
  description = "Aurora master user. Its password is generated and kept by RDS in Secrets Manager (never in Terraform state). Strongroom itself should use a separate login role (README.md)."
  type        = string
  default     = "strongroom_admin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,15}$", var.master_username)) && !contains(["postgres", "admin", "rdsadmin"], var.master_username)
    error_message = "master_username must be 1-16 lowercase letters, digits or underscores, start with a letter, and not be a reserved name."
  }
}

variable "backup_retention_days" {
  description = "Days Aurora keeps automated backups (point-in-time recovery window)."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "preferred_backup_window" {
  description = "Daily UTC window for automated backups (hh24:mi-hh24:mi), outside the maintenance window."
  type        = string
  default     = "02:00-03:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$", var.preferred_backup_window))
    error_message = "preferred_backup_window must look like 02:00-03:00."
  }
}

variable "preferred_maintenance_window" {
  description = "Weekly UTC maintenance window (ddd:hh24:mi-ddd:hh24:mi)."
  type        = string
  default     = "sun:04:00-sun:05:00"

  validation {
    condition     = can(regex("^(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]$", var.preferred_maintenance_window))
    error_message = "preferred_maintenance_window must look like sun:04:00-sun:05:00."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the PostgreSQL logs (one of CloudWatch's allowed values)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "custodian_count" {
  description = "Number of share custodians: one Secrets Manager secret each, holding that custodian's unseal key share. Matches `strongroom init --shares`."
  type        = number
  default     = 3

  validation {
    condition     = var.custodian_count >= 2 && var.custodian_count <= 10 && floor(var.custodian_count) == var.custodian_count
    error_message = "custodian_count must be a whole number from 2 to 10."
  }
}

variable "custodian_principal_arns" {
  description = "One IAM principal ARN (role or user) per custodian, in share order: principal i alone may read and write custodian secret i. Must hold custodian_count distinct ARNs, none of them the pod role."
  type        = list(string)

  validation {
    condition     = length(var.custodian_principal_arns) == length(distinct(var.custodian_principal_arns)) && alltrue([for a in var.custodian_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "custodian_principal_arns must be distinct IAM role or user ARNs."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored (7-30). Losing the wrapping key or the shares loses the data."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30
    error_message = "secret_recovery_window_days must be between 7 and 30."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a scheduled KMS key deletion takes effect (7-30)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags added to every resource (through the provider's default_tags)."
  type        = map(string)
  default     = {}
}
