variable "example" {
  description = "Which example function to deploy: its zip is dist/<example>-<architecture>.zip (make examples)."
  type        = string
  default     = "direct-invoke"
  validation {
    condition     = contains(["apigw-http", "sqs-worker", "s3-processor", "direct-invoke"], var.example)
    error_message = "example: want apigw-http, sqs-worker, s3-processor or direct-invoke."
  }
}

variable "function_zip" {
  description = "Your own function's zip (a provided.al2023 bootstrap wrapped in protect.Handler), instead of an example's."
  type        = string
  default     = ""
}

variable "function_name" {
  description = "The function's name; also names its role and its failed-events queue."
  type        = string
  default     = "lambdarasp-example"
}

variable "architecture" {
  description = "x86_64 or arm64: picks the layer and function zips built for it."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture: want x86_64 or arm64."
  }
}

variable "layer_arn" {
  description = "ARN of a published lambdarasp layer for this architecture (make publish-layer), such as arn:aws:lambda:<region>:<account-id>:layer:lambdarasp-arm64:<version>. Empty: this module publishes dist/lambdarasp-layer-<architecture>.zip."
  type        = string
  default     = ""
}

variable "mode" {
  description = "LAMBDARASP_MODE: start in detect, read the findings, then apply again with block."
  type        = string
  default     = "detect"
  validation {
    condition     = contains(["detect", "block", "off"], var.mode)
    error_message = "mode: want detect, block or off."
  }
}

variable "paranoia" {
  description = "LAMBDARASP_PARANOIA, the CRS paranoia level, 1 to 4."
  type        = number
  default     = 1
}

variable "anomaly_threshold" {
  description = "LAMBDARASP_ANOMALY_THRESHOLD, the inbound anomaly score that blocks."
  type        = number
  default     = 5
}

variable "otlp_endpoint" {
  description = "OTEL_EXPORTER_OTLP_ENDPOINT for the extension's OpenTelemetry signals; none when empty."
  type        = string
  default     = ""
}

variable "environment" {
  description = "More environment variables for the function (other LAMBDARASP_* settings, the example's service URL)."
  type        = map(string)
  default     = {}
}

variable "memory_size" {
  type    = number
  default = 256
}

variable "timeout" {
  type    = number
  default = 10
}

variable "sqs_queue_arn" {
  description = "An SQS queue to feed the function, with ReportBatchItemFailures on (the sqs-worker example). Empty: none."
  type        = string
  default     = ""
}
