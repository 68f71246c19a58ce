# An example root: the module with the zips `make package` leaves in target/lambda. `make deploy`
# applies it with your terraform.tfvars (copy terraform.tfvars.example).

locals {
  artifacts_dir = "${path.root}/../../../target/lambda"
  # `make package` writes the architecture it built for (arm64, or x86_64 when it fell back).
  architecture = coalesce(var.architecture, try(trimspace(file("${local.artifacts_dir}/ARCH")), null), "arm64")
}

module "price_backfill" {
  source = "../modules/price-backfill"

  name                 = var.name
  lambda_artifacts_dir = local.artifacts_dir
  architecture         = local.architecture

  database_secret_arn    = var.database_secret_arn
  create_database_secret = var.create_database_secret
  provider_secret_arn    = var.provider_secret_arn
  create_provider_secret = var.create_provider_secret
  secrets_kms_key_arn    = var.secrets_kms_key_arn

  database_ssl_mode       = var.database_ssl_mode
  database_ca_bundle_file = var.database_ca_bundle_file

  price_provider               = var.price_provider
  backfill_start_date          = var.backfill_start_date
  provider_requests_per_minute = var.provider_requests_per_minute
  log_level                    = var.log_level
  extra_environment            = var.extra_environment

  fetch_batch_memory_mb            = var.fetch_batch_memory_mb
  fetch_batch_reserved_concurrency = var.fetch_batch_reserved_concurrency

  transient_fault_retry_budget_seconds = var.transient_fault_retry_budget_seconds

  vpc_subnet_ids         = var.vpc_subnet_ids
  vpc_security_group_ids = var.vpc_security_group_ids

  kms_key_arn                              = var.kms_key_arn
  log_retention_days                       = var.log_retention_days
  state_machine_log_level                  = var.state_machine_log_level
  state_machine_log_include_execution_data = var.state_machine_log_include_execution_data
  enable_xray_tracing                      = var.enable_xray_tracing

  schedule_enabled       = var.schedule_enabled
  schedule_expression    = var.schedule_expression
  schedule_timezone      = var.schedule_timezone
  schedule_lookback_days = var.schedule_lookback_days
  schedule_input         = var.schedule_input

  notification_emails = var.notification_emails
  notify_on_success   = var.notify_on_success

  tags = var.tags
}
