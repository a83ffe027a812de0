package main

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// arch is a Lambda architecture and the Go target that builds for it.
type arch struct {
	name    string      // as Lambda names it: x86_64, arm64
	goarch  string      // GOARCH
	machine elf.Machine // the ELF e_machine Lambda's hosts run
}

// arches are the architectures Lambda offers; every artifact is built for each.
var arches = []arch{
	{"x86_64", "amd64", elf.EM_X86_64},
	{"arm64", "arm64", elf.EM_AARCH64},
}

// hostArch is the entry of arches this machine runs, if any.
func hostArch() (arch, bool) {
	for _, a := range arches {
		if a.goarch == runtime.GOARCH && runtime.GOOS == "linux" {
			return a, true
		}
	}
	return arch{}, false
}

// examples are the example functions under examples/, each a main package
// with its own README and SAM template.yaml, built as a provided.al2023
// bootstrap.
var examples = []string{"apigw-http", "sqs-worker", "s3-processor", "direct-invoke"}

// The paths of the artifacts in the output directory, which the templates
// name (their test holds them to these).
func layerZip(a arch) string                { return "lambdarasp-layer-" + a.name + ".zip" }
func exampleZip(name string, a arch) string { return name + "-" + a.name + ".zip" }

// Where things sit inside the zips: Lambda runs every file in
// /opt/extensions (a layer is unpacked in /opt) and registers it under its
// file name; a provided.al2023 function's code is unpacked in /var/task
// and Lambda runs its bootstrap.
const (
	layerExtension = "extensions/lambdarasp"
	functionBinary = "bootstrap"
)

// functionTags are the build tags of a function that imports protect, as
// the README's Deploy section tells users to build theirs:
//   - lambda.norpc: a provided.al2023 function never serves aws-lambda-go's
//     net/rpc protocol; without net/rpc, its reflection no longer keeps
//     every exported method of every type in the binary;
//   - coraza.disabled_operators.validateSchema: Coraza's @validateSchema
//     reads its JSON schema from the WAF's root file system, which in
//     lambdarasp holds only the embedded CRS files, so no rule can use it;
//     leaving it out drops the JSON Schema library and what it links
//     (a YAML parser, a second JSON encoder, i18n tables).
//
// Together, 20.7 -> 15.5 MB for bench/coldstart/lambdarasp (bench/RESULTS.md).
var functionTags = []string{"lambda.norpc", "coraza.disabled_operators.validateSchema"}

// goBuild builds pkg (a package path relative to root) into out for Linux
// on a, as Lambda runs it: statically linked (CGO_ENABLED=0), stripped
// (-s -w), -trimpath, with the build tags given (functionTags for a
// function) and version stamped into main.version when it is not empty.
func goBuild(ctx context.Context, root, pkg string, a arch, out, version string, tags ...string) error {
	ldflags := "-s -w"
	if version != "" {
		ldflags += " -X main.version=" + version
	}
	args := []string{"build", "-trimpath", "-ldflags", ldflags}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(args, "-o", out, pkg)
	cmd := exec.CommandContext(ctx, goCommand(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+a.goarch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", pkg, a.name, err, b)
	}
	return nil
}

// goCommand is the go command: the one on PATH, else this toolchain's.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// buildLayer builds the extension for a into work and packs it into
// out/lambdarasp-layer-<arch>.zip as extensions/lambdarasp, mode 0755,
// with nothing else. It returns the binary's and the zip's paths.
func buildLayer(ctx context.Context, root, work, out string, a arch, version string) (bin, zipPath string, err error) {
	bin = filepath.Join(work, a.name, "lambdarasp")
	if err := goBuild(ctx, root, "./cmd/lambdarasp-extension", a, bin, version); err != nil {
		return "", "", err
	}
	zipPath = filepath.Join(out, layerZip(a))
	return bin, zipPath, packZip(zipPath, []zipEntry{{name: "extensions/", mode: 0o755 | os.ModeDir}, {name: layerExtension, mode: 0o755, file: bin}})
}

// buildExample builds examples/<name> for a as a provided.al2023 bootstrap
// into work and packs it into out/<name>-<arch>.zip. It returns the
// binary's and the zip's paths.
func buildExample(ctx context.Context, root, work, out, name string, a arch) (bin, zipPath string, err error) {
	bin = filepath.Join(work, name, a.name, functionBinary)
	if err := goBuild(ctx, root, "./examples/"+name, a, bin, "", functionTags...); err != nil {
		return "", "", err
	}
	zipPath = filepath.Join(out, exampleZip(name, a))
	return bin, zipPath, packZip(zipPath, []zipEntry{{name: functionBinary, mode: 0o755, file: bin}})
}
