# The state machine: statemachine/backfill.asl.json with the function ARNs filled in. The same
# rendering runs in `make infra-check` (infrastructure/tests) and statelint checks its result.

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
    select_tickers_function_arn = aws_lambda_function.this["select-tickers"].arn
    fetch_batch_function_arn    = aws_lambda_function.this["fetch-batch"].arn
    finalize_run_function_arn   = aws_lambda_function.this["finalize-run"].arn
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
  alarm_description = "A price-backfill execution failed (RunIncomplete, or an error no state caught). The notification topic names the run; `backfill status RUN_ID` shows why, `backfill resume RUN_ID` finishes it."
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
