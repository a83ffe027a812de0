package codedigest

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// The bounds on a tree. MaxBytes is above Lambda's 250 MB (262,144,000
// bytes) of unzipped code.
const (
	MaxFiles = 20000
	MaxBytes = 256 << 20
)

// ErrOverBound is returned, wrapped, for a tree with more than MaxFiles
// entries or MaxBytes bytes of content.
var ErrOverBound = errors.New("over the bound")

// Limits bound one digest. A zero field takes MaxFiles or MaxBytes.
type Limits struct {
	Files int
	Bytes int64
}

func (l Limits) withDefaults() Limits {
	if l.Files <= 0 {
		l.Files = MaxFiles
	}
	if l.Bytes <= 0 {
		l.Bytes = MaxBytes
	}
	return l
}

// Sum is a tree's digest and what went into it.
type Sum struct {
	SHA256 string // 64 lowercase hex digits
	Files  int    // entries: regular files and symbolic links
	Bytes  int64  // content of the regular files
}

// entry is one line of the digest.
type entry struct {
	path    string
	kind    byte // 'f', 'x' or 'l'
	content [sha256.Size]byte
}

// digest is the entries of one tree as they are hashed, with the bounds
// they are held to.
type digest struct {
	lim     Limits
	entries []entry
	bytes   int64
	buf     []byte // one copy buffer for every file
}

// add hashes one entry's content, read from r; size is what the tree says
// it holds, checked against the bounds before anything is read.
func (d *digest) add(p string, kind byte, size int64, r io.Reader) error {
	if strings.ContainsAny(p, "\n\r") {
		return fmt.Errorf("%q: a path with a line break has no digest", p)
	}
	if len(d.entries) >= d.lim.Files {
		return fmt.Errorf("more than %d files: %w", d.lim.Files, ErrOverBound)
	}
	left := d.lim.Bytes - d.bytes
	if kind != 'l' && size > left {
		return fmt.Errorf("more than %d bytes: %w", d.lim.Bytes, ErrOverBound)
	}
	h := sha256.New()
	// A file that grows while it is read (or a zip header that lies about
	// its size) is still held to the bound. A link's target is not
	// content: it is read whole (readlink and addZip bound it).
	if kind != 'l' {
		r = io.LimitReader(r, left+1)
	}
	if d.buf == nil {
		d.buf = make([]byte, 64<<10)
	}
	n, err := io.CopyBuffer(h, r, d.buf)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if kind != 'l' {
		if n > left {
			return fmt.Errorf("more than %d bytes: %w", d.lim.Bytes, ErrOverBound)
		}
		d.bytes += n
	}
	e := entry{path: p, kind: kind}
	h.Sum(e.content[:0])
	d.entries = append(d.entries, e)
	return nil
}

func (d *digest) sum() (Sum, error) {
	slices.SortFunc(d.entries, func(a, b entry) int { return strings.Compare(a.path, b.path) })
	h := sha256.New()
	line := make([]byte, 0, 128)
	for i, e := range d.entries {
		if i > 0 && d.entries[i-1].path == e.path {
			return Sum{}, fmt.Errorf("%s: two entries with this path", e.path)
		}
		line = hex.AppendEncode(line[:0], e.content[:])
		line = append(line, ' ', e.kind, ' ')
		line = append(line, e.path...)
		line = append(line, '\n')
		h.Write(line)
	}
	return Sum{SHA256: hex.EncodeToString(h.Sum(nil)), Files: len(d.entries), Bytes: d.bytes}, nil
}

// Dir returns the digest of the tree at root, a directory (root itself may
// be a symbolic link to one; nothing below it is followed).
func Dir(root string, lim Limits) (Sum, error) {
	st, err := os.Stat(root)
	if err != nil {
		return Sum{}, fmt.Errorf("codedigest: %w", err)
	}
	if !st.IsDir() {
		return Sum{}, fmt.Errorf("codedigest: %s: not a directory", root)
	}
	root, err = filepath.EvalSymlinks(root)
	if err != nil {
		return Sum{}, fmt.Errorf("codedigest: %w", err)
	}
	d := &digest{lim: lim.withDefaults()}
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch t := de.Type(); {
		case t == fs.ModeSymlink:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return d.add(rel, 'l', 0, strings.NewReader(target))
		case t.IsRegular():
			info, err := de.Info()
			if err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return d.add(rel, kindOf(info.Mode()), info.Size(), f)
		default:
			return fmt.Errorf("%s: a %v is neither a file, a link nor a directory", rel, t.Type())
		}
	})
	if err != nil {
		return Sum{}, fmt.Errorf("codedigest: %s: %w", root, err)
	}
	s, err := d.sum()
	if err != nil {
		return Sum{}, fmt.Errorf("codedigest: %s: %w", root, err)
	}
	return s, nil
}

// Zip returns the digest of the tree a deployment zip unpacks to: the
// same as Dir's of the directory it is unpacked into, modes as the zip
// records them.
func Zip(r *zip.Reader, lim Limits) (Sum, error) {
	d := &digest{lim: lim.withDefaults()}
	for _, f := range r.File {
		if err := d.addZip(f); err != nil {
			return Sum{}, fmt.Errorf("codedigest: zip entry %q: %w", f.Name, err)
		}
	}
	s, err := d.sum()
	if err != nil {
		return Sum{}, fmt.Errorf("codedigest: zip: %w", err)
	}
	return s, nil
}

func (d *digest) addZip(f *zip.File) error {
	mode := f.Mode()
	if mode.IsDir() {
		return nil
	}
	name := strings.ReplaceAll(f.Name, `\`, "/") // as unzip tools read names written on Windows
	p := path.Clean(name)
	if path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") || p == "." {
		return errors.New("the path leaves the root")
	}
	var kind byte
	switch {
	case mode&fs.ModeSymlink != 0:
		kind = 'l'
	case mode.IsRegular():
		kind = kindOf(mode)
	default:
		return fmt.Errorf("a %v is neither a file, a link nor a directory", mode.Type())
	}
	if kind == 'l' && f.UncompressedSize64 > 4096 {
		return errors.New("a link target longer than 4096 bytes")
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return d.add(p, kind, int64(f.UncompressedSize64), rc)
}

func kindOf(m fs.FileMode) byte {
	if m&0o111 != 0 {
		return 'x'
	}
	return 'f'
}

// ZipFile is Zip of the zip file at name.
func ZipFile(name string, lim Limits) (Sum, error) {
	z, err := zip.OpenReader(name)
	if err != nil {
		return Sum{}, fmt.Errorf("codedigest: %w", err)
	}
	defer z.Close()
	return Zip(&z.Reader, lim)
}
