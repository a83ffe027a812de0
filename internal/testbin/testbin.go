// Package testbin builds the programs that integration tests run as real
// processes (the emulator's test function and extension, the extension as
// the layer ships it).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build builds pkgs (package paths or directories, relative to the
// caller's working directory: a test's package directory) with one
// go build into dir, statically linked (CGO_ENABLED=0) so that the
// binaries start the same way everywhere. Each binary is named for its
// package's directory, as go build -o dir/ names it. It is meant for a
// TestMain and costs a go build: seconds on a cold cache.
func Build(dir string, pkgs ...string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command(goCmd, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testbin: go build %v: %w\n%s", pkgs, err, out)
	}
	return nil
}
