// Command lambdarasp is lambdarasp's command line:
//
//	lambdarasp check [--paranoia N] [--threshold N] [--rules FILE]… [--format json|table] PATH…
//	lambdarasp local --function BIN [--extensions DIR] [--timeout 3s] [--memory 128] [--addr 127.0.0.1:9000]
//	lambdarasp digest DIR|ZIP
//	lambdarasp audit [--format table|json|sarif] [--fail-on SEVERITY] [--trusted-accounts IDS] PATH…
//
// check evaluates Lambda events (files, directories of *.json, or - for
// stdin) with the same inspector protect.Handler uses. local runs a function
// binary and its extensions in an emulated Lambda execution environment and
// serves Lambda's Invoke API for it. digest prints the digest of a
// function's code that the extension checks at start
// (LAMBDARASP_CODE_SHA256). audit reads SAM and CloudFormation templates
// and the AWS CLI's function configurations and policies, and reports the
// misconfigurations that make an injection worse.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: lambdarasp <command> [arguments]

commands:
  check    evaluate Lambda events with lambdarasp's rules (lambdarasp check -h)
  local    run a function and its extensions in a local Lambda environment (lambdarasp local -h)
  digest   print the digest of a function's code, for LAMBDARASP_CODE_SHA256 (lambdarasp digest -h)
  audit    find secrets and risky settings in templates and function configurations (lambdarasp audit -h)
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
	case "local":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return local(ctx, args[1:], stdout, stderr)
	case "digest":
		return digest(args[1:], stdout, stderr)
	case "audit":
		return auditCmd(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "lambdarasp: unknown command %q\n%s", args[0], usage)
	return 2
}

// newFlags is a subcommand's flag set: errors go to stderr, and so does
// its usage, usage followed by the flags' defaults.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, usage)
		fl.PrintDefaults()
	}
	return fl
}
