# The state machine: statemachine/backfill.asl.json with its placeholders filled in: the function
# ARNs, each Task's TimeoutSeconds and the transient-error retriers' MaxAttempts. scripts/render-asl
# fills them in the same way for statelint and the local stack; `make infra-check`
# (infrastructure/tests) checks that both renderings agree and that statelint accepts the result.

locals {
  # A Task gives up on its function this long after the function's own timeout: Lambda stops the
  # function at its timeout (errorType Sandbox.Timedout) and answers; TimeoutSeconds only catches
  # an invocation that never answers at all (States.Timeout). Keep in step with
  # TASK_TIMEOUT_MARGIN_SECONDS in scripts/render-asl.
  task_timeout_margin_seconds = 60
  task_timeout_seconds = {
    "select-tickers" = var.select_tickers_timeout_seconds + local.task_timeout_margin_seconds
    "fetch-batch"    = var.fetch_batch_timeout_seconds + local.task_timeout_margin_seconds
    "finalize-run"   = var.finalize_run_timeout_seconds + local.task_timeout_margin_seconds
  }

  # MaxAttempts of the transient-error retriers (IntervalSeconds 2, BackoffRate 2,
  # MaxDelaySeconds 60, JitterStrategy FULL): delays of 2, 4, 8, 16, 32, then 60 s, each wait a
  # random fraction of its delay (FULL: between 0 and the delay), so half of it on average. Enough
  # attempts that the delays add up to twice the budget, i.e. the waits to the budget on average.
  # The same formula is retry_attempts in scripts/render-asl.
  transient_retry_delays_seconds = 2 * var.transient_fault_retry_budget_seconds
  transient_retry_max_attempts = (
    local.transient_retry_delays_seconds <= 62
    ? length([for sum in [2, 6, 14, 30, 62] : sum if sum < local.transient_retry_delays_seconds]) + (local.transient_retry_delays_seconds > 0 ? 1 : 0)
    : 5 + ceil((local.transient_retry_delays_seconds - 62) / 60)
  )
}

resource "aws_cloudwatch_log_group" "state_machine" {
  # /aws/vendedlogs/ keeps the CloudWatch Logs resource policy small (one prefix for all).
  name              = "/aws/vendedlogs/states/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sfn_state_machine" "this" {
  name     = var.name
  type     = "STANDARD"
  role_arn = aws_iam_role.state_machine.arn

  definition = templatefile(local.definition_template, {
    select_tickers_function_arn         = aws_lambda_function.this["select-tickers"].arn
    fetch_batch_function_arn            = aws_lambda_function.this["fetch-batch"].arn
    finalize_run_function_arn           = aws_lambda_function.this["finalize-run"].arn
    select_tickers_task_timeout_seconds = local.task_timeout_seconds["select-tickers"]
    fetch_batch_task_timeout_seconds    = local.task_timeout_seconds["fetch-batch"]
    finalize_run_task_timeout_seconds   = local.task_timeout_seconds["finalize-run"]
    transient_retry_max_attempts        = local.transient_retry_max_attempts
  })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    level                  = var.state_machine_log_level
    include_execution_data = var.state_machine_log_include_execution_data
  }

  tracing_configuration {
    enabled = var.enable_xray_tracing
  }

  tags = var.tags

  # Step Functions checks the role's log-delivery and invoke permissions when the state machine is
  # created or updated.
  depends_on = [aws_iam_role_policy.state_machine]
}

resource "aws_cloudwatch_metric_alarm" "executions_failed" {
  alarm_name        = "${var.name}-executions-failed"
  alarm_description = "A price-backfill execution failed: RunIncomplete (tickers left; `backfill resume RUN_ID` finishes it), RunCompletedWithFailures (tickers failed for good) or an error no state caught. The notification topic names the run; `backfill status RUN_ID` shows why."
  namespace         = "AWS/States"
  metric_name       = "ExecutionsFailed"
  dimensions = {
    StateMachineArn = aws_sfn_state_machine.this.arn
  }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
  tags                = var.tags
}
