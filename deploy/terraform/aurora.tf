# Aurora PostgreSQL 15: private subnets only, reachable on 5432 from the EKS security groups
# only, TLS required (rds.force_ssl), storage/snapshots/Performance Insights encrypted with the
# `database` KMS key, IAM database authentication on, deletion protection on, automated
# backups for point-in-time recovery, logs to a KMS-encrypted CloudWatch log group.

resource "aws_db_subnet_group" "this" {
  name        = var.name
  description = "${var.name}: private subnets of the Aurora cluster"
  subnet_ids  = var.private_subnet_ids
}

resource "aws_security_group" "database" {
  name        = "${var.name}-database"
  description = "${var.name} Aurora PostgreSQL: 5432 from the EKS node/pod security groups only"
  vpc_id      = var.vpc_id
  # No egress rule: the database initiates no connections.
}

resource "aws_vpc_security_group_ingress_rule" "database_from_clients" {
  for_each                     = toset(var.client_security_group_ids)
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from ${each.value}"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = each.value
}

resource "aws_rds_cluster_parameter_group" "this" {
  name        = "${var.name}-aurora-postgresql15"
  family      = "aurora-postgresql15"
  description = "${var.name}: TLS required; connections and DDL logged, never data statements"

  # Refuse every connection that is not TLS.
  parameter {
    name         = "rds.force_ssl"
    value        = "1"
    apply_method = "pending-reboot"
  }
  parameter {
    name         = "ssl_min_protocol_version"
    value        = "TLSv1.2"
    apply_method = "pending-reboot"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }
  # DDL only: data statements carry (encrypted) personal data and blind indexes.
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  # No duration/statement logging of data statements: with the extended protocol PostgreSQL
  # writes the bind parameters (tokens, blind indexes, ciphertext) next to them. Slow queries
  # are visible, normalised and parameter-free, in Performance Insights.
  parameter {
    name  = "log_min_duration_statement"
    value = "-1"
  }
}

resource "aws_cloudwatch_log_group" "postgresql" {
  # Aurora writes here once the export is enabled; created first to own retention and KMS.
  name              = "/aws/rds/cluster/${local.cluster_identifier}/postgresql"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.database.arn
}

resource "aws_rds_cluster" "this" {
  # checkov:skip=CKV2_AWS_8:Backups are Aurora's automated, KMS-encrypted continuous backups (backup_retention_period, point-in-time recovery) plus the documented pg_dump procedure (docs/operations.md); an AWS Backup plan is an organisation-level choice left to the account's own Terraform.
  cluster_identifier = local.cluster_identifier
  engine             = "aurora-postgresql"
  engine_mode        = "provisioned"
  engine_version     = var.engine_version
  database_name      = var.database_name
  port               = 5432

  master_username               = var.master_username
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.database.arn

  db_subnet_group_name            = aws_db_subnet_group.this.name
  vpc_security_group_ids          = [aws_security_group.database.id]
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.this.name

  storage_encrypted                   = true
  kms_key_id                          = aws_kms_key.database.arn
  iam_database_authentication_enabled = true
  deletion_protection                 = true
  copy_tags_to_snapshot               = true

  backup_retention_period      = var.backup_retention_days
  preferred_backup_window      = var.preferred_backup_window
  preferred_maintenance_window = var.preferred_maintenance_window
  skip_final_snapshot          = false
  final_snapshot_identifier    = "${var.name}-final"

  enabled_cloudwatch_logs_exports = ["postgresql"]

  depends_on = [aws_cloudwatch_log_group.postgresql]
}

resource "aws_rds_cluster_instance" "this" {
  count              = var.instance_count
  identifier         = "${var.name}-${count.index + 1}"
  cluster_identifier = aws_rds_cluster.this.id
  engine             = aws_rds_cluster.this.engine
  engine_version     = aws_rds_cluster.this.engine_version
  instance_class     = var.instance_class

  db_subnet_group_name       = aws_db_subnet_group.this.name
  publicly_accessible        = false
  auto_minor_version_upgrade = true
  copy_tags_to_snapshot      = true

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.database.arn
  performance_insights_retention_period = 7

  monitoring_interval = 30
  monitoring_role_arn = aws_iam_role.rds_monitoring.arn

  depends_on = [aws_iam_role_policy_attachment.rds_monitoring]
}
