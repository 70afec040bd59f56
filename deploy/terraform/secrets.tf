# Secrets Manager entries, encrypted with the `secrets` KMS key. Terraform creates the empty
# containers and their policies; the values are put by the key ceremony (README.md), so no key
# material is in Terraform's plan or state.
#
#   <name>/wrapping-key      the operational wrapping key that auto-unseal reads
#                            (STRONGROOM_UNSEAL_SOURCE=aws-secretsmanager:<arn>); readable by
#                            the pod role only.
#   <name>/custodian-<i>     custodian i's unseal key share; readable and writable by custodian
#                            principal i only. Never by the pods: the shares are the break-glass
#                            path when the wrapping key is lost or revoked.

resource "aws_secretsmanager_secret" "wrapping_key" {
  # checkov:skip=CKV2_AWS_57:Not rotated by a Secrets Manager Lambda: replacing the wrapping key means re-wrapping the master key inside Strongroom (docs/operations.md, rotation), which a generic rotation Lambda cannot do.
  name                    = local.wrapping_secret_name
  description             = "${var.name}: operational wrapping key for auto-unseal (value set by the key ceremony, never by Terraform)"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

data "aws_iam_policy_document" "wrapping_key" {
  # Only the pod role reads the value; everyone else, administrators included, is denied
  # (they can still change this policy, which CloudTrail records).
  statement {
    sid       = "PodsRead"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [aws_secretsmanager_secret.wrapping_key.arn]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.pods.arn]
    }
  }

  statement {
    sid       = "NobodyElseReads"
    effect    = "Deny"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.wrapping_key.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = [aws_iam_role.pods.arn]
    }
  }
}

resource "aws_secretsmanager_secret_policy" "wrapping_key" {
  secret_arn          = aws_secretsmanager_secret.wrapping_key.arn
  policy              = data.aws_iam_policy_document.wrapping_key.json
  block_public_policy = true
}

resource "aws_secretsmanager_secret" "custodian" {
  # checkov:skip=CKV2_AWS_57:A key share is not rotatable on its own: new shares come only from a re-key ceremony that replaces all of them together (docs/operations.md), never from a rotation Lambda.
  count                   = var.custodian_count
  name                    = local.custodian_secret_names[count.index]
  description             = "${var.name}: unseal key share of custodian ${count.index + 1} (value set by that custodian only)"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.secret_recovery_window_days

  lifecycle {
    precondition {
      condition     = length(var.custodian_principal_arns) == var.custodian_count
      error_message = "custodian_principal_arns must list exactly custodian_count principals (one per share)."
    }
  }
}

data "aws_iam_policy_document" "custodian" {
  count = var.custodian_count

  statement {
    sid    = "CustodianOwnsShare"
    effect = "Allow"
    actions = [
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:DescribeSecret",
    ]
    resources = [aws_secretsmanager_secret.custodian[count.index].arn]
    principals {
      type        = "AWS"
      identifiers = [var.custodian_principal_arns[count.index]]
    }
  }

  # Nobody else reads or overwrites this share: not the pods, not the other custodians, not
  # administrators (who can still change this policy, which CloudTrail records).
  statement {
    sid       = "NobodyElseReadsOrWrites"
    effect    = "Deny"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
    resources = [aws_secretsmanager_secret.custodian[count.index].arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = [var.custodian_principal_arns[count.index]]
    }
  }
}

resource "aws_secretsmanager_secret_policy" "custodian" {
  count               = var.custodian_count
  secret_arn          = aws_secretsmanager_secret.custodian[count.index].arn
  policy              = data.aws_iam_policy_document.custodian[count.index].json
  block_public_policy = true
}
