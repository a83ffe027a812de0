// Command orders is the example function `make demo` runs: a small order
// service wrapped in protect.Handler, fed by API Gateway (HTTP API), an
// SQS queue (partial batch responses on), S3 uploads and direct
// invocations, with faults the scenario needs. It is the demo's function,
// not a template to copy: examples/apigw-http, sqs-worker, s3-processor and
// direct-invoke are one trigger each, with their deployment templates.
// Build it for Lambda as a provided.al2023 bootstrap:
//
//	GOOS=linux GOARCH=arm64 go build -trimpath -ldflags="-s -w" -tags lambda.norpc,coraza.disabled_operators.validateSchema -o bootstrap ./examples/orders
//
// Two routes behave as a real service's do when something downstream goes
// wrong: GET /orders/report runs a heavy query (about 120 ms), and an
// order paid by gift card fails while the gift-card service is down.
//
// Its outbound calls go through protect.Client(): an order paid by card is
// charged at the payment service (ORDERS_PAYMENTS_URL; none when unset),
// and an order with a notify_url gets its confirmation posted there, the
// customer's webhook — the kind of feature SSRF is made of. lambdarasp
// records each call for the extension and refuses those its egress rules
// or the extension's decisions deny.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdarasp/lambdarasp/examples/internal/downstream"
	"github.com/lambdarasp/lambdarasp/protect"
)

// client makes every outbound call: lambdarasp checks and records them.
var client = protect.Client()

var logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))

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

func api(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	switch method, path := req.RequestContext.HTTP.Method, req.RawPath; {
	case method == "GET" && path == "/orders/report":
		time.Sleep(120 * time.Millisecond) // the heavy query
		return respond(200, `{"report":"ready"}`), nil
	case method == "GET":
		return respond(200, `{"orders":[]}`), nil
	case method == "POST":
		var order struct {
			Payment   string `json:"payment"`
			NotifyURL string `json:"notify_url"`
		}
		if err := json.Unmarshal([]byte(req.Body), &order); err != nil {
			return respond(400, `{"message":"invalid order"}`), nil
		}
		if order.Payment == "giftcard" {
			return events.APIGatewayV2HTTPResponse{}, errGiftCards
		}
		if err := charge(ctx); err != nil {
			return respond(502, `{"message":"payment failed"}`), nil
		}
		notify(ctx, order.NotifyURL)
		return respond(201, `{"order":"created"}`), nil
	}
	return respond(405, `{"message":"method not allowed"}`), nil
}

// charge charges the order at the payment service.
func charge(ctx context.Context) error {
	return downstream.Post(ctx, client, os.Getenv("ORDERS_PAYMENTS_URL"), "/charges", []byte(`{"amount":4200,"currency":"EUR"}`), 2*time.Second)
}

// notify posts the order's confirmation to the customer's webhook, best
// effort: the order stands whether it arrives or not.
func notify(ctx context.Context, target string) {
	u, err := url.Parse(target)
	if target == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(`{"order":"created"}`))
	if err != nil {
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		// The host only: the URL's path and query are the customer's.
		logger.Warn("order webhook not delivered", "host", u.Hostname(), "denied", protect.IsDenied(err))
		return
	}
	resp.Body.Close()
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
