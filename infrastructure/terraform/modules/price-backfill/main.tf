# price-backfill on AWS: three Lambda functions (select-tickers, fetch-batch, finalize-run), the
# Step Functions state machine of statemachine/backfill.asl.json, an EventBridge Scheduler schedule,
# notifications and an alarm. Files: lambda.tf, iam.tf, state_machine.tf, schedule.tf,
# notifications.tf, secrets.tf.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id

  # The state machine's own ARNs, built from its name: its role must name them before it exists
  # (Distributed Map child executions are executions of this same state machine).
  state_machine_arn    = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${var.name}"
  execution_arn_prefix = "arn:${local.partition}:states:${local.region}:${local.account_id}:execution:${var.name}"
  map_run_arn_prefix   = "arn:${local.partition}:states:${local.region}:${local.account_id}:mapRun:${var.name}"

  # The definition: the one ASL file, deployed and run locally alike.
  definition_template = "${path.module}/../../../../statemachine/backfill.asl.json"

  database_secret_arn = var.create_database_secret ? aws_secretsmanager_secret.database[0].arn : var.database_secret_arn
  provider_secret_arn = var.create_provider_secret ? aws_secretsmanager_secret.provider[0].arn : var.provider_secret_arn

  # Environment (shared/src/config.rs); null values are left out, so the functions' defaults apply.
  # PGSSLMODE and PGSSLROOTCERT are libpq's; Lambda unpacks the zip into /var/task.
  common_environment = {
    DATABASE_SECRET_ARN = local.database_secret_arn
    RUST_LOG            = var.log_level
    PGSSLMODE           = var.database_ssl_mode
    PGSSLROOTCERT       = var.database_ca_bundle_file == null || var.database_ca_bundle_file == "" ? null : "/var/task/${var.database_ca_bundle_file}"
  }
  provider_environment = {
    PRICE_PROVIDER               = var.price_provider
    BACKFILL_START_DATE          = var.backfill_start_date
    PROVIDER_REQUESTS_PER_MINUTE = var.provider_requests_per_minute == null ? null : tostring(var.provider_requests_per_minute)
    PROVIDER_SECRET_ARN          = local.provider_secret_arn
  }
  # What the functions that call the provider see, and what finalize-run (no provider) sees.
  provider_function_environment = tomap({
    for k, v in merge(local.common_environment, local.provider_environment, var.extra_environment) : k => v if v != null
  })
  database_only_environment = tomap({
    for k, v in merge(local.common_environment, var.extra_environment) : k => v if v != null
  })

  # One entry per folder under functions/ (infrastructure/tests checks it). What each one calls:
  # select-tickers validates the provider's range (so it may read the provider key) and writes the
  # plan; fetch-batch fetches and writes bars; finalize-run only reads and closes the run.
  functions = {
    "select-tickers" = {
      description          = "price-backfill: validate a run request, store the run and its batches, return batch descriptors"
      memory_mb            = var.select_tickers_memory_mb
      timeout_seconds      = var.select_tickers_timeout_seconds
      reserved_concurrency = var.select_tickers_reserved_concurrency
      secret_arns          = compact([local.database_secret_arn, local.provider_secret_arn])
      environment          = local.provider_function_environment
    }
    "fetch-batch" = {
      description          = "price-backfill: fetch and upsert one batch of tickers, paced; returns done, partial, rate_limited, unavailable or stalled"
      memory_mb            = var.fetch_batch_memory_mb
      timeout_seconds      = var.fetch_batch_timeout_seconds
      reserved_concurrency = var.fetch_batch_reserved_concurrency
      secret_arns          = compact([local.database_secret_arn, local.provider_secret_arn])
      environment          = local.provider_function_environment
    }
    "finalize-run" = {
      description          = "price-backfill: close a run and summarise it"
      memory_mb            = var.finalize_run_memory_mb
      timeout_seconds      = var.finalize_run_timeout_seconds
      reserved_concurrency = var.finalize_run_reserved_concurrency
      secret_arns          = compact([local.database_secret_arn])
      environment          = local.database_only_environment
    }
  }

  vpc_enabled = length(var.vpc_subnet_ids) > 0
}
