output "cluster_endpoint" {
  description = "Writer endpoint of the Aurora cluster: the host part of DATABASE_URL (with sslmode=verify-full, see README.md)."
  value       = aws_rds_cluster.this.endpoint
}

output "cluster_reader_endpoint" {
  description = "Load-balanced reader endpoint (read replicas); Strongroom itself uses the writer endpoint today."
  value       = aws_rds_cluster.this.reader_endpoint
}

output "cluster_port" {
  description = "PostgreSQL port of the cluster."
  value       = aws_rds_cluster.this.port
}

output "database_name" {
  description = "Database Strongroom uses (the path of DATABASE_URL)."
  value       = aws_rds_cluster.this.database_name
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret, managed and rotated by RDS, holding the master user's password. For administrators creating the application role; not for the pods."
  value       = aws_rds_cluster.this.master_user_secret[0].secret_arn
}

output "database_security_group_id" {
  description = "Security group of the cluster (5432 in from client_security_group_ids only)."
  value       = aws_security_group.database.id
}

output "database_kms_key_arn" {
  description = "KMS key encrypting the cluster's storage, snapshots, Performance Insights, master secret and logs."
  value       = aws_kms_key.database.arn
}

output "secrets_kms_key_arn" {
  description = "KMS key encrypting the wrapping-key and custodian secrets."
  value       = aws_kms_key.secrets.arn
}

output "wrapping_key_secret_arn" {
  description = "Secrets Manager secret for the operational wrapping key; only the pod role can read it."
  value       = aws_secretsmanager_secret.wrapping_key.arn
}

output "unseal_source" {
  description = "Value for STRONGROOM_UNSEAL_SOURCE (key `source` of the Kubernetes Secret strongroom-unseal)."
  value       = "aws-secretsmanager:${aws_secretsmanager_secret.wrapping_key.arn}"
}

output "tenant_keys" {
  description = "Value for STRONGROOM_TENANT_KEYS (key `store` of the Kubernetes Secret strongroom-tenant-keys): tenants' KEKs as one secret each under this prefix."
  value       = "aws-secretsmanager:${local.tenant_kek_prefix}"
}

output "tenant_keys_kms_key_id" {
  description = "Value for STRONGROOM_TENANT_KEYS_KMS_KEY_ID (key `kms_key_id` of the Secret strongroom-tenant-keys): the KMS key tenant KEK secrets are encrypted under."
  value       = aws_kms_key.secrets.arn
}

output "custodian_secret_arns" {
  description = "Secrets Manager secrets for the key shares, in custodian order: secret i is readable and writable by custodian_principal_arns[i] only."
  value       = aws_secretsmanager_secret.custodian[*].arn
}

output "pod_role_arn" {
  description = "IAM role for the Strongroom pods (IRSA): put it in the eks.amazonaws.com/role-arn annotation of the strongroom ServiceAccount."
  value       = aws_iam_role.pods.arn
}
