package testkit

import (
	"bytes"
	"sort"
)

// Matcher finds many needles in one pass over the bytes (Rabin–Karp on the needles' first
// bytes, with a bit set in front of the candidate table), where Needles.Find makes one pass per
// needle: a scan for every encoding of a dozen keys reads hundreds of megabytes hundreds of
// times otherwise. Find answers exactly what Needles.Find answers.
type Matcher struct {
	k      int      // window: the shortest needle's length, at most 32
	pow    uint64   // base^(k-1)
	bits   []uint64 // 1<<matchBits bits, set by the needles' window hashes
	table  map[uint64][]int
	names  []string
	values [][]byte
	short  []int // needles shorter than 4 bytes: searched one by one
}

const (
	matchBase = 1099511628211 // FNV's prime
	matchBits = 22
)

// Matcher returns a Matcher for the needles (empty ones are never found).
func (n Needles) Matcher() *Matcher {
	m := &Matcher{table: map[uint64][]int{}, bits: make([]uint64, 1<<matchBits/64)}
	for name, v := range n {
		if len(v) == 0 {
			continue
		}
		m.names = append(m.names, name)
		m.values = append(m.values, v)
	}
	m.k = 32
	for _, v := range m.values {
		if len(v) >= 4 && len(v) < m.k {
			m.k = len(v)
		}
	}
	m.pow = 1
	for i := 1; i < m.k; i++ {
		m.pow *= matchBase
	}
	for i, v := range m.values {
		if len(v) < 4 {
			m.short = append(m.short, i)
			continue
		}
		h := m.hash(v[:m.k])
		m.bits[h>>(64-matchBits)/64] |= 1 << (h >> (64 - matchBits) % 64)
		m.table[h] = append(m.table[h], i)
	}
	return m
}

func (m *Matcher) hash(b []byte) uint64 {
	var h uint64
	for _, c := range b {
		h = h*matchBase + uint64(c)
	}
	return h
}

// Find returns the names of the needles in b, sorted.
func (m *Matcher) Find(b []byte) []string {
	found := map[int]bool{}
	for _, i := range m.short {
		if bytes.Contains(b, m.values[i]) {
			found[i] = true
		}
	}
	if len(m.table) > 0 && len(b) >= m.k {
		h := m.hash(b[:m.k])
		for pos := 0; ; pos++ {
			if slot := h >> (64 - matchBits); m.bits[slot/64]&(1<<(slot%64)) != 0 {
				for _, i := range m.table[h] {
					if !found[i] && bytes.HasPrefix(b[pos:], m.values[i]) {
						found[i] = true
					}
				}
			}
			if pos+m.k >= len(b) {
				break
			}
			h = (h-uint64(b[pos])*m.pow)*matchBase + uint64(b[pos+m.k])
		}
	}
	out := make([]string, 0, len(found))
	for i := range found {
		out = append(out, m.names[i])
	}
	sort.Strings(out)
	return out
}

// MaxLen is the length of the longest needle.
func (m *Matcher) MaxLen() int {
	n := 0
	for _, v := range m.values {
		n = max(n, len(v))
	}
	return n
}
