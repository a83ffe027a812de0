// Command protected is a function wrapped in protect.Handler, as a user
// deploys it: TestProtectedFunction runs it under the emulator.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdarasp/lambdarasp/protect"
)

func handle(_ context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "handled " + req.RawPath}, nil
}

func main() { lambda.Start(protect.Handler(handle)) }
