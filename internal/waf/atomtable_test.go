package waf

import (
	"bytes"
	"encoding/binary"
	"flag"
	"os"
	"slices"
	"testing"

	"github.com/corazawaf/coraza/v3"

	"github.com/lambdarasp/lambdarasp/rules"
)

var update = flag.Bool("update", false, "rewrite atoms.bin from the embedded rules (make generate)")

// TestAtomTable recomputes the atoms of every @rx pattern of the embedded
// rules and compares them with atoms.bin, and checks that each pattern
// compiles as lazyRX will compile it: patterns in the table are compiled
// on first use only.
func TestAtomTable(t *testing.T) {
	useLazyOperators()
	d, root, err := rules.Directives(rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000, All: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(root).WithDirectives(d))
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := readRules(w)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[atomKey]atomEntry{}
	for _, r := range compiled {
		for c := r; c != nil; c = c.chain {
			// Every @rx, negated ones and implicit ones included: the
			// table also tells lazyRX which patterns are known to compile.
			op, ok := c.op.(lazyRX)
			if !ok {
				continue
			}
			if op.p.args != c.opData {
				t.Fatalf("rule %d: operator pattern %q, rule data %q", c.id, op.p.args, c.opData)
			}
			p := &rxPattern{args: c.opData}
			if p.compile(); p.err != nil {
				t.Fatalf("rule %d: pattern does not compile: %v", c.id, p.err)
			}
			var e atomEntry
			e.set, e.ok, e.deleted = bestAtoms(c.opData)
			entries[patternKey(c.opData)] = e
		}
	}
	if len(entries) < 200 {
		t.Fatalf("only %d @rx patterns in the embedded rules", len(entries))
	}
	want := encodeAtomTable(entries)
	if *update {
		if err := os.WriteFile("atoms.bin", want, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote atoms.bin: %d patterns, %d bytes", len(entries), len(want))
		return
	}
	if !bytes.Equal([]byte(atomTableData), want) {
		t.Fatalf("atoms.bin is stale (the rules or the atom analysis changed): run make generate")
	}
	table := atomTable()
	if len(table) != len(entries) {
		t.Fatalf("atoms.bin decodes to %d patterns, want %d", len(table), len(entries))
	}
	for k, e := range entries {
		if got := table[k]; got.ok != e.ok || got.deleted != e.deleted || !slices.Equal(got.set, e.set) {
			t.Fatalf("atoms.bin entry %x decodes to %q, want %q", k, got.set, e.set)
		}
	}
}

// encodeAtomTable is the atoms.bin for the given analyses, in key order.
func encodeAtomTable(entries map[atomKey]atomEntry) []byte {
	keys := make([]atomKey, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b atomKey) int { return bytes.Compare(a[:], b[:]) })
	out := []byte(atomTableMagic)
	for _, k := range keys {
		e := entries[k]
		out = append(out, k[:]...)
		mode := byte(0)
		if e.deleted {
			mode = 1
		}
		out = append(out, mode)
		n := 0
		if e.ok {
			n = len(e.set) + 1
		}
		out = binary.AppendUvarint(out, uint64(n))
		for _, a := range e.set {
			out = binary.AppendUvarint(out, uint64(len(a)))
			out = append(out, a...)
		}
	}
	return out
}
