package testkit

import (
	"crypto/rand"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMatcher: the Matcher answers what Needles.Find answers, for needles at the edges of the
// bytes, overlapping, sharing their first bytes, shorter than the window, and absent.
func TestMatcher(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	needles := Needles{}.AddSecret("s", secret).
		Add("tiny", []byte("xy")).Add("same start", append(append([]byte{}, secret[:20]...), "tail"...)).
		Add("long", make([]byte, 100)).Add("empty", nil).Add("absent", []byte("pgflex-never-written-anywhere"))
	m := needles.Matcher()
	rng := mrand.New(mrand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		b := make([]byte, rng.IntN(5000))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		for _, name := range []string{"s", "s (hex)", "s (base64, unpadded)", "tiny", "same start", "long", "s (base64url)"} {
			if rng.IntN(3) == 0 {
				continue
			}
			v := needles[name]
			switch pos := rng.IntN(3); {
			case pos == 0 || len(b) < len(v):
				b = append(append([]byte{}, v...), b...)
			case pos == 1:
				b = append(b, v...)
			default:
				at := rng.IntN(len(b) - len(v) + 1)
				copy(b[at:], v)
			}
		}
		if got, want := m.Find(b), needles.Find(b); !slices.Equal(got, want) {
			t.Fatalf("trial %d (%d bytes): Matcher found %v, Needles.Find %v", trial, len(b), got, want)
		}
	}
	if got := m.Find(nil); len(got) != 0 {
		t.Errorf("in nothing: %v", got)
	}
	if got := m.Find(secret[:31]); len(got) != 0 {
		t.Errorf("in a prefix of a needle: %v", got)
	}
	if got := (Needles{}).Matcher().Find(secret); len(got) != 0 {
		t.Errorf("no needles: %v", got)
	}
}

// TestMatcherLargeInput: the same answers on 16 MiB and some 300 needles (the Matcher's use),
// and how long each took.
func TestMatcherLargeInput(t *testing.T) {
	needles := Needles{}
	for i := 0; i < 40; i++ {
		s := make([]byte, 32)
		rand.Read(s)
		needles.AddSecret(string(rune('a'+i)), s)
	}
	b := make([]byte, 16<<20)
	rand.Read(b)
	copy(b[7<<20:], needles["c (base64url, unpadded)"])
	began := time.Now()
	slow := needles.Find(b)
	tFind := time.Since(began)
	began = time.Now()
	fast := needles.Matcher().Find(b)
	tMatch := time.Since(began)
	// The planted form may equal another (a base64 text without '+' or '/' is also base64url).
	if !slices.Equal(slow, fast) || !slices.Contains(fast, "c (base64url, unpadded)") {
		t.Fatalf("different or wrong answers: %v %v", slow, fast)
	}
	for _, name := range fast {
		if !strings.HasPrefix(name, "c ") {
			t.Fatalf("found a needle not planted: %v", fast)
		}
	}
	t.Logf("%d needles over 16 MiB: Needles.Find %s, Matcher %s", len(needles), tFind, tMatch)
}
