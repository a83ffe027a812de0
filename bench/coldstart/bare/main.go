// Command bare is a Go Lambda function without protection: the baseline
// BenchmarkColdStart measures lambdarasp's init cost against.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
)

func handle(_ context.Context, _ json.RawMessage) (string, error) { return "ok", nil }

func main() { lambda.Start(handle) }
