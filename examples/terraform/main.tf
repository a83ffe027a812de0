# The lambdarasp layer plus one function that uses it: a provided.al2023
# function wrapped in protect.Handler, with the mode and thresholds set by
# LAMBDARASP_* variables, and an on-failure destination for blocked (and
# failed) asynchronous invocations. Build the zips first, from the
# repository's root: make layer examples.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

locals {
  # The artifacts make layer and make examples write.
  layer_zip    = "${path.module}/../../dist/lambdarasp-layer-${var.architecture}.zip"
  function_zip = var.function_zip != "" ? var.function_zip : "${path.module}/../../dist/${var.example}-${var.architecture}.zip"
  layer_arn    = var.layer_arn != "" ? var.layer_arn : aws_lambda_layer_version.lambdarasp[0].arn
}

# The layer, unless layer_arn names a published one (make publish-layer).
resource "aws_lambda_layer_version" "lambdarasp" {
  count                    = var.layer_arn == "" ? 1 : 0
  layer_name               = "lambdarasp-${var.architecture}"
  description              = "lambdarasp extension"
  filename                 = local.layer_zip
  source_code_hash         = filebase64sha256(local.layer_zip)
  compatible_runtimes      = ["provided.al2023", "provided.al2"]
  compatible_architectures = [var.architecture]
}

resource "aws_iam_role" "function" {
  name = var.function_name
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "logs" {
  role       = aws_iam_role.function.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

# Where an asynchronous invocation goes after its retries: a blocked event
# (error type lambdarasp.Blocked) is kept here to be looked at.
resource "aws_sqs_queue" "failed" {
  name                      = "${var.function_name}-failed"
  message_retention_seconds = 1209600
}

resource "aws_iam_role_policy" "failed" {
  role = aws_iam_role.function.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "sqs:SendMessage"
      Resource = aws_sqs_queue.failed.arn
    }]
  })
}

resource "aws_lambda_function" "this" {
  function_name    = var.function_name
  role             = aws_iam_role.function.arn
  filename         = local.function_zip
  source_code_hash = filebase64sha256(local.function_zip)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.architecture]
  memory_size      = var.memory_size
  timeout          = var.timeout
  layers           = [local.layer_arn]

  environment {
    variables = merge(
      {
        LAMBDARASP_MODE              = var.mode
        LAMBDARASP_PARANOIA          = tostring(var.paranoia)
        LAMBDARASP_ANOMALY_THRESHOLD = tostring(var.anomaly_threshold)
      },
      var.otlp_endpoint == "" ? {} : { OTEL_EXPORTER_OTLP_ENDPOINT = var.otlp_endpoint },
      var.environment,
    )
  }

  depends_on = [aws_iam_role_policy_attachment.logs]
}

resource "aws_lambda_function_event_invoke_config" "this" {
  function_name          = aws_lambda_function.this.function_name
  maximum_retry_attempts = 2
  destination_config {
    on_failure {
      destination = aws_sqs_queue.failed.arn
    }
  }
  depends_on = [aws_iam_role_policy.failed]
}

# An SQS queue feeding the function, when sqs_queue_arn is set (the
# sqs-worker example): partial batch responses on, as its
# protect.WithPartialBatch(true) expects. The queue's redrive policy sends
# what keeps failing to its dead-letter queue.
resource "aws_lambda_event_source_mapping" "sqs" {
  count                   = var.sqs_queue_arn == "" ? 0 : 1
  event_source_arn        = var.sqs_queue_arn
  function_name           = aws_lambda_function.this.arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]
}

resource "aws_iam_role_policy_attachment" "sqs" {
  count      = var.sqs_queue_arn == "" ? 0 : 1
  role       = aws_iam_role.function.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
}
