# The example root's inputs; the module (../modules/price-backfill/variables.tf) documents each one
# and has a few more (per-function memory, timeouts and reserved concurrency).

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "State machine name and resource prefix."
  type        = string
  default     = "price-backfill"
}

variable "architecture" {
  description = "arm64 or x86_64; null: what `make package` built (target/lambda/ARCH), else arm64."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "database_secret_arn" {
  description = "Secrets Manager secret of the database. Required unless create_database_secret."
  type        = string
  default     = null
}

variable "create_database_secret" {
  description = "Create an empty database secret (put its value afterwards)."
  type        = bool
  default     = false
}

variable "provider_secret_arn" {
  description = "Secrets Manager secret with the Polygon API key (not needed for Yahoo)."
  type        = string
  default     = null
}

variable "create_provider_secret" {
  description = "Create an empty provider secret (put its value afterwards)."
  type        = bool
  default     = false
}

variable "secrets_kms_key_arn" {
  description = "Customer managed KMS key of the secrets, if any."
  type        = string
  default     = null
}

variable "database_ssl_mode" {
  description = "PGSSLMODE of the functions: disable, prefer, require, verify-ca or verify-full."
  type        = string
  default     = "require"
}

variable "database_ca_bundle_file" {
  description = "File name of the CA bundle `DATABASE_CA_BUNDLE=… make package` put in the zips (PGSSLROOTCERT=/var/task/<name>); null: none."
  type        = string
  default     = null
}

variable "price_provider" {
  description = "Default provider: yahoo or polygon."
  type        = string
  default     = "yahoo"
}

variable "backfill_start_date" {
  description = "Default start date (YYYY-MM-DD) of runs that give none."
  type        = string
  default     = null
}

variable "provider_requests_per_minute" {
  description = "Pacing per function instance (null: yahoo 30, polygon 5)."
  type        = number
  default     = null
}

variable "log_level" {
  description = "RUST_LOG of the functions."
  type        = string
  default     = "info"
}

variable "extra_environment" {
  description = "More (non-secret) environment for every function."
  type        = map(string)
  default     = {}
}

variable "fetch_batch_memory_mb" {
  description = "Memory of fetch-batch (MB)."
  type        = number
  default     = 128
}

variable "fetch_batch_reserved_concurrency" {
  description = "Reserved concurrency of fetch-batch (>= the max_concurrency of your runs; -1: none)."
  type        = number
  default     = 10
}

variable "vpc_subnet_ids" {
  description = "Private subnets for the functions; empty: no VPC."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of the functions in the VPC."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for logs, SNS, SQS, the schedule and the functions' environment; null: AWS managed."
  type        = string
  default     = null
}

variable "transient_fault_retry_budget_seconds" {
  description = "How long a Task retries transient errors in a row, on average (s)."
  type        = number
  default     = 1800
}

variable "log_retention_days" {
  description = "Retention of every log group (days)."
  type        = number
  default     = 30
}

variable "state_machine_log_level" {
  description = "ALL, ERROR, FATAL or OFF."
  type        = string
  default     = "ERROR"
}

variable "state_machine_log_include_execution_data" {
  description = "Log the states' input and output."
  type        = bool
  default     = false
}

variable "enable_xray_tracing" {
  description = "X-Ray tracing of the state machine and the functions."
  type        = bool
  default     = false
}

variable "schedule_enabled" {
  description = "Enable the scheduled backfill."
  type        = bool
  default     = false
}

variable "schedule_expression" {
  description = "cron(...) or rate(...) of the scheduled backfill."
  type        = string
  default     = "cron(0 6 ? * TUE-SAT *)"
}

variable "schedule_timezone" {
  description = "Time zone of schedule_expression."
  type        = string
  default     = "UTC"
}

variable "schedule_lookback_days" {
  description = "Rolling window of a scheduled run, in days."
  type        = number
  default     = 7
}

variable "schedule_input" {
  description = "More fields of the scheduled execution input (e.g. { top_n = 100 })."
  type        = any
  default     = {}
}

variable "notification_emails" {
  description = "E-mail addresses for run notifications."
  type        = list(string)
  default     = []
}

variable "notify_on_success" {
  description = "Also notify on SUCCEEDED."
  type        = bool
  default     = false
}
