# The three functions, one zip each from `make package` (cargo lambda build --output-format zip).

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  for_each = local.functions

  function_name = "${var.name}-${each.key}"
  description   = each.value.description
  role          = aws_iam_role.function[each.key].arn

  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.lambda_artifacts_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_artifacts_dir}/${each.key}/bootstrap.zip")

  memory_size                    = each.value.memory_mb
  timeout                        = each.value.timeout_seconds
  reserved_concurrent_executions = each.value.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = each.value.environment
  }

  # JSON lines (the functions switch to JSON when AWS_LAMBDA_LOG_FORMAT=JSON, which this sets);
  # RUST_LOG is the only application-level filter.
  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function[each.key].name
    application_log_level = "TRACE"
    system_log_level      = "INFO"
  }

  tracing_config {
    mode = var.enable_xray_tracing ? "Active" : "PassThrough"
  }

  dynamic "vpc_config" {
    for_each = local.vpc_enabled ? [1] : []
    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = local.database_secret_arn != null
      error_message = "Set database_secret_arn (or create_database_secret = true): the functions read the database connection from Secrets Manager."
    }
    precondition {
      condition     = !local.vpc_enabled || length(var.vpc_security_group_ids) > 0
      error_message = "vpc_subnet_ids needs vpc_security_group_ids too."
    }
    precondition {
      condition     = var.price_provider != "polygon" || local.provider_secret_arn != null
      error_message = "price_provider = polygon needs provider_secret_arn (or create_provider_secret = true)."
    }
  }

  # The role's permissions (logs, secrets, ENIs) must exist before the first invocation.
  depends_on = [
    aws_iam_role_policy.function,
    aws_iam_role_policy_attachment.function_vpc,
  ]
}
