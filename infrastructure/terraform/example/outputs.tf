output "state_machine_arn" {
  description = "STATE_MACHINE_ARN for the backfill CLI (the make sfn-run-* targets read it)."
  value       = module.price_backfill.state_machine_arn
}

output "function_names" {
  description = "Function name by function."
  value       = module.price_backfill.function_names
}

output "log_group_names" {
  description = "Log groups of the functions and the state machine."
  value       = module.price_backfill.log_group_names
}

output "notification_topic_arn" {
  description = "SNS topic of the run notifications."
  value       = module.price_backfill.notification_topic_arn
}

output "schedule_name" {
  description = "The EventBridge Scheduler schedule."
  value       = module.price_backfill.schedule_name
}

output "schedule_dead_letter_queue_url" {
  description = "Dead-letter queue of the schedule."
  value       = module.price_backfill.schedule_dead_letter_queue_url
}

output "database_secret_arn" {
  description = "The database secret (put its value if this root created it)."
  value       = module.price_backfill.database_secret_arn
}

output "provider_secret_arn" {
  description = "The provider secret, if any."
  value       = module.price_backfill.provider_secret_arn
}

output "architecture" {
  description = "The architecture the functions were deployed for."
  value       = local.architecture
}
