# Strongroom on AWS: Aurora PostgreSQL (aurora.tf), KMS keys (kms.tf), Secrets Manager entries
# for the operational wrapping key and the share custodians (secrets.tf), and the IRSA role of
# the pods (iam.tf). Terraform creates the secrets' containers and policies only: no key or
# share ever passes through Terraform or its state (README.md, "Filling the secrets").

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # oidc.eks.<region>.amazonaws.com/id/<id>: the issuer host/path the trust conditions key on.
  oidc_issuer = element(split("oidc-provider/", var.eks_oidc_provider_arn), 1)

  wrapping_secret_name   = "${var.name}/wrapping-key"
  custodian_secret_names = [for i in range(var.custodian_count) : "${var.name}/custodian-${i + 1}"]
  # Tenant key-encryption keys: the pods create one secret per tenant under this prefix
  # (STRONGROOM_TENANT_KEYS=aws-secretsmanager:<prefix>) and force-delete it on TenantDelete.
  tenant_kek_prefix = "${var.name}/tenant-keks/"

  # Secret ARNs end in a random 6-character suffix; key policies match on these patterns so the
  # keys need not depend on the secrets (which depend on the keys).
  secret_arn_prefix = "arn:${local.partition}:secretsmanager:${var.region}:${local.account_id}:secret"

  cluster_identifier = var.name
}
