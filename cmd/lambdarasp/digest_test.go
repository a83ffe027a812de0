package main

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A deployment directory and its zip print one digest; the wrong
// arguments exit 2 with a message saying what to give.
func TestDigest(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"bootstrap": "binary", "conf/app.json": "{}"}
	zpath := filepath.Join(t.TempDir(), "function.zip")
	zf, err := os.Create(zpath)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(zf)
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		h := &zip.FileHeader{Name: name}
		h.SetMode(0o755)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zf.Close()

	digest := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		status := run(append([]string{"digest"}, args...), nil, &stdout, &stderr)
		return status, stdout.String(), stderr.String()
	}
	ds, dout, _ := digest(dir)
	zs, zout, _ := digest(zpath)
	if ds != 0 || zs != 0 || len(dout) != 65 || dout != zout {
		t.Errorf("dir: %d %q, zip: %d %q; want one 64-digit line from both", ds, dout, zs, zout)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "usage: lambdarasp digest DIR|ZIP"},
		{[]string{dir, zpath}, "usage: lambdarasp digest DIR|ZIP"},
		{[]string{filepath.Join(dir, "missing")}, "no such file or directory: give the deployment directory or zip"},
		{[]string{filepath.Join(dir, "bootstrap")}, "not a valid zip file"},
	} {
		status, out, errOut := digest(c.args...)
		if status != exitUsage || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("digest %q: status %d, stdout %q, stderr %q; want 2 and %q", c.args, status, out, errOut, c.want)
		}
	}
}
