package waf

import "slices"

// acMatcher finds every occurrence of a set of byte strings in one pass
// (Aho-Corasick, overlapping matches: a scan reports each atom contained
// in the text, even inside another). The root's transitions are a dense
// table; other states keep their few edges in a flat sorted list, which is
// small for the thousands of atoms the gate scans for.
type acMatcher struct {
	root  [256]int32
	first []int32 // state → index of its first edge in label/next
	label []byte
	next  []int32
	fail  []int32
	atom  []int32 // state → atom ending here, or -1
	out   []int32 // state → nearest state on the fail chain with an atom, or -1
}

// newACMatcher builds a matcher for atoms; atom ids are their indexes.
func newACMatcher(atoms []string) *acMatcher {
	// The trie, with map edges while building.
	edges := []map[byte]int32{{}}
	atom := []int32{-1}
	for id, a := range atoms {
		s := int32(0)
		for i := 0; i < len(a); i++ {
			n, ok := edges[s][a[i]]
			if !ok {
				n = int32(len(edges))
				edges = append(edges, map[byte]int32{})
				atom = append(atom, -1)
				edges[s][a[i]] = n
			}
			s = n
		}
		atom[s] = int32(id)
	}
	m := &acMatcher{
		first: make([]int32, len(edges)+1),
		fail:  make([]int32, len(edges)),
		atom:  atom,
		out:   make([]int32, len(edges)),
	}
	var labels []byte
	for s, e := range edges {
		m.first[s] = int32(len(m.label))
		labels = labels[:0]
		for c := range e {
			labels = append(labels, c)
		}
		slices.Sort(labels)
		for _, c := range labels {
			m.label = append(m.label, c)
			m.next = append(m.next, e[c])
		}
	}
	m.first[len(edges)] = int32(len(m.label))
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
	return m
}

// step is the goto function with failure links.
func (m *acMatcher) step(s int32, c byte) int32 {
	for s != 0 {
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

// scan calls hit with the id of every atom occurring in text, once per
// occurrence.
func (m *acMatcher) scan(text string, hit func(atom int32)) {
	s := int32(0)
	for i := 0; i < len(text); i++ {
		s = m.step(s, text[i])
		for o := s; o >= 0; o = m.out[o] {
			if a := m.atom[o]; a >= 0 {
				hit(a)
			}
		}
	}
}
