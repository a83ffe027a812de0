package main

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayerZip opens each layer zip as make layer writes it and checks
// what Lambda will unpack into /opt: exactly extensions/lambdarasp, mode
// 0755 in the Unix external attributes, a static stripped ELF executable for
// the zip's architecture, built with -trimpath and stamped with the
// version; the zip within its size target.
func TestLayerZip(t *testing.T) {
	zips := layerZips(t)
	absRoot, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			path := zips[a.name]
			if filepath.Base(path) != "lambdarasp-layer-"+a.name+".zip" {
				t.Errorf("zip named %s", path)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() > maxZipBytes {
				t.Errorf("zip is %d bytes, target %d", st.Size(), maxZipBytes)
			}
			zr, err := zip.OpenReader(path)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			var names []string
			for _, f := range zr.File {
				names = append(names, f.Name)
				if f.CreatorVersion>>8 != 3 {
					t.Errorf("%s: creator %d, want 3 (Unix): Lambda would not read its mode", f.Name, f.CreatorVersion>>8)
				}
			}
			if strings.Join(names, " ") != "extensions/ extensions/lambdarasp" {
				t.Fatalf("entries %q, want only extensions/ and extensions/lambdarasp", names)
			}
			dir, bin := zr.File[0], zr.File[1]
			if dir.Mode() != fs.ModeDir|0o755 {
				t.Errorf("extensions/: mode %v", dir.Mode())
			}
			if got := bin.ExternalAttrs >> 16; got != 0o100755 {
				t.Errorf("extensions/lambdarasp: Unix mode %o, want 100755 (a regular executable file)", got)
			}
			rc, err := bin.Open()
			if err != nil {
				t.Fatal(err)
			}
			exe, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			checkELF(t, exe, a)
			if !bytes.Contains(exe, []byte(testVersion)) {
				t.Errorf("the version %s is not stamped in the binary", testVersion)
			}
			if bytes.Contains(exe, []byte(absRoot)) {
				t.Errorf("the binary holds the build path %s: not built with -trimpath", absRoot)
			}
		})
	}
}

// checkELF checks that exe is a static, stripped Linux executable for a.
func checkELF(t *testing.T, exe []byte, a arch) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(exe))
	if err != nil {
		t.Fatalf("not an ELF file: %v", err)
	}
	defer f.Close()
	if f.Machine != a.machine || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC {
		t.Errorf("ELF %v %v %v, want %v ELFCLASS64 ET_EXEC", f.Machine, f.Class, f.Type, a.machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("dynamically linked (%v): build with CGO_ENABLED=0", p.Type)
		}
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("section %s present: build with -ldflags '-s -w'", s.Name)
		}
	}
}

// TestLayerRuns unpacks the layer for this machine and runs what it holds:
// -version prints the stamped version, and under the emulator the
// extension registers, serves three invocations and stays within its idle
// memory target.
func TestLayerRuns(t *testing.T) {
	a := host(t)
	ext := filepath.Join(t.TempDir(), "lambdarasp")
	if err := unpack(layerZips(t)[a.name], layerExtension, ext); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ext, "-version").Output()
	if err != nil || strings.TrimSpace(string(out)) != testVersion {
		t.Errorf("lambdarasp -version: %q %v, want %s", out, err, testVersion)
	}
	m, err := idleMemory(context.Background(), ext, emulatorFunction(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("idle memory: %v", m)
	if m.rss > maxIdleKiB {
		t.Errorf("idle RSS %v, target %d KiB", m, maxIdleKiB)
	}
}

// TestPublishLayer prints a publish command per architecture, with both
// runtimes the extension runs on, and runs none in CI or without
// credentials (the aws command here would fail the test if it ran).
func TestPublishLayer(t *testing.T) {
	out := filepath.Dir(layerZips(t)["arm64"])
	t.Setenv("HOME", t.TempDir()) // no ~/.aws
	t.Setenv("PATH", t.TempDir()) // no aws command: running one would be an error
	for _, c := range []struct {
		env  map[string]string
		note string
	}{
		{map[string]string{"CI": "true", "AWS_PROFILE": "prod"}, "CI is set: not publishing"},
		{map[string]string{}, "no AWS credentials found"},
	} {
		var stdout, stderr bytes.Buffer
		err := publish(context.Background(), out, "v1.2.3", func(k string) string { return c.env[k] }, &stdout, &stderr)
		if err != nil || !strings.Contains(stderr.String(), c.note) {
			t.Errorf("%v: %v, stderr %q, want %q", c.env, err, stderr.String(), c.note)
		}
		for _, a := range arches {
			want := "aws lambda publish-layer-version --layer-name lambdarasp-" + a.name + " --description 'lambdarasp extension v1.2.3' --zip-file fileb://" +
				filepath.Join(out, "lambdarasp-layer-"+a.name+".zip") + " --compatible-runtimes provided.al2023 provided.al2 --compatible-architectures " + a.name + "\n"
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%v: stdout lacks\n%s\n%s", c.env, want, stdout.String())
			}
		}
	}
	var stdout, stderr bytes.Buffer
	err := publish(context.Background(), out, "v1.2.3", func(k string) string { return map[string]string{"AWS_PROFILE": "prod"}[k] }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "aws command is not on PATH") {
		t.Errorf("with credentials and no aws command: %v", err)
	}
	if err := publish(context.Background(), t.TempDir(), "v1", os.Getenv, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "make layer") {
		t.Errorf("without zips: %v", err)
	}
}
