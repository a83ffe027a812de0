// Command direct-invoke is a function invoked directly (aws lambda invoke,
// the SDK, Step Functions) with a typed custom event, wrapped in
// protect.Handler: a job asks for a tenant's report to be rebuilt. A direct
// invocation has no trigger shape, so lambdarasp inspects every value and
// every key of the payload; an event it blocks fails the invocation with
// error type lambdarasp.Blocked, which the caller gets; an asynchronous
// one goes to the on-failure destination after its retries.
//
// Build it for Lambda's provided.al2023 runtime (make examples does, for
// x86_64 and arm64):
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -tags lambda.norpc,coraza.disabled_operators.validateSchema -o bootstrap ./examples/direct-invoke
//
// REPORTS_URL names the report service (no call when unset); the calls go
// through protect.Client().
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdarasp/lambdarasp/examples/internal/downstream"
	"github.com/lambdarasp/lambdarasp/protect"
)

// client makes the outbound calls: lambdarasp checks and records each.
var client = protect.Client()

// Job is the event: what a caller sends.
type Job struct {
	Tenant string            `json:"tenant"`
	Action string            `json:"action"`
	Params map[string]string `json:"params"`
}

// Result is the response.
type Result struct {
	Tenant string `json:"tenant"`
	Status string `json:"status"`
}

func handle(ctx context.Context, job Job) (Result, error) {
	if job.Tenant == "" || job.Action != "rebuild-report" {
		return Result{}, errors.New("want a tenant and action rebuild-report")
	}
	if err := rebuild(ctx, job); err != nil {
		return Result{}, err
	}
	return Result{Tenant: job.Tenant, Status: "queued"}, nil
}

// rebuild asks the report service to rebuild the job's report.
func rebuild(ctx context.Context, job Job) error {
	body, err := json.Marshal(job)
	if err != nil {
		return err
	}
	return downstream.Post(ctx, client, os.Getenv("REPORTS_URL"), "/reports", body, 5*time.Second)
}

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("function", "direct-invoke")
	opts := []protect.Option{
		protect.WithLogger(logger), // findings in the function's own log lines
	}
	if u, err := url.Parse(os.Getenv("REPORTS_URL")); err == nil && u.Hostname() != "" {
		opts = append(opts, protect.WithEgressAllow(u.Hostname()))
	}
	lambda.Start(protect.Handler(handle, opts...))
}
