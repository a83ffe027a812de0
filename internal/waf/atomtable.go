package waf

import (
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"sync"
)

// The atom analysis of the embedded rules' patterns (about 50 ms for the
// CRS) is done when the rules change, not at every cold start: atoms.bin
// holds the result for every @rx pattern of rules.Directives, keyed by the
// pattern's SHA-256. `make generate` rewrites it; TestAtomTable fails when
// it is stale. Patterns not in it (user rules, the Runtime API address
// rule of a real environment) are analysed at init.
//
// Format: the magic line, then per pattern its 16-byte key, a mode byte
// (1: the atoms are of values with evasionChars deleted, see bestAtoms), a
// uvarint n (0: no atoms, the pattern runs on every value; else n-1 atoms)
// and each atom as a uvarint length and its bytes.
//
//go:embed atoms.bin
var atomTableData string

const atomTableMagic = "lambdarasp atoms 2\n"

type atomKey [16]byte

func patternKey(pattern string) atomKey {
	sum := sha256.Sum256([]byte(pattern))
	return atomKey(sum[:16])
}

type atomEntry struct {
	set     []string
	ok      bool
	deleted bool
}

// atomTable is atoms.bin decoded; its atoms are slices of the embedded
// string, not copies. A malformed table decodes as empty (every pattern
// is then analysed at init, and TestAtomTable fails).
var atomTable = sync.OnceValue(func() map[atomKey]atomEntry {
	m := map[atomKey]atomEntry{}
	d := atomTableData
	if len(d) < len(atomTableMagic) || d[:len(atomTableMagic)] != atomTableMagic {
		return m
	}
	d = d[len(atomTableMagic):]
	uvarint := func() (int, bool) {
		v, n := binary.Uvarint([]byte(d[:min(len(d), binary.MaxVarintLen64)]))
		if n <= 0 || v > uint64(len(d)) {
			return 0, false
		}
		d = d[n:]
		return int(v), true
	}
	for len(d) > 0 {
		if len(d) < 17 {
			return map[atomKey]atomEntry{}
		}
		k := atomKey([]byte(d[:16]))
		deleted := d[16] == 1
		d = d[17:]
		n, ok := uvarint()
		if !ok {
			return map[atomKey]atomEntry{}
		}
		e := atomEntry{ok: n > 0, deleted: deleted}
		for i := 1; i < n; i++ {
			l, ok := uvarint()
			if !ok || l > len(d) {
				return map[atomKey]atomEntry{}
			}
			e.set = append(e.set, d[:l])
			d = d[l:]
		}
		m[k] = e
	}
	return m
})

// tableEntry returns the stored analysis of pattern, if it has one.
func tableEntry(pattern string) (atomEntry, bool) {
	e, ok := atomTable()[patternKey(pattern)]
	return e, ok
}

// patternAtoms is bestAtoms(pattern), from the table when it has the
// pattern.
func patternAtoms(pattern string) (set []string, ok, deleted bool) {
	if e, ok := tableEntry(pattern); ok {
		return e.set, e.ok, e.deleted
	}
	return bestAtoms(pattern)
}
