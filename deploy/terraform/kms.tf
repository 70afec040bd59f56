# Two customer-managed keys, both rotated yearly:
#   database: Aurora storage, snapshots, Performance Insights, the RDS-managed master password
#             secret and the PostgreSQL log group;
#   secrets:  the wrapping-key, custodian and tenant-KEK secrets. Each principal may decrypt through
#             Secrets Manager only, and only for its own secret (encryption context SecretARN);
#             the secrets' resource policies (secrets.tf) in addition deny reading a secret to
#             anyone but its one reader.

data "aws_iam_policy_document" "kms_database" {
  # checkov:skip=CKV_AWS_109:Standard KMS key-policy statement: "*" in a key policy is this key only; the account root grant lets IAM policies delegate and keeps the key manageable (AWS's default key policy).
  # checkov:skip=CKV_AWS_111:Same statement: resource "*" in a key policy means this key, not every resource.
  # checkov:skip=CKV_AWS_356:Same statement: resource "*" in a key policy means this key, not every resource.
  statement {
    sid       = "AccountAdministration"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid    = "CloudWatchLogsForTheDatabaseLogGroup"
    effect = "Allow"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws/rds/cluster/${local.cluster_identifier}/*"]
    }
  }
}

resource "aws_kms_key" "database" {
  description             = "${var.name}: Aurora storage, snapshots, Performance Insights, master password secret, logs"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_database.json
}

resource "aws_kms_alias" "database" {
  name          = "alias/${var.name}-database"
  target_key_id = aws_kms_key.database.key_id
}

data "aws_iam_policy_document" "kms_secrets" {
  # checkov:skip=CKV_AWS_109:Standard KMS key-policy statement: "*" in a key policy is this key only; the account root grant lets IAM policies delegate and keeps the key manageable (AWS's default key policy).
  # checkov:skip=CKV_AWS_111:Same statement: resource "*" in a key policy means this key, not every resource.
  # checkov:skip=CKV_AWS_356:Same statement: resource "*" in a key policy means this key, not every resource.
  statement {
    sid       = "AccountAdministration"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # The pods' kms:Decrypt is granted by their IAM role policy (iam.tf), which this account-root
  # statement enables, with the same ViaService and SecretARN conditions.

  # Custodian i: its own share secret only (read and write), through Secrets Manager.
  dynamic "statement" {
    for_each = { for i, arn in var.custodian_principal_arns : i => arn }
    content {
      sid       = "Custodian${statement.key + 1}OwnShareOnly"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = [statement.value]
      }
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
      condition {
        test     = "StringLike"
        variable = "kms:EncryptionContext:SecretARN"
        values   = ["${local.secret_arn_prefix}:${local.custodian_secret_names[statement.key]}-??????"]
      }
    }
  }
}

resource "aws_kms_key" "secrets" {
  description             = "${var.name}: wrapping-key, share-custodian and tenant-KEK secrets"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_secrets.json

  lifecycle {
    precondition {
      condition     = length(var.custodian_principal_arns) == var.custodian_count
      error_message = "custodian_principal_arns must list exactly custodian_count principals (one per share)."
    }
  }
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.name}-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}
