package waf

import (
	"slices"
	"strings"
)

// acMatcher finds every occurrence of a set of byte strings in one pass
// (Aho-Corasick, overlapping matches: a scan reports each atom contained
// in the text, even inside another). The root's transitions are a dense
// table; other states keep their few edges in a flat sorted list, which is
// small for the thousands of atoms the gate scans for.
//
// Atoms are lowercase, and a text is scanned with its ASCII letters
// lowercased, without a lowered copy of it.
type acMatcher struct {
	root  [256]int32
	first []int32 // state → index of its first edge in label/next
	label []byte
	next  []int32
	fail  []int32
	atom  []int32 // state → atom ending here, or -1
	out   []int32 // state → nearest state on the fail chain with an atom, or -1
	// row[state] indexes dense, the complete transitions (failure links
	// followed) of the states one byte deep, where a scan spends most of
	// its steps; -1 for the others.
	row   []int32
	dense [][256]int32
}

// newACMatcher builds a matcher for atoms; atom ids are their indexes.
func newACMatcher(atoms []string) *acMatcher {
	// The trie, from the atoms in sorted order: each node's children are
	// then created in label order, and an atom can only share the last
	// child of a node with the atoms before it. No maps: this runs at init.
	order := make([]int32, len(atoms))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(atoms[a], atoms[b]) })
	parent, label, atom, last := []int32{-1}, []byte{0}, []int32{-1}, []int32{-1}
	for _, id := range order {
		a, s := atoms[id], int32(0)
		for i := 0; i < len(a); i++ {
			if c := last[s]; c >= 0 && label[c] == a[i] {
				s = c
				continue
			}
			n := int32(len(parent))
			parent, label, atom, last = append(parent, s), append(label, a[i]), append(atom, -1), append(last, -1)
			last[s] = n
			s = n
		}
		atom[s] = id
	}
	n := len(parent)
	m := &acMatcher{
		first: make([]int32, n+1),
		label: make([]byte, n-1),
		next:  make([]int32, n-1),
		fail:  make([]int32, n),
		atom:  atom,
		out:   make([]int32, n),
	}
	// Edges grouped by parent, in creation (so label) order.
	for s := 1; s < n; s++ {
		m.first[parent[s]+1]++
	}
	for s := 1; s <= n; s++ {
		m.first[s] += m.first[s-1]
	}
	pos := slices.Clone(m.first)
	for s := 1; s < n; s++ {
		p := parent[s]
		m.label[pos[p]], m.next[pos[p]] = label[s], int32(s)
		pos[p]++
	}
	m.row = make([]int32, n)
	for s := range m.row {
		m.row[s] = -1
	}
	// Failure links, breadth first.
	queue := []int32{}
	for i := m.first[0]; i < m.first[1]; i++ {
		m.root[m.label[i]] = m.next[i]
		queue = append(queue, m.next[i])
	}
	m.out[0] = -1
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := m.fail[s]
		if m.atom[f] >= 0 {
			m.out[s] = f
		} else {
			m.out[s] = m.out[f]
		}
		if s == 0 {
			continue
		}
		for i := m.first[s]; i < m.first[s+1]; i++ {
			n := m.next[i]
			m.fail[n] = m.step(f, m.label[i])
			queue = append(queue, n)
		}
	}
	for i := m.first[0]; i < m.first[1]; i++ {
		s := m.next[i]
		var d [256]int32
		for c := range d {
			d[c] = m.walk(s, byte(c))
		}
		m.row[s] = int32(len(m.dense))
		m.dense = append(m.dense, d)
	}
	return m
}

// step is the goto function with failure links.
func (m *acMatcher) step(s int32, c byte) int32 {
	if r := m.row[s]; r >= 0 {
		return m.dense[r][c]
	}
	return m.walk(s, c)
}

// walk is step without the dense rows.
func (m *acMatcher) walk(s int32, c byte) int32 {
	for s != 0 {
		if r := m.row[s]; r >= 0 {
			return m.dense[r][c]
		}
		lo, hi := m.first[s], m.first[s+1]
		for i := lo; i < hi; i++ {
			if m.label[i] == c {
				return m.next[i]
			}
		}
		s = m.fail[s]
	}
	return m.root[c]
}

// lowerBytes maps each byte to itself with ASCII letters lowercased.
var lowerBytes = func() (t [256]byte) {
	for c := range t {
		t[c] = lowerByte(byte(c))
	}
	return t
}()

// scan appends to found the id of every atom occurring in
// frame+text+frame (ASCII letters lowercased), once per occurrence.
func (m *acMatcher) scan(text string, found []int32) []int32 {
	s := int32(0)
	for i := -1; i <= len(text); i++ {
		c := frame[0]
		if i >= 0 && i < len(text) {
			c = lowerBytes[text[i]]
		}
		s = m.step(s, c)
		for o := s; o >= 0; o = m.out[o] {
			if a := m.atom[o]; a >= 0 {
				found = append(found, a)
			}
		}
	}
	return found
}

// found reports whether an atom occurs in frame+text+frame (ASCII
// letters lowercased).
func (m *acMatcher) found(text string) bool {
	s := m.step(0, frame[0])
	if m.out[s] >= 0 || m.atom[s] >= 0 {
		return true
	}
	for i := 0; i <= len(text); i++ {
		c := frame[0]
		if i < len(text) {
			c = lowerBytes[text[i]]
		}
		if s = m.step(s, c); m.atom[s] >= 0 || m.out[s] >= 0 {
			return true
		}
	}
	return false
}
