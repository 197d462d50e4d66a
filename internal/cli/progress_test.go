package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressSpinner(t *testing.T) {
	var buf bytes.Buffer
	w := &lockedWriter{w: &buf}
	stop := startProgress(w, true, "Running", time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	stop()
	stop() // idempotent
	out := buf.String()
	for _, frame := range []string{"\r\x1b[K - Running ..\r", "\r\x1b[K \\ Running ..\r", "\r\x1b[K | Running ..\r"} {
		if !strings.Contains(out, frame) {
			t.Errorf("output lacks frame %q: %q", frame, out)
		}
	}
	if !strings.HasSuffix(out, "..\r\r\x1b[K") {
		t.Errorf("spinner line not erased at the end: %q", out[max(0, len(out)-30):])
	}
	n := buf.Len()
	time.Sleep(5 * time.Millisecond)
	if buf.Len() != n {
		t.Error("spinner still writing after stop")
	}
}

func TestProgressDisabledWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	stop := startProgress(&buf, false, "Running", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	stop()
	if buf.Len() != 0 {
		t.Errorf("wrote %q", buf.String())
	}
}
