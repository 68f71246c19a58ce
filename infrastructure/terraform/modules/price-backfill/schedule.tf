# The scheduled backfill (EventBridge Scheduler), DISABLED unless schedule_enabled. Each firing
# starts an execution named scheduled-<scheduler execution id> over a rolling window of
# schedule_lookback_days ending today (UTC); select-tickers gives the run its backfill-… id and
# stores the execution name with it (execution_name), so `backfill status|resume <name>` find it.

locals {
  # Both the execution's Name and its input's execution_name: one string, so they cannot drift.
  schedule_execution_name = "scheduled-<aws.scheduler.execution-id>"

  # Later keys win: schedule_input cannot override the window or the execution name.
  schedule_execution_input = merge(var.schedule_input, {
    lookback_days  = var.schedule_lookback_days
    execution_name = local.schedule_execution_name
  })

  # jsonencode writes < and > as \u003c and \u003e; Scheduler's context keywords
  # (<aws.scheduler.execution-id>) must reach it literally, and both are legal unescaped in JSON.
  # Undone on this inner level first: left escaped, the outer jsonencode would turn \u003c into
  # \\u003c, and the outer replace would then leave an invalid \< in the payload.
  schedule_execution_input_json = replace(replace(jsonencode(local.schedule_execution_input), "\\u003c", "<"), "\\u003e", ">")
}

resource "aws_sqs_queue" "schedule_dlq" {
  name                      = "${var.name}-schedule-dlq"
  message_retention_seconds = 1209600 # 14 days, the maximum: time to notice and start the run by hand
  kms_master_key_id         = var.kms_key_arn
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  tags                      = var.tags
}

resource "aws_scheduler_schedule" "backfill" {
  name        = "${var.name}-scheduled"
  description = "price-backfill: start a backfill of the last ${var.schedule_lookback_days} days"
  group_name  = "default"
  state       = var.schedule_enabled ? "ENABLED" : "DISABLED"
  kms_key_arn = var.kms_key_arn

  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    # The StartExecution API as a universal target, so the execution gets a recognisable name.
    arn      = "arn:${local.partition}:scheduler:::aws-sdk:sfn:startExecution"
    role_arn = aws_iam_role.scheduler.arn
    # The same unescaping as schedule_execution_input_json, on the outer level.
    input = replace(replace(jsonencode({
      StateMachineArn = aws_sfn_state_machine.this.arn
      Name            = local.schedule_execution_name
      Input           = local.schedule_execution_input_json
    }), "\\u003c", "<"), "\\u003e", ">")

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 5
    }

    dead_letter_config {
      arn = aws_sqs_queue.schedule_dlq.arn
    }
  }
}
