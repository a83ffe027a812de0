// Command function is the emulator tests' Lambda function: an unmodified
// aws-lambda-go lambda.Start main whose handler does what the event asks.
//
// The environment steers init: FN_INIT_EXIT=N exits with status N before
// lambda.Start; FN_SIGTERM=1 starts with lambda.WithEnableSIGTERM, which
// registers an internal extension and prints "function got SIGTERM" when
// the signal comes.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type request struct {
	Log   string `json:"log"`   // print this line to stdout
	Sleep string `json:"sleep"` // sleep this long (time.ParseDuration)
	Error string `json:"error"` // fail with this message
	Panic string `json:"panic"` // panic with this message
	Exit  int    `json:"exit"`  // exit the process with this status
	Late  string `json:"late"`  // print "late" this long after answering
	Alloc int    `json:"alloc"` // touch this many MB before answering
}

type response struct {
	RequestID       string            `json:"requestId"`
	FunctionARN     string            `json:"functionArn"`
	DeadlineMs      int64             `json:"deadlineMs"`
	TraceID         string            `json:"traceId"`
	ClientContext   map[string]string `json:"clientContext,omitempty"`
	CognitoIdentity string            `json:"cognitoIdentity,omitempty"`
	PID             int               `json:"pid"`
	Env             map[string]string `json:"env"`
}

var ballast [][]byte

func handle(ctx context.Context, req request) (*response, error) {
	if req.Log != "" {
		fmt.Println(req.Log)
	}
	if req.Sleep != "" {
		d, err := time.ParseDuration(req.Sleep)
		if err != nil {
			return nil, err
		}
		time.Sleep(d)
	}
	if req.Exit != 0 {
		os.Exit(req.Exit)
	}
	if req.Panic != "" {
		panic(req.Panic)
	}
	if req.Error != "" {
		return nil, errors.New(req.Error)
	}
	if req.Late != "" {
		d, err := time.ParseDuration(req.Late)
		if err != nil {
			return nil, err
		}
		go func() {
			time.Sleep(d)
			fmt.Println("late")
		}()
	}
	for range req.Alloc {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = 1
		}
		ballast = append(ballast, b)
	}
	lc, _ := lambdacontext.FromContext(ctx)
	deadline, _ := ctx.Deadline()
	resp := &response{
		RequestID:       lc.AwsRequestID,
		FunctionARN:     lc.InvokedFunctionArn,
		DeadlineMs:      deadline.UnixMilli(),
		TraceID:         os.Getenv("_X_AMZN_TRACE_ID"),
		ClientContext:   lc.ClientContext.Custom,
		CognitoIdentity: lc.Identity.CognitoIdentityID,
		PID:             os.Getpid(),
		Env:             map[string]string{},
	}
	for _, k := range []string{"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
		"AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_REGION", "TZ", "_HANDLER", "LAMBDA_TASK_ROOT", "FN_CUSTOM"} {
		resp.Env[k] = os.Getenv(k)
	}
	return resp, nil
}

func main() {
	if s := os.Getenv("FN_INIT_EXIT"); s != "" {
		n, _ := strconv.Atoi(s)
		fmt.Println("function init failing")
		os.Exit(n)
	}
	fmt.Println("function init")
	var opts []lambda.Option
	if os.Getenv("FN_SIGTERM") != "" {
		opts = append(opts, lambda.WithEnableSIGTERM(func() {
			fmt.Println("function got SIGTERM")
			os.Exit(0)
		}))
	}
	lambda.StartWithOptions(handle, opts...)
}
