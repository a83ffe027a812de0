// Command function is an API Gateway HTTP API function wrapped in
// protect.Handler, as a user deploys it: the extension's end-to-end tests
// run it under the emulator with the real extension binary. GET /slow
// sleeps 150 ms; GET /fail returns an error; /call/PORT calls
// http://127.0.0.1:PORT/ through protect.Client() and answers 200, or 502
// when the call failed (body "denied" when lambdarasp refused it).
package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdarasp/lambdarasp/protect"
)

var client = protect.Client()

func handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	switch {
	case req.RawPath == "/slow":
		time.Sleep(150 * time.Millisecond)
	case req.RawPath == "/fail":
		return events.APIGatewayV2HTTPResponse{}, errors.New("upstream unavailable")
	case strings.HasPrefix(req.RawPath, "/call/"):
		return call(ctx, strings.TrimPrefix(req.RawPath, "/call/")), nil
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "handled " + req.RawPath}, nil
}

func call(ctx context.Context, port string) events.APIGatewayV2HTTPResponse {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/", nil)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{StatusCode: 400}
	}
	resp, err := client.Do(req)
	switch {
	case protect.IsDenied(err):
		return events.APIGatewayV2HTTPResponse{StatusCode: 502, Body: "denied"}
	case err != nil:
		return events.APIGatewayV2HTTPResponse{StatusCode: 502, Body: "failed"}
	}
	resp.Body.Close()
	return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "called"}
}

func main() { lambda.Start(protect.Handler(handle)) }
