package emulator

import (
	"context"
	"fmt"
	"log"
)

// Run a function binary (functionBin: the tests' lambda.Start main) in a
// local execution environment and invoke it; a failing handler is a result,
// not an error.
func ExampleEmulator_Invoke() {
	ctx := context.Background()
	em, err := Start(ctx, Config{Function: functionBin})
	if err != nil {
		log.Fatal(err)
	}
	defer em.Close()

	res, err := em.Invoke(ctx, []byte(`{"error":"no such order"}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.FunctionError, res.ErrorType)
	fmt.Println(string(res.Payload))
	// Output:
	// Unhandled errorString
	// {"errorMessage":"no such order","errorType":"errorString"}
}
