// Command lambdarasp is lambdarasp's command line:
//
//	lambdarasp check [--paranoia N] [--threshold N] [--rules FILE]… [--format json|table] PATH…
//
// check evaluates Lambda events (files, directories of *.json, or - for
// stdin) with the same inspector protect.Handler uses.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: lambdarasp <command> [arguments]

commands:
  check    evaluate Lambda events with lambdarasp's rules (lambdarasp check -h)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "check":
		return check(args[1:], stdin, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "lambdarasp: unknown command %q\n%s", args[0], usage)
	return 2
}
