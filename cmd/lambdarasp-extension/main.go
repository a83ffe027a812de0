// Command lambdarasp-extension is the lambdarasp Lambda extension: put the
// binary in the layer as extensions/lambdarasp (Lambda runs every file in
// /opt/extensions and registers it under its file name). See package
// extension for what it does, and the README for its settings.
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := extension.FromEnv(os.Getenv)
	cfg.Name = filepath.Base(os.Args[0])
	cfg.Stdout = os.Stdout
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := extension.Run(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "lambdarasp:", err)
		os.Exit(1)
	}
}
