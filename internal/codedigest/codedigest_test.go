package codedigest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// tree is a deployment: path → content, mode; a mode with fs.ModeSymlink
// makes a link whose target is the content.
type tree map[string]struct {
	content string
	mode    fs.FileMode
}

var sample = tree{
	"bootstrap":          {"\x7fELF binary", 0o755},
	"config/app.json":    {`{"a":1}`, 0o640},
	"config/current":     {"app.json", fs.ModeSymlink | 0o777},
	"config.yaml":        {"x: 1\n", 0o644},
	"static/é/index.htm": {"<p>", 0o600},
}

// want spells the definition out: one line per entry, sorted by path
// ("config.yaml" before "config/…": '.' < '/').
func want() string {
	return hexsum(hexsum("\x7fELF binary") + " x bootstrap\n" +
		hexsum("x: 1\n") + " f config.yaml\n" +
		hexsum(`{"a":1}`) + " f config/app.json\n" +
		hexsum("app.json") + " l config/current\n" +
		hexsum("<p>") + " f static/é/index.htm\n")
}

func hexsum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func writeDir(t *testing.T, tr tree) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil { // counts for nothing
		t.Fatal(err)
	}
	for p, f := range tr {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if f.mode&fs.ModeSymlink != 0 {
			if err := os.Symlink(f.content, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(f.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeZip(t *testing.T, tr tree, extra ...string) *zip.Reader {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, d := range []string{"config/", "static/"} { // directory entries, as zip -r writes them
		if _, err := w.CreateHeader(&zip.FileHeader{Name: d}); err != nil {
			t.Fatal(err)
		}
	}
	for p, f := range tr {
		h := &zip.FileHeader{Name: p, Method: zip.Deflate}
		h.SetMode(f.mode)
		fw, err := w.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(f.content))
	}
	for _, name := range extra {
		fw, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte("extra"))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := zip.NewReader(bytes.NewReader(b.Bytes()), int64(b.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The directory and the zip of one deployment have the digest the
// definition spells out.
func TestDirAndZipAgree(t *testing.T) {
	w := want()
	d, err := Dir(writeDir(t, sample), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	z, err := Zip(writeZip(t, sample), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if d.SHA256 != w || z.SHA256 != w {
		t.Errorf("dir %s, zip %s, want %s", d.SHA256, z.SHA256, w)
	}
	if d.Files != 5 || d.Bytes != int64(len("\x7fELF binary")+len(`{"a":1}`)+len("x: 1\n")+len("<p>")) || d != z {
		t.Errorf("dir %+v, zip %+v", d, z)
	}
}

// Each change a deployment can undergo changes the digest; a change of
// the permission bits other than execution does not.
func TestDigestChanges(t *testing.T) {
	base := want()
	cases := []struct {
		name   string
		change func(dir string) error
		same   bool
	}{
		{"content", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("x: 2\n"), 0o644)
		}, false},
		{"executable bit", func(dir string) error { return os.Chmod(filepath.Join(dir, "config.yaml"), 0o744) }, false},
		{"new file", func(dir string) error { return os.WriteFile(filepath.Join(dir, "static/x"), nil, 0o644) }, false},
		{"renamed", func(dir string) error {
			return os.Rename(filepath.Join(dir, "config.yaml"), filepath.Join(dir, "config.yml"))
		}, false},
		{"link target", func(dir string) error {
			p := filepath.Join(dir, "config/current")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("/etc/passwd", p)
		}, false},
		{"file made a link to itself", func(dir string) error {
			p := filepath.Join(dir, "config/app.json")
			if err := os.Rename(p, filepath.Join(dir, "app.json")); err != nil {
				return err
			}
			return os.Symlink("../app.json", p)
		}, false},
		{"read bits", func(dir string) error { return os.Chmod(filepath.Join(dir, "config.yaml"), 0o600) }, true},
		{"empty directory", func(dir string) error { return os.Mkdir(filepath.Join(dir, "static/new"), 0o755) }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeDir(t, sample)
			if err := c.change(dir); err != nil {
				t.Fatal(err)
			}
			s, err := Dir(dir, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if (s.SHA256 == base) != c.same {
				t.Errorf("digest %s, before %s: want the same: %v", s.SHA256, base, c.same)
			}
		})
	}
}

// Trees without a digest are errors that say why, and the bounds stop
// the walk.
func TestNoDigest(t *testing.T) {
	t.Run("files over the bound", func(t *testing.T) {
		_, err := Dir(writeDir(t, sample), Limits{Files: 4})
		if !errors.Is(err, ErrOverBound) || !strings.Contains(err.Error(), "more than 4 files") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("bytes over the bound", func(t *testing.T) {
		_, err := Dir(writeDir(t, sample), Limits{Bytes: 20})
		if !errors.Is(err, ErrOverBound) || !strings.Contains(err.Error(), "more than 20 bytes") {
			t.Errorf("err %v", err)
		}
		_, err = Zip(writeZip(t, sample), Limits{Bytes: 20})
		if !errors.Is(err, ErrOverBound) {
			t.Errorf("zip: err %v", err)
		}
	})
	t.Run("exactly at the bounds", func(t *testing.T) {
		if _, err := Dir(writeDir(t, sample), Limits{Files: 5, Bytes: 26}); err != nil {
			t.Errorf("err %v", err)
		}
	})
	t.Run("pipe", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no mkfifo on windows")
		}
		dir := writeDir(t, sample)
		if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Dir(dir, Limits{}); err == nil || !strings.Contains(err.Error(), "fifo: a p") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("line break in a path", func(t *testing.T) {
		dir := writeDir(t, sample)
		if err := os.WriteFile(filepath.Join(dir, "a\nb"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Dir(dir, Limits{}); err == nil || !strings.Contains(err.Error(), "line break") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		dir := writeDir(t, sample)
		if _, err := Dir(filepath.Join(dir, "bootstrap"), Limits{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("err %v", err)
		}
	})
	for _, name := range []string{"../evil", "/etc/cron.d/x", "a/../../x"} {
		t.Run("zip "+name, func(t *testing.T) {
			if _, err := Zip(writeZip(t, sample, name), Limits{}); err == nil || !strings.Contains(err.Error(), "leaves the root") {
				t.Errorf("err %v", err)
			}
		})
	}
	t.Run("zip with one path twice", func(t *testing.T) {
		if _, err := Zip(writeZip(t, sample, "./config.yaml"), Limits{}); err == nil || !strings.Contains(err.Error(), "config.yaml: two entries") {
			t.Errorf("err %v", err)
		}
	})
}

// A link's target is not content: a link after the bytes are spent has
// the same digest as without a bound.
func TestLinkAtBound(t *testing.T) {
	tr := tree{"a": {"0123456789", 0o644}, "b": {"a-long-link-target", fs.ModeSymlink | 0o777}}
	dir := writeDir(t, tr)
	free, err := Dir(dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []func(Limits) (Sum, error){
		func(l Limits) (Sum, error) { return Dir(dir, l) },
		func(l Limits) (Sum, error) { return Zip(writeZip(t, tr), l) },
	} {
		if at, err := s(Limits{Bytes: 10}); err != nil || at != free {
			t.Errorf("at the bound %+v, %v; without one %+v", at, err, free)
		}
	}
}
