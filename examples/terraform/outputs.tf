output "function_name" {
  value = aws_lambda_function.this.function_name
}

output "function_arn" {
  value = aws_lambda_function.this.arn
}

output "layer_arn" {
  description = "The lambdarasp layer version the function uses."
  value       = local.layer_arn
}

output "failed_events_queue_url" {
  description = "Where blocked and failed asynchronous invocations end up."
  value       = aws_sqs_queue.failed.url
}
