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
	return build("", nil, append([]string{"-o", dir + string(filepath.Separator)}, pkgs...)...)
}

// BuildModule builds the main package at the root of the module in
// moduleDir — one a test writes, apart from this module — into
// dir/name, offline (GOPROXY=off, GOWORK=off): what it requires must be
// replaced by directories or already be in the module cache.
func BuildModule(dir, name, moduleDir string) error {
	return build(moduleDir, []string{"GOPROXY=off", "GOWORK=off", "GOFLAGS=-mod=mod"}, "-o", filepath.Join(dir, name), ".")
}

func build(workDir string, env []string, args ...string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goCmd, append([]string{"build"}, args...)...)
	cmd.Dir = workDir
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testbin: go build %v: %w\n%s", args, err, out)
	}
	return nil
}
