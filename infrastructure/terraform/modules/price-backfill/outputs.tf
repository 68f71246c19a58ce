output "state_machine_arn" {
  description = "The state machine (STATE_MACHINE_ARN for the backfill CLI)."
  value       = aws_sfn_state_machine.this.arn
}

output "state_machine_name" {
  description = "The state machine's name."
  value       = aws_sfn_state_machine.this.name
}

output "function_names" {
  description = "Function name by function (select-tickers, fetch-batch, finalize-run)."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "function_arns" {
  description = "Function ARN by function."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "function_role_arns" {
  description = "Execution role ARN by function."
  value       = { for k, r in aws_iam_role.function : k => r.arn }
}

output "log_group_names" {
  description = "Every log group: the functions' and the state machine's (make logs-historical-backfill follows them)."
  value = merge(
    { for k, g in aws_cloudwatch_log_group.function : k => g.name },
    { "state-machine" = aws_cloudwatch_log_group.state_machine.name },
  )
}

output "notification_topic_arn" {
  description = "SNS topic of the run notifications and the failed-executions alarm; subscribe more endpoints here."
  value       = aws_sns_topic.notifications.arn
}

output "schedule_name" {
  description = "The EventBridge Scheduler schedule (state follows schedule_enabled)."
  value       = aws_scheduler_schedule.backfill.name
}

output "schedule_dead_letter_queue_url" {
  description = "Where schedule firings that could not start an execution end up."
  value       = aws_sqs_queue.schedule_dlq.url
}

output "database_secret_arn" {
  description = "The database secret the functions read."
  value       = local.database_secret_arn
}

output "provider_secret_arn" {
  description = "The provider secret the functions read (null for Yahoo only)."
  value       = local.provider_secret_arn
}
