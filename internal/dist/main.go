// Command dist builds lambdarasp's release artifacts into dist/: the Lambda
// layer for each architecture and the example functions, zipped as Lambda
// takes them. The Makefile runs it from the repository's root; its tests
// build with the same functions.
//
//	go run ./internal/dist layer [-out dist] [-version V]     # make layer
//	go run ./internal/dist examples [-out dist]                # make examples
//	go run ./internal/dist publish-layer [-out dist] [-version V] # make publish-layer
//
// layer writes lambdarasp-layer-x86_64.zip and lambdarasp-layer-arm64.zip
// (extensions/lambdarasp, mode 0755, nothing else) and reports each zip's
// size and the extension's resident memory at idle, measured by running the
// binary for this machine under the local emulator (internal/emulator).
// examples writes <example>-<arch>.zip, each holding the example built as
// a provided.al2023 bootstrap. publish-layer prints the aws lambda
// publish-layer-version commands for the layer zips and runs them only
// when AWS credentials are present and CI is not set.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

// Targets the layer is held to (make layer reports against them; the
// layer's test fails past them).
const (
	maxZipBytes = 8 << 20  // 8 MB: the layer counts against the function's 250 MB unzipped, and is downloaded at every cold start
	maxIdleKiB  = 15 << 10 // 15 MB: memory the function pays for and cannot use
)

const usage = `usage: go run ./internal/dist <command> [flags]

commands:
  layer          build dist/lambdarasp-layer-{x86_64,arm64}.zip; report size and idle memory
  examples       build dist/<example>-{x86_64,arm64}.zip (provided.al2023 bootstraps)
  publish-layer  print the aws lambda publish-layer-version commands; run them with AWS credentials, never in CI
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fl := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fl.SetOutput(stderr)
	out := fl.String("out", "dist", "the output directory")
	version := fl.String("version", "dev", "the version stamped into the extension and named in the layer's description")
	if err := fl.Parse(args[1:]); err != nil {
		return 2
	}
	var err error
	switch args[0] {
	case "layer":
		err = layer(ctx, *out, *version, stdout)
	case "examples":
		err = buildExamples(ctx, *out, stdout)
	case "publish-layer":
		err = publish(ctx, *out, *version, os.Getenv, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "dist: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "dist:", err)
		return 1
	}
	return 0
}

// layer builds both layer zips and reports their size and the extension's
// idle memory.
func layer(ctx context.Context, out, version string, stdout io.Writer) error {
	work, err := os.MkdirTemp("", "lambdarasp-dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	host, hostOK := hostArch()
	var hostBin string
	for _, a := range arches {
		bin, zipPath, err := buildLayer(ctx, ".", work, out, a, version)
		if err != nil {
			return err
		}
		if a == host {
			hostBin = bin
		}
		zst, err := os.Stat(zipPath)
		if err != nil {
			return err
		}
		bst, err := os.Stat(bin)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\t%s (extension %s; target ≤ %s)\n", zipPath, megabytes(zst.Size()), megabytes(bst.Size()), megabytes(maxZipBytes))
	}
	if !hostOK {
		fmt.Fprintln(stdout, "idle memory: not measured (it runs the extension under the emulator: Linux on x86_64 or arm64)")
		return nil
	}
	fn := filepath.Join(work, "function")
	if err := goBuild(ctx, ".", "./internal/emulator/testdata/function", host, fn, ""); err != nil {
		return err
	}
	m, err := idleMemory(ctx, hostBin, fn)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "extension idle RSS (%s, after init and %d invocations): %s; target ≤ %s\n", host.name, idleInvocations, m, megabytes(maxIdleKiB<<10))
	return nil
}

// buildExamples builds every example for every architecture.
func buildExamples(ctx context.Context, out string, stdout io.Writer) error {
	work, err := os.MkdirTemp("", "lambdarasp-dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	for _, name := range examples {
		for _, a := range arches {
			_, zipPath, err := buildExample(ctx, ".", work, out, name, a)
			if err != nil {
				return err
			}
			st, err := os.Stat(zipPath)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\t%s\n", zipPath, megabytes(st.Size()))
		}
	}
	return nil
}

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
