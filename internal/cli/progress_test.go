package cli

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testkit"
)

func frame(state string) string { return "\r\x1b[K " + state + " Running ..\r" }

const erase = "\r\x1b[K"

// TestProgressSpinnerFrames drives the spinner tick by tick: a frame at once, the next state at
// each tick (wrapping after /), the line erased by stop, and nothing after it.
func TestProgressSpinnerFrames(t *testing.T) {
	var buf bytes.Buffer
	tick := make(chan time.Time) // unbuffered: a tick is taken only once the frame before is drawn
	stop := spin(&buf, "Running", tick)
	for range 4 {
		tick <- time.Time{}
	}
	stop()
	stop() // idempotent
	if want := frame("-") + frame(`\`) + frame("|") + frame("/") + frame("-") + erase; buf.String() != want {
		t.Errorf("spinner wrote %q\nwant         %q", buf.String(), want)
	}
	select {
	case tick <- time.Time{}:
		t.Error("the spinner still takes ticks after stop")
	default:
	}
}

// TestProgressStopErases: stopped before its first tick, the spinner drew one frame and erased it.
func TestProgressStopErases(t *testing.T) {
	var buf bytes.Buffer
	stop := startProgress(&buf, true, "Running", time.Hour)
	stop()
	if want := frame("-") + erase; buf.String() != want {
		t.Errorf("spinner wrote %q, want %q", buf.String(), want)
	}
}

// syncBuffer is a bytes.Buffer that may be read while the spinner writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestProgressTurnsWithItsTicker: startProgress's own ticker turns the spinner (however long
// the machine takes to show three states).
func TestProgressTurnsWithItsTicker(t *testing.T) {
	var buf syncBuffer
	stop := startProgress(&buf, true, "Running", time.Millisecond)
	t.Cleanup(stop)
	testkit.Eventually(t, time.Minute, "the third spinner state", func() error {
		if out := buf.String(); !strings.Contains(out, frame(`\`)+frame("|")) {
			return fmt.Errorf("wrote %q", out)
		}
		return nil
	})
	stop()
	out := buf.String()
	if !strings.HasPrefix(out, frame("-")+frame(`\`)+frame("|")) || !strings.HasSuffix(out, "..\r"+erase) {
		t.Errorf("spinner wrote %q", out)
	}
}

func TestProgressDisabledWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	stop := startProgress(&buf, false, "Running", time.Millisecond)
	stop()
	if buf.Len() != 0 {
		t.Errorf("wrote %q", buf.String())
	}
}
