// Command function is an API Gateway HTTP API function wrapped in
// protect.Handler, as a user deploys it: the extension's end-to-end tests
// run it under the emulator with the real extension binary. GET /slow
// sleeps 150 ms; GET /fail returns an error.
package main

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdarasp/lambdarasp/protect"
)

func handle(_ context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	switch req.RawPath {
	case "/slow":
		time.Sleep(150 * time.Millisecond)
	case "/fail":
		return events.APIGatewayV2HTTPResponse{}, errors.New("upstream unavailable")
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "handled " + req.RawPath}, nil
}

func main() { lambda.Start(protect.Handler(handle)) }
