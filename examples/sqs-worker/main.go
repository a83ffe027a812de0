// Command sqs-worker is an SQS consumer wrapped in protect.Handler, with
// partial batch responses: each order message is handed to a fulfilment
// service, and the messages it could not process are returned in
// batchItemFailures. lambdarasp adds the messages it blocked to that list
// and cuts them out of the batch handle sees, so a poisoned message never
// reaches the code; SQS retries the failed messages and, after the queue's
// maxReceiveCount, moves them to the dead-letter queue.
//
// Partial batch responses count only when the event source mapping has
// ReportBatchItemFailures on (the template sets it), which is why
// WithPartialBatch(true) is set here.
//
// Build it for Lambda's provided.al2023 runtime (make examples does, for
// x86_64 and arm64):
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -tags lambda.norpc,coraza.disabled_operators.validateSchema -o bootstrap ./examples/sqs-worker
//
// FULFILMENT_URL names the fulfilment service (no call when unset); the
// calls go through protect.Client().
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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

var logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))

// message is an order message's body.
type message struct {
	OrderID string `json:"orderId"`
	File    string `json:"file"`
}

func handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, rec := range ev.Records {
		if err := process(ctx, rec); err != nil {
			// The message id only: the body is the sender's.
			logger.Warn("message not processed", "message_id", rec.MessageId, "error", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	return resp, nil
}

// process hands one order to the fulfilment service.
func process(ctx context.Context, rec events.SQSMessage) error {
	var m message
	if err := json.Unmarshal([]byte(rec.Body), &m); err != nil || m.OrderID == "" {
		return fmt.Errorf("not an order message")
	}
	return downstream.Post(ctx, client, os.Getenv("FULFILMENT_URL"), "/shipments", []byte(rec.Body), 2*time.Second)
}

func main() {
	opts := []protect.Option{
		protect.WithPartialBatch(true), // the mapping has ReportBatchItemFailures on
		// A message lambdarasp could not inspect is retried, then goes to
		// the DLQ, rather than reaching the code unseen.
		protect.WithFailClosed(true),
	}
	if u, err := url.Parse(os.Getenv("FULFILMENT_URL")); err == nil && u.Hostname() != "" {
		opts = append(opts, protect.WithEgressAllow(u.Hostname()))
	}
	lambda.Start(protect.Handler(handle, opts...))
}
