// Command orders is the example function `make demo` runs: a small order
// service wrapped in protect.Handler, fed by API Gateway (HTTP API), an
// SQS queue (partial batch responses on), S3 uploads and direct
// invocations. Build it for Lambda as a provided.al2023 bootstrap:
//
//	GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -o bootstrap ./examples/orders
//
// Two routes behave as a real service's do when something downstream goes
// wrong: GET /orders/report runs a heavy query (about 120 ms), and an
// order paid by gift card fails while the gift-card service is down.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdarasp/lambdarasp/protect"
)

// errGiftCards is the downstream outage the demo's error burst shows.
var errGiftCards = errors.New("gift-card service unavailable")

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		RequestContext json.RawMessage `json:"requestContext"`
		Records        []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	_ = json.Unmarshal(raw, &probe)
	switch {
	case probe.RequestContext != nil:
		var req events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, err
		}
		return api(ctx, req)
	case len(probe.Records) > 0 && probe.Records[0].EventSource == "aws:sqs":
		var ev events.SQSEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, err
		}
		return queue(ev), nil
	case len(probe.Records) > 0 && probe.Records[0].EventSource == "aws:s3":
		return map[string]string{"status": "invoice filed"}, nil
	}
	return map[string]string{"status": "done"}, nil // an operator's direct invocation
}

func api(_ context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	switch method, path := req.RequestContext.HTTP.Method, req.RawPath; {
	case method == "GET" && path == "/orders/report":
		time.Sleep(120 * time.Millisecond) // the heavy query
		return respond(200, `{"report":"ready"}`), nil
	case method == "GET":
		return respond(200, `{"orders":[]}`), nil
	case method == "POST" && strings.Contains(req.Body, `"payment":"giftcard"`):
		return events.APIGatewayV2HTTPResponse{}, errGiftCards
	case method == "POST":
		return respond(201, `{"order":"created"}`), nil
	}
	return respond(405, `{"message":"method not allowed"}`), nil
}

func respond(status int, body string) events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Body: body, Headers: map[string]string{"Content-Type": "application/json"}}
}

// queue processes an SQS batch; every message succeeds here, and the
// records lambdarasp blocked are added to the batchItemFailures.
func queue(events.SQSEvent) events.SQSEventResponse {
	return events.SQSEventResponse{}
}

func main() {
	lambda.Start(protect.Handler(handle, protect.WithPartialBatch(true)))
}
