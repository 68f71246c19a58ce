# ---------------------------------------------------------------------------------------------
# Naming, packaging
# ---------------------------------------------------------------------------------------------

variable "name" {
  description = "Name of the state machine and prefix of every other resource (functions are <name>-<function>)."
  type        = string
  default     = "price-backfill"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name))
    error_message = "name must be 1-40 letters, digits, '-' or '_' (it prefixes function, role and log group names)."
  }
}

variable "lambda_artifacts_dir" {
  description = "Folder holding <function>/bootstrap.zip for every function, as `make package` (cargo lambda build --output-format zip) leaves them in target/lambda."
  type        = string
}

variable "architecture" {
  description = "Lambda architecture the zips were built for: arm64 (default; cheaper per GB-second) or x86_64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# Function sizing. See infrastructure/README.md "Variables" for why these defaults.
# ---------------------------------------------------------------------------------------------

variable "select_tickers_memory_mb" {
  description = "Memory of select-tickers (MB). One SQL selection and one multi-row insert per run; 128 MB is Lambda's minimum and several times what it uses."
  type        = number
  default     = 128
}

variable "select_tickers_timeout_seconds" {
  description = "Timeout of select-tickers (s). It plans thousands of tickers in a few seconds; the state machine retries DatabaseUnavailable. Its Task gives up 60 s after this (TimeoutSeconds)."
  type        = number
  default     = 60
}

variable "select_tickers_reserved_concurrency" {
  description = "Reserved concurrency of select-tickers: one invocation per run start. -1 reserves nothing (needed in accounts whose concurrency quota is 10)."
  type        = number
  default     = 2
}

variable "fetch_batch_memory_mb" {
  description = "Memory of fetch-batch (MB). It holds one provider page at a time (peak RSS 16 MB for a 20-year Polygon 1h ticker, make bench) and mostly waits on the provider and the shared request budget; more memory buys CPU it does not use."
  type        = number
  default     = 128
}

variable "fetch_batch_timeout_seconds" {
  description = "Timeout of fetch-batch (s). It stops starting tickers DEADLINE_MARGIN_SECONDS before this and returns `partial`; the maximum (900) means fewer partial rounds per batch. Its Task gives up 60 s after this (TimeoutSeconds)."
  type        = number
  default     = 900

  validation {
    condition     = var.fetch_batch_timeout_seconds >= 120 && var.fetch_batch_timeout_seconds <= 900
    error_message = "fetch_batch_timeout_seconds must be 120-900: it has to cover DEADLINE_MARGIN_SECONDS (30) plus at least one provider request and commit."
  }
}

variable "fetch_batch_reserved_concurrency" {
  description = "Reserved concurrency of fetch-batch: caps the batches fetched at once across all runs (and so the load on the provider and the database). Keep it >= the max_concurrency you start runs with (default 4). -1 reserves nothing."
  type        = number
  default     = 10
}

variable "finalize_run_memory_mb" {
  description = "Memory of finalize-run (MB). A few aggregate queries per run."
  type        = number
  default     = 128
}

variable "finalize_run_timeout_seconds" {
  description = "Timeout of finalize-run (s). Its Task gives up 60 s after this (TimeoutSeconds)."
  type        = number
  default     = 60
}

variable "finalize_run_reserved_concurrency" {
  description = "Reserved concurrency of finalize-run: one invocation per run end. -1 reserves nothing."
  type        = number
  default     = 2
}

# ---------------------------------------------------------------------------------------------
# Fault handling in the state machine (statemachine/backfill.asl.json)
# ---------------------------------------------------------------------------------------------

variable "transient_fault_retry_budget_seconds" {
  description = "How long each Task state keeps retrying transient errors (DatabaseUnavailable, ProviderUnavailable, Lambda service errors, Lambda.Unknown, Runtime.ExitError, Runtime.OutOfMemory) in a row, on average, before it gives up: a batch is then recorded as failed, a run start or finalize fails the execution. Any successful invocation starts a new budget, so this is time without progress. Sets the retriers' MaxAttempts (delays 2, 4, 8, 16, 32, then 60 s, each jittered between 0 and the delay); 0 turns these retries off."
  type        = number
  default     = 1800

  validation {
    condition     = var.transient_fault_retry_budget_seconds >= 0 && var.transient_fault_retry_budget_seconds <= 604800 && floor(var.transient_fault_retry_budget_seconds) == var.transient_fault_retry_budget_seconds
    error_message = "transient_fault_retry_budget_seconds must be a whole number of seconds from 0 to 604800 (a week)."
  }
}

# ---------------------------------------------------------------------------------------------
# Function environment (shared/src/config.rs). Unset values keep the functions' own defaults.
# ---------------------------------------------------------------------------------------------

variable "price_provider" {
  description = "PRICE_PROVIDER: the provider for runs that name none (yahoo or polygon)."
  type        = string
  default     = "yahoo"

  validation {
    condition     = contains(["yahoo", "polygon"], var.price_provider)
    error_message = "price_provider must be yahoo or polygon."
  }
}

variable "backfill_start_date" {
  description = "BACKFILL_START_DATE (YYYY-MM-DD): start date of runs that give none. null keeps the functions' default (2025-10-01)."
  type        = string
  default     = null

  validation {
    condition     = var.backfill_start_date == null || can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.backfill_start_date))
    error_message = "backfill_start_date must be YYYY-MM-DD."
  }
}

variable "provider_requests_per_minute" {
  description = "PROVIDER_REQUESTS_PER_MINUTE: the rate every fetch-batch instance of every run shares (one budget per provider and API key, kept in the database); set it a little below the provider's published limit. null keeps the provider default (yahoo 30, polygon 5)."
  type        = number
  default     = null
}

variable "log_level" {
  description = "RUST_LOG of the functions (e.g. info, or info,shared=debug)."
  type        = string
  default     = "info"
}

variable "extra_environment" {
  description = "More environment for every function, e.g. { DEADLINE_MARGIN_SECONDS = \"45\", YAHOO_BASE_URL = \"...\" }. Secrets do not go here: use the secret ARNs."
  type        = map(string)
  default     = {}

  validation {
    condition     = length(setintersection(keys(var.extra_environment), ["DATABASE_URL", "POLYGON_API_KEY", "DATABASE_SECRET_ARN", "PROVIDER_SECRET_ARN"])) == 0
    error_message = "extra_environment must not carry DATABASE_URL or POLYGON_API_KEY (plain secrets) nor the secret ARNs: use database_secret_arn / provider_secret_arn."
  }

  validation {
    condition     = length(setintersection(keys(var.extra_environment), ["PGSSLMODE", "PGSSLROOTCERT"])) == 0
    error_message = "extra_environment must not carry PGSSLMODE or PGSSLROOTCERT: use database_ssl_mode / database_ca_bundle_file."
  }
}

# ---------------------------------------------------------------------------------------------
# Database TLS (libpq's PGSSLMODE and PGSSLROOTCERT). A `sslmode=` / `sslrootcert=` in the
# secret's url overrides both.
# ---------------------------------------------------------------------------------------------

variable "database_ssl_mode" {
  description = "PGSSLMODE of the functions: disable, prefer, require (default: always encrypted; the certificate is checked only when database_ca_bundle_file is set), verify-ca (chain) or verify-full (chain and host name). require keeps a deployed function from ever falling back to plaintext."
  type        = string
  default     = "require"

  validation {
    condition     = contains(["disable", "prefer", "require", "verify-ca", "verify-full"], var.database_ssl_mode)
    error_message = "database_ssl_mode must be disable, prefer, require, verify-ca or verify-full."
  }
}

variable "database_ca_bundle_file" {
  description = "File name of the PEM bundle of trusted CAs packaged at the root of every zip (`DATABASE_CA_BUNDLE=global-bundle.pem make package` prints it), e.g. global-bundle.pem: the functions get PGSSLROOTCERT=/var/task/<name>. null or \"\": no bundle (verify-ca and verify-full then use the system's trust store)."
  type        = string
  default     = null

  validation {
    condition     = var.database_ca_bundle_file == null || (can(regex("^([A-Za-z0-9][A-Za-z0-9._-]*)?$", var.database_ca_bundle_file)) && var.database_ca_bundle_file != "bootstrap")
    error_message = "database_ca_bundle_file must be a file name at the zip root (letters, digits, '.', '_', '-'; no folder), not bootstrap."
  }
}

# ---------------------------------------------------------------------------------------------
# Secrets: referenced by ARN, or created here empty (put the value with the AWS CLI).
# ---------------------------------------------------------------------------------------------

variable "database_secret_arn" {
  description = "Secrets Manager secret of the database (RDS shape host/port/username/password/dbname, or {\"url\": ...}). Required unless create_database_secret."
  type        = string
  default     = null
}

variable "create_database_secret" {
  description = "Create an empty database secret <name>/database here (then put its value with `aws secretsmanager put-secret-value`)."
  type        = bool
  default     = false
}

variable "provider_secret_arn" {
  description = "Secrets Manager secret holding the Polygon API key (plain string or JSON api_key). Not needed for Yahoo."
  type        = string
  default     = null
}

variable "create_provider_secret" {
  description = "Create an empty provider secret <name>/provider here."
  type        = bool
  default     = false
}

variable "secrets_kms_key_arn" {
  description = "KMS key that encrypts the two secrets, when it is a customer managed key: the functions get kms:Decrypt on it through Secrets Manager only."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Network, encryption, observability
# ---------------------------------------------------------------------------------------------

variable "vpc_subnet_ids" {
  description = "Private subnets for the functions (a database without a public endpoint). Empty: no VPC. The subnets need a NAT gateway (or equivalent) for the price API and AWS endpoints."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of the functions when vpc_subnet_ids is set (allow egress to the database and to HTTPS)."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the log groups, the SNS topic, the scheduler's dead-letter queue, the schedule and the functions' environment. Its key policy must allow logs.<region>.amazonaws.com, events.amazonaws.com, sns, sqs and scheduler. null: AWS managed encryption."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of every log group (functions and state machine), in days."
  type        = number
  default     = 30
}

variable "state_machine_log_level" {
  description = "Step Functions log level: ALL (every state transition), ERROR (failures only), FATAL or OFF."
  type        = string
  default     = "ERROR"

  validation {
    condition     = contains(["ALL", "ERROR", "FATAL", "OFF"], var.state_machine_log_level)
    error_message = "state_machine_log_level must be ALL, ERROR, FATAL or OFF."
  }
}

variable "state_machine_log_include_execution_data" {
  description = "Log the states' input and output too. Off by default: payloads are run ids and batch numbers, the run tables hold the data."
  type        = bool
  default     = false
}

variable "enable_xray_tracing" {
  description = "X-Ray tracing of the state machine and the functions."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------
# Schedule (EventBridge Scheduler)
# ---------------------------------------------------------------------------------------------

variable "schedule_enabled" {
  description = "Start the scheduled backfill. The schedule is always created, DISABLED unless this is true."
  type        = bool
  default     = false
}

variable "schedule_expression" {
  description = "When the scheduled backfill starts: cron(...) or rate(...), in schedule_timezone. Default: 06:00 Tuesday to Saturday, after each US trading day."
  type        = string
  default     = "cron(0 6 ? * TUE-SAT *)"
}

variable "schedule_timezone" {
  description = "Time zone of schedule_expression."
  type        = string
  default     = "UTC"
}

variable "schedule_lookback_days" {
  description = "Rolling window of a scheduled run: end = today (UTC), start = end - lookback_days. Upserts are idempotent, and one request per ticker covers the window, so overlap is cheap and covers missed days."
  type        = number
  default     = 7

  validation {
    condition     = var.schedule_lookback_days >= 1 && var.schedule_lookback_days <= 729
    error_message = "schedule_lookback_days must be 1-729 (Yahoo keeps 730 days of hourly bars)."
  }
}

variable "schedule_input" {
  description = "More fields of the scheduled execution input (see the select-tickers contract: rustdoc of shared::contract::SelectTickersInput), e.g. { top_n = 100, interval = \"1h\", max_concurrency = 4 }. lookback_days comes from schedule_lookback_days, execution_name is always the execution's own name (scheduled-<id>): neither can be overridden here."
  type        = any
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------------------------

variable "notification_emails" {
  description = "E-mail addresses subscribed to the notification topic (each must confirm). Other subscribers can use the topic_arn output."
  type        = list(string)
  default     = []
}

variable "notify_on_success" {
  description = "Also notify when an execution SUCCEEDED (FAILED, TIMED_OUT and ABORTED always notify)."
  type        = bool
  default     = false
}
