# Notifications: the state machine's execution status changes (FAILED, TIMED_OUT, ABORTED, and
# SUCCEEDED when notify_on_success) go to an SNS topic, as one line naming the execution. A run
# that needs a person ends FAILED: RunIncomplete (tickers left for a resume) and
# RunCompletedWithFailures (tickers failed for good) are Fail states of the definition, so this
# rule and the ExecutionsFailed alarm cover both; only a run with every ticker success SUCCEEDS. Every
# execution name works with the CLI in place of a run id: CLI-started executions are named after
# their run id (a resume: <run_id>-resume-<time>), scheduled ones scheduled-<id>, stored with the run.

locals {
  notify_statuses = concat(["FAILED", "TIMED_OUT", "ABORTED"], var.notify_on_success ? ["SUCCEEDED"] : [])
}

resource "aws_sns_topic" "notifications" {
  name              = "${var.name}-notifications"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "notifications" {
  # Each AWS service may publish only for its own source: the execution-status rule, the alarm.
  dynamic "statement" {
    for_each = {
      EventBridgeRulePublishes = { service = "events.amazonaws.com", source = aws_cloudwatch_event_rule.execution_status.arn }
      AlarmPublishes           = { service = "cloudwatch.amazonaws.com", source = aws_cloudwatch_metric_alarm.executions_failed.arn }
    }
    content {
      sid     = statement.key
      actions = ["sns:Publish"]
      principals {
        type        = "Service"
        identifiers = [statement.value.service]
      }
      resources = [aws_sns_topic.notifications.arn]
      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [statement.value.source]
      }
    }
  }
}

resource "aws_sns_topic_policy" "notifications" {
  arn    = aws_sns_topic.notifications.arn
  policy = data.aws_iam_policy_document.notifications.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.notification_emails)

  topic_arn = aws_sns_topic.notifications.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_cloudwatch_event_rule" "execution_status" {
  name        = "${var.name}-execution-status"
  description = "price-backfill executions that ended ${join(", ", local.notify_statuses)}"
  event_pattern = jsonencode({
    source        = ["aws.states"]
    "detail-type" = ["Step Functions Execution Status Change"]
    detail = {
      stateMachineArn = [aws_sfn_state_machine.this.arn]
      status          = local.notify_statuses
      # Runs only: a Distributed Map child's ARN is execution:<name>/<map run>:<id>.
      executionArn = [{ wildcard = "${local.execution_arn_prefix}:*" }]
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "execution_status" {
  rule      = aws_cloudwatch_event_rule.execution_status.name
  target_id = "notifications"
  arn       = aws_sns_topic.notifications.arn

  input_transformer {
    input_paths = {
      name      = "$.detail.name"
      status    = "$.detail.status"
      execution = "$.detail.executionArn"
    }
    # `backfill status|resume` take any execution name (run id, <run_id>-resume-<time>, scheduled-<id>).
    input_template = "\"price-backfill: execution <name> ended <status>. Details: backfill status <name>; finish it: backfill resume <name>. Execution ARN: <execution>\""
  }
}
