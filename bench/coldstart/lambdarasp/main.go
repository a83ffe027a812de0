// Command lambdarasp is the bare function wrapped with protect.Handler, as
// a user deploys it.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdarasp/lambdarasp/protect"
)

func handle(_ context.Context, _ json.RawMessage) (string, error) { return "ok", nil }

func main() { lambda.Start(protect.Handler(handle)) }
