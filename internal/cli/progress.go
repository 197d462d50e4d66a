package cli

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// spinnerInterval is how often the spinner turns, humanfriendly's Spinner default that az's
// progress view uses.
const spinnerInterval = 200 * time.Millisecond

// startProgress shows az's indeterminate progress while a long-running operation is polled:
// humanfriendly's spinner line "\r\x1b[K - Running ..\r", redrawn with the next of - \ | /,
// and erased ("\r\x1b[K") when stop is called. When disabled (stderr is not a terminal, or
// --only-show-errors) it writes nothing, as az does.
func startProgress(w io.Writer, enabled bool, label string, interval time.Duration) (stop func()) {
	if !enabled {
		return func() {}
	}
	ticker := time.NewTicker(interval)
	stopSpin := spin(w, label, ticker.C)
	return func() {
		stopSpin()
		ticker.Stop()
	}
}

// spin draws the spinner line, and draws it again with the next state at each tick, until
// stop; stop erases the line and returns once nothing more is written.
func spin(w io.Writer, label string, tick <-chan time.Time) (stop func()) {
	states := []string{"-", "\\", "|", "/"}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			fmt.Fprintf(w, "\r\x1b[K %s %s ..\r", states[i%len(states)], label)
			select {
			case <-quit:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-tick:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-done
		})
	}
}
