# The pods' role (IRSA): assumable only by the ServiceAccount <k8s_namespace>/<k8s_service_account>
# through the EKS cluster's OIDC provider. It may read the wrapping-key secret, and create, read
# and destroy the tenants' key-encryption keys under their own name prefix (crypto-shredding:
# TenantDelete force-deletes a tenant's secret), each through Secrets Manager and its KMS key;
# nothing else (not the custodian shares, not the database key).

data "aws_iam_policy_document" "pods_trust" {
  statement {
    sid     = "EksServiceAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.eks_oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.k8s_namespace}:${var.k8s_service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "pods" {
  name                 = "${var.name}-pods"
  description          = "${var.name} pods (IRSA): read the wrapping-key secret, manage tenant KEK secrets"
  assume_role_policy   = data.aws_iam_policy_document.pods_trust.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "pods" {
  statement {
    sid       = "ReadTheWrappingKeySecret"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [aws_secretsmanager_secret.wrapping_key.arn]
  }

  statement {
    sid       = "DecryptItThroughSecretsManager"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.secrets.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:SecretARN"
      values   = [aws_secretsmanager_secret.wrapping_key.arn]
    }
  }

  statement {
    sid    = "ManageTenantKeks"
    effect = "Allow"
    actions = [
      "secretsmanager:CreateSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:DescribeSecret",
      "secretsmanager:DeleteSecret",
    ]
    resources = ["${local.secret_arn_prefix}:${local.tenant_kek_prefix}*"]
  }

  statement {
    sid       = "EncryptTenantKeksThroughSecretsManager"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.secrets.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:SecretARN"
      values   = ["${local.secret_arn_prefix}:${local.tenant_kek_prefix}*"]
    }
  }
}

resource "aws_iam_role_policy" "pods" {
  name   = "wrapping-key-read-tenant-keks"
  role   = aws_iam_role.pods.id
  policy = data.aws_iam_policy_document.pods.json
}

# Enhanced Monitoring for the Aurora instances (OS metrics every 30 s).
data "aws_iam_policy_document" "rds_monitoring_trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name}-rds-monitoring"
  description        = "${var.name}: RDS Enhanced Monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_trust.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
