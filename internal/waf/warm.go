package waf

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
)

// A function's events repeat most of their strings invocation after
// invocation: header names and most header values, JSON keys, query
// names, enumerated values. What the gate learns about a string — its
// byte features, the rules whose atoms it contains, the operators run on
// it and their answers, what each transformation makes of it — depends
// only on the string (volatile rules aside, which evaluate runs again for
// every transaction), so a plan keeps it across events in a warmCache: an
// event's string cache (strCache) starts from it, and gives back what the
// event learnt when it ends.
//
// Bounds: a string is kept only once it has been seen in two events (one
// seen only once costs a hash, not a copy), only when it is at most
// maxWarmLen bytes, and at most maxWarmStrings of them per plan, with
// their bitsets and transformation results (which obey the same length
// bound), and at most maxWarmBytes of strings and results in all (with
// the bitsets, step lists and the seen hashes: under 6 MB per plan at
// worst, measured). A full cache keeps the strings events used since it was last
// full and drops the others (emptied when all were used): the strings
// every event repeats, such as a large body's keys, stay while one-off
// values come and go. Nothing here is ever logged; the strings are the
// event's own, as the handler holds them.
type warmCache struct {
	bitsLen, steps int // of the plan: a string's bitsets' length, the transformation steps
	mu             sync.RWMutex
	strs           map[string]*warmStr
	// seen holds the hashes of strings met in one event and not kept yet.
	seen map[uint64]struct{}
	// bytes counts the bytes of the strings and results kept.
	bytes int
	// evicted: the learn running has evicted once; it does not evict
	// again (that would drop the strings it used, see evict).
	evicted bool
	seed    maphash.Seed
}

const (
	maxWarmLen     = 256
	maxWarmStrings = 8192
	maxWarmBytes   = 1 << 20
	maxWarmSeen    = 4 * maxWarmStrings
)

// warmStr is what the gate knows of one string (see strInfo).
type warmStr struct {
	s       string // the string, as the cache's key holds it
	feat    uint16
	scanned uint8
	bits    []uint64 // as in strCache.arena (gateIndex.bitsLen); nil until known
	steps   []warmStep
	// used: an event met it in the cache since the cache was last full.
	used bool
}

// warmStep is what transformation step st makes of the string: same when
// the string itself (identity or failure), else out.
type warmStep struct {
	st   int32
	same bool
	out  string
}

func newWarmCache(bitsLen, steps int) *warmCache {
	return &warmCache{bitsLen: bitsLen, steps: steps, strs: map[string]*warmStr{}, seen: map[uint64]struct{}{}, seed: maphash.MakeSeed()}
}

// An event's string cache holds w.mu read-locked from newStrCache to
// release (so that reading costs no atomic operation per string), and
// learn takes the write lock only if it is free at once: an event never
// waits for another, and one that cannot teach drops what it learnt.

// get returns what is known of s, or nil; the caller holds w.mu.
func (w *warmCache) get(s string) *warmStr {
	if w == nil || len(s) > maxWarmLen {
		return nil
	}
	return w.strs[s]
}

// step returns what step st makes of the string ws is known as; the caller
// holds w.mu.
func (w *warmCache) step(ws *warmStr, st int32) (ok, same bool, out string) {
	for _, s := range ws.steps {
		if s.st == st {
			return true, s.same, s.out
		}
	}
	return false, false, ""
}

// load copies what is known of ws into string i of c; the caller holds
// w.mu.
func (w *warmCache) load(c *strCache, i int32, ws *warmStr) {
	in := &c.info[i]
	in.warm, in.feat, in.scanned = ws, ws.feat, ws.scanned
	if ws.bits != nil {
		in.bits = int32(len(c.arena))
		c.arena = append(c.arena, ws.bits...)
	}
}

// learn keeps what the event behind c learnt about its short strings:
// strings already kept get the new answers; others are kept the second
// time an event meets them.
func (w *warmCache) learn(c *strCache) {
	n, steps := w.bitsLen, w.steps
	if !w.mu.TryLock() {
		return
	}
	defer w.mu.Unlock()
	w.evicted = false
	for i := range c.info {
		in := &c.info[i]
		if in.s == "" || len(in.s) > maxWarmLen {
			continue
		}
		ws := in.warm
		if ws != nil && w.strs[ws.s] != ws {
			ws = nil // dropped since the event began: counted afresh below
		}
		if ws == nil {
			ws = w.strs[in.s]
		}
		if ws != nil {
			ws.used = true
			if ws == in.warm && !in.learnt {
				continue // it knew all this event knows
			}
		} else {
			if !w.seenBefore(in.s) {
				continue
			}
			if len(w.strs) >= maxWarmStrings && !w.evict() {
				return
			}
			if !w.room(len(in.s)) {
				continue
			}
			ws = &warmStr{s: strings.Clone(in.s), feat: in.feat}
			w.strs[ws.s] = ws
		}
		ws.scanned |= in.scanned
		if in.bits >= 0 {
			if ws.bits == nil {
				ws.bits = make([]uint64, n)
			}
			for k, b := range c.arena[in.bits : in.bits+int32(n)] {
				ws.bits[k] |= b
			}
		}
		if in.next < 0 {
			continue
		}
		for st, j := range c.nexts[in.next : in.next+int32(steps)] {
			if j == 0 || slices.ContainsFunc(ws.steps, func(s warmStep) bool { return s.st == int32(st) }) {
				continue
			}
			out := c.info[j-1].s
			same := j-1 == int32(i)
			if !same && (out == "" || len(out) > maxWarmLen) {
				continue
			}
			if !same {
				if !w.room(len(out)) {
					break // ws went with the rest
				}
				out = strings.Clone(out)
			}
			ws.steps = append(ws.steps, warmStep{st: int32(st), same: same, out: out})
		}
	}
}

// room counts n more bytes of strings to keep, or, when they would pass
// maxWarmBytes, evicts and reports false: they are not to be kept (nor
// anything more of what the caller was adding to).
func (w *warmCache) room(n int) bool {
	if w.bytes+n > maxWarmBytes {
		w.evict()
		return false
	}
	w.bytes += n
	return true
}

// evict drops the strings no event met in the cache since the last
// eviction, or all of them when every one was, and starts counting use
// again; it reports false, doing nothing, when this learn has evicted
// already.
func (w *warmCache) evict() bool {
	if w.evicted {
		return false
	}
	w.evicted = true
	n := len(w.strs)
	w.bytes = 0
	for s, ws := range w.strs {
		if !ws.used {
			delete(w.strs, s)
			continue
		}
		ws.used = false
		w.bytes += ws.size()
	}
	if len(w.strs) == n {
		clear(w.strs)
		w.bytes = 0
	}
	return true
}

// size is the bytes of ws counted against maxWarmBytes: its string and
// the strings its steps make.
func (ws *warmStr) size() int {
	n := len(ws.s)
	for _, st := range ws.steps {
		if !st.same {
			n += len(st.out)
		}
	}
	return n
}

// seenBefore reports whether s was met in an earlier event, and notes that
// it was met in this one.
func (w *warmCache) seenBefore(s string) bool {
	h := maphash.String(w.seed, s)
	if _, ok := w.seen[h]; ok {
		delete(w.seen, h)
		return true
	}
	if len(w.seen) >= maxWarmSeen {
		clear(w.seen)
	}
	w.seen[h] = struct{}{}
	return false
}
