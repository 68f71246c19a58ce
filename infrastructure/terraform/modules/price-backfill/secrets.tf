# The database and provider secrets are normally created elsewhere and referenced by ARN. These
# optional ones are created empty: put the value with
#   aws secretsmanager put-secret-value --secret-id <arn> --secret-string file://secret.json
# Terraform never sees a secret value (nothing lands in the state).

resource "aws_secretsmanager_secret" "database" {
  count = var.create_database_secret ? 1 : 0

  name        = "${var.name}/database"
  description = "price-backfill database: RDS shape (host, port, username, password, dbname) or {\"url\": \"postgres://...\"}"
  kms_key_id  = var.secrets_kms_key_arn
  tags        = var.tags
}

resource "aws_secretsmanager_secret" "provider" {
  count = var.create_provider_secret ? 1 : 0

  name        = "${var.name}/provider"
  description = "price-backfill price provider key (Polygon): a plain string or {\"api_key\": \"...\"}"
  kms_key_id  = var.secrets_kms_key_arn
  tags        = var.tags
}
