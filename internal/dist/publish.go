package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// layerName is the name a layer is published under for a: one layer per
// architecture, so that a function's layer ARN says which binary it gets.
func layerName(a arch) string { return "lambdarasp-" + a.name }

// publishArgs are the aws CLI arguments that publish the layer zip for a.
// provided.al2 is listed beside provided.al2023: the extension is a static
// binary and runs on both.
func publishArgs(out, version string, a arch) []string {
	return []string{"lambda", "publish-layer-version",
		"--layer-name", layerName(a),
		"--description", "lambdarasp extension " + version,
		"--zip-file", "fileb://" + filepath.Join(out, layerZip(a)),
		"--compatible-runtimes", "provided.al2023", "provided.al2",
		"--compatible-architectures", a.name,
	}
}

// credentialVars are the variables through which the aws CLI finds
// credentials without a file.
var credentialVars = []string{"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"}

// publish prints the publish-layer-version command for each layer zip and
// runs them when AWS credentials are present (a variable above, or
// ~/.aws/credentials or ~/.aws/config) and CI is not set.
func publish(ctx context.Context, out, version string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cmds [][]string
	for _, a := range arches {
		if _, err := os.Stat(filepath.Join(out, layerZip(a))); err != nil {
			return fmt.Errorf("%w: build the layer first (make layer)", err)
		}
		args := publishArgs(out, version, a)
		cmds = append(cmds, args)
		fmt.Fprintln(stdout, shellQuote(append([]string{"aws"}, args...)))
	}
	if getenv("CI") != "" {
		fmt.Fprintln(stderr, "CI is set: not publishing (run the commands above yourself)")
		return nil
	}
	if !hasCredentials(getenv) {
		fmt.Fprintln(stderr, "no AWS credentials found (AWS_PROFILE, AWS_ACCESS_KEY_ID, ~/.aws/credentials…): not publishing; run the commands above with credentials")
		return nil
	}
	awsCmd, err := exec.LookPath("aws")
	if err != nil {
		return errors.New("AWS credentials are present but the aws command is not on PATH: install the AWS CLI or run the commands above elsewhere")
	}
	for _, args := range cmds {
		cmd := exec.CommandContext(ctx, awsCmd, args...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("aws %s: %w", strings.Join(args[:2], " "), err)
		}
	}
	return nil
}

func hasCredentials(getenv func(string) string) bool {
	for _, v := range credentialVars {
		if getenv(v) != "" {
			return true
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return false
	}
	for _, f := range []string{"credentials", "config"} {
		if _, err := os.Stat(filepath.Join(home, ".aws", f)); err == nil {
			return true
		}
	}
	return false
}

// shellQuote joins args for a POSIX shell, quoting those that need it.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@+", r))
		}) < 0 {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
