// Command lambdarasp-extension is the lambdarasp Lambda extension: put the
// binary in the layer as extensions/lambdarasp (Lambda runs every file in
// /opt/extensions and registers it under its file name). See package
// extension for what it does, and the README for its settings.
//
// The extension's log lines carry its version, which make layer stamps
// (-ldflags "-X main.version=…"); lambdarasp-extension -version prints it.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/lambdarasp/lambdarasp/extension"
)

// version is the release this binary was built as; make layer sets it.
var version = "dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "-version" || os.Args[1] == "--version") {
		fmt.Println(version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := extension.FromEnv(os.Getenv)
	cfg.Name = filepath.Base(os.Args[0])
	cfg.Environ = os.Environ() // the function's variables: checked for secrets at start
	cfg.Stdout = os.Stdout
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("version", version)
	if err := extension.Run(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "lambdarasp:", err)
		os.Exit(1)
	}
}
