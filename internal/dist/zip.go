package main

import (
	"archive/zip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// zipEntry is one entry of a zip: a directory (name ending in "/") or the
// contents of file.
type zipEntry struct {
	name string
	mode fs.FileMode
	file string
}

// zipTime is every entry's modification time, so that the same binaries
// give the same zip.
var zipTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// packZip writes entries to path (written aside, then renamed). Modes are
// kept as Unix modes in the external attributes, which is where Lambda
// reads the executable bit from when it unpacks a layer or a function.
func packZip(path string, entries []zipEntry) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".zip-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	zw := zip.NewWriter(tmp)
	for _, e := range entries {
		if err := addEntry(zw, e); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := zw.Close(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { // CreateTemp's 0600 is not an artifact's
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func addEntry(zw *zip.Writer, e zipEntry) error {
	h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: zipTime}
	h.SetMode(e.mode) // Unix creator, mode in the high 16 bits of ExternalAttrs
	if e.mode.IsDir() {
		h.Method = zip.Store
		_, err := zw.CreateHeader(h)
		return err
	}
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	f, err := os.Open(e.file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
