package testkit

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProcHit is a needle found in a process's command line or environment.
type ProcHit struct {
	PID    int
	UID    uint32 // real uid
	Exe    string // base name of argv[0]
	Where  string // "cmdline" or "environ"
	Needle string
}

// ProcWatch reads every process's command line and environment every couple of
// milliseconds, from Watch until Stop: short-lived children (an initdb, a gocryptfs -init, a
// pgBackRest) are seen while they live, not only what is left at the end.
type ProcWatch struct {
	needles Needles
	stop    chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	hits   map[string]ProcHit // by pid, where and needle
	seen   map[string]int     // executable base name → processes seen
	reads  int                // command lines and environments read
	sweeps int
}

// Watch starts a ProcWatch.
func Watch(needles Needles) *ProcWatch {
	w := &ProcWatch{needles: needles, stop: make(chan struct{}), done: make(chan struct{}),
		hits: map[string]ProcHit{}, seen: map[string]int{}}
	go w.run()
	return w
}

func (w *ProcWatch) run() {
	defer close(w.done)
	counted := map[string]bool{} // pid and executable: right after a fork a child shows its parent's
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, dir := range dirs {
			pid, err := strconv.Atoi(filepath.Base(dir))
			if err != nil {
				continue
			}
			cl, err := os.ReadFile(dir + "/cmdline")
			if err != nil || len(cl) == 0 {
				continue
			}
			exe := filepath.Base(string(bytes.SplitN(cl, []byte{0}, 2)[0]))
			env, _ := os.ReadFile(dir + "/environ")
			uid := procUID(dir)
			w.mu.Lock()
			w.reads += 2
			if key := strconv.Itoa(pid) + "\x00" + exe; !counted[key] {
				counted[key] = true
				w.seen[exe]++
			}
			for where, b := range map[string][]byte{"cmdline": cl, "environ": env} {
				for _, name := range w.needles.Find(b) {
					w.hits[strconv.Itoa(pid)+where+name] = ProcHit{PID: pid, UID: uid, Exe: exe, Where: where, Needle: name}
				}
			}
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.sweeps++
		w.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

func procUID(dir string) uint32 {
	b, err := os.ReadFile(dir + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 32)
				return uint32(n)
			}
		}
	}
	return 0
}

// Stop ends the watch; it may be called more than once.
func (w *ProcWatch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Hits are the needles found, in any process, so far.
func (w *ProcWatch) Hits() []ProcHit {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]ProcHit, 0, len(w.hits))
	for _, h := range w.hits {
		out = append(out, h)
	}
	return out
}

// Seen is how many distinct processes running exe (argv[0]'s base name) the watch saw.
func (w *ProcWatch) Seen(exe string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[exe]
}

// Sweeps is how many times the watch went through every process.
func (w *ProcWatch) Sweeps() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sweeps
}
