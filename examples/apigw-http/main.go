// Command apigw-http is an HTTP API (API Gateway v2) function wrapped in
// protect.Handler: POST /orders takes a JSON order and charges it at a
// payment service; GET /orders lists orders. A request the rules block
// never reaches handle: API Gateway gets a 403 with
// {"message":"Forbidden","requestId":"…"}.
//
// Build it for Lambda's provided.al2023 runtime (make examples does, for
// x86_64 and arm64):
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -tags lambda.norpc,coraza.disabled_operators.validateSchema -o bootstrap ./examples/apigw-http
//
// PAYMENTS_URL names the payment service (no charge when unset). The call
// goes through protect.Client(), so lambdarasp records it for the extension
// and refuses it if it goes anywhere but that host.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdarasp/lambdarasp/examples/internal/downstream"
	"github.com/lambdarasp/lambdarasp/protect"
)

// client makes the outbound calls: lambdarasp checks and records each.
var client = protect.Client()

// order is the JSON body of POST /orders.
type order struct {
	Customer struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"customer"`
	Items []struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	} `json:"items"`
	Note string `json:"note"`
}

func handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	switch req.RequestContext.HTTP.Method {
	case http.MethodGet:
		return respond(http.StatusOK, `{"orders":[]}`), nil
	case http.MethodPost:
		var o order
		if err := json.Unmarshal([]byte(req.Body), &o); err != nil || len(o.Items) == 0 {
			return respond(http.StatusBadRequest, `{"message":"want a JSON order with items"}`), nil
		}
		if err := charge(ctx, len(o.Items)); err != nil {
			return respond(http.StatusBadGateway, `{"message":"payment failed"}`), nil
		}
		return respond(http.StatusCreated, `{"order":"created"}`), nil
	}
	return respond(http.StatusMethodNotAllowed, `{"message":"method not allowed"}`), nil
}

// charge asks the payment service to charge an order of n items, within
// the handler's ctx: the call is this invocation's.
func charge(ctx context.Context, n int) error {
	body := fmt.Sprintf(`{"items":%d,"currency":"EUR"}`, n)
	return downstream.Post(ctx, client, os.Getenv("PAYMENTS_URL"), "/charges", []byte(body), 2*time.Second)
}

func respond(status int, body string) events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Body: body, Headers: map[string]string{"Content-Type": "application/json"}}
}

func main() {
	opts := []protect.Option{
		// The defaults, written out: LAMBDARASP_MODE, LAMBDARASP_PARANOIA and
		// LAMBDARASP_ANOMALY_THRESHOLD override them at deploy time (the
		// template starts in detect).
		protect.WithMode(protect.Block),
		protect.WithParanoia(1),
		protect.WithAnomalyThreshold(5),
	}
	if u, err := url.Parse(os.Getenv("PAYMENTS_URL")); err == nil && u.Hostname() != "" {
		// The only host this function calls: anything else is refused.
		opts = append(opts, protect.WithEgressAllow(u.Hostname()))
	}
	lambda.Start(protect.Handler(handle, opts...))
}
