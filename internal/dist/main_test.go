package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// root is the repository's root, from this package's directory.
const root = "../.."

// testVersion is the version the tests stamp into the extension.
const testVersion = "v0.0.0-disttest"

// work holds what the tests build, once per run and shared between tests:
// cross-architecture builds are the slow part.
var work string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lambdarasp-dist-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	work = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// built is a set of artifacts built at most once per test run.
type built struct {
	once  sync.Once
	paths map[string]string
	err   error
}

// get builds with fn the first time it is called, and returns its paths
// (or fails the test with its error) every time.
func (b *built) get(t *testing.T, fn func(ctx context.Context, paths map[string]string) error) map[string]string {
	t.Helper()
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b.paths = map[string]string{}
		b.err = fn(ctx, b.paths)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.paths
}

var layers, hostFunction built

// layerZips builds the layer for every architecture, as make layer does,
// into work/dist; the paths are keyed by architecture name.
func layerZips(t *testing.T) map[string]string {
	return layers.get(t, func(ctx context.Context, paths map[string]string) error {
		for _, a := range arches {
			_, zipPath, err := buildLayer(ctx, root, filepath.Join(work, "layer"), filepath.Join(work, "dist"), a, testVersion)
			if err != nil {
				return err
			}
			paths[a.name] = zipPath
		}
		return nil
	})
}

// emulatorFunction builds the emulator's test function (an unmodified
// lambda.Start main) for this machine.
func emulatorFunction(t *testing.T) string {
	a := host(t)
	return hostFunction.get(t, func(ctx context.Context, paths map[string]string) error {
		paths["function"] = filepath.Join(work, "function")
		return goBuild(ctx, root, "./internal/emulator/testdata/function", a, paths["function"], "")
	})["function"]
}

// host is this machine's architecture, or skips the test: the built
// binaries are Linux ones and must run here.
func host(t *testing.T) arch {
	t.Helper()
	a, ok := hostArch()
	if !ok {
		t.Skip("skipped: runs Linux x86_64 or arm64 binaries, and this is not such a machine")
	}
	return a
}
