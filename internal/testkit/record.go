package testkit

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcRecord keeps every distinct command line and environment of every process it sees, from
// Record until Stop, and is searched afterwards. It is ProcWatch for secrets not known while the
// processes run: a DEK is generated inside a server's create, so the needles exist only after the
// create (and the initdb, gocryptfs -init and pgBackRest children it ran) is over.
type ProcRecord struct {
	every time.Duration
	stop  chan struct{}
	done  chan struct{}

	mu       sync.Mutex
	blobs    map[string]ProcHit // where + "\x00" + content → its first sighting (Needle empty)
	pids     map[int][]string   // pid → its distinct command lines (a fork before its exec shows its parent's)
	seen     map[string]int     // base name of argv[0] → processes seen running it
	reads    int
	bytes    int64
	sweeps   int
	failures map[int]ProcHit // processes whose command line or environment could not be read
}

// Record starts a ProcRecord that reads every process every 2 ms.
func Record() *ProcRecord { return RecordEvery(2 * time.Millisecond) }

// RecordEvery starts a ProcRecord that pauses every between sweeps.
func RecordEvery(every time.Duration) *ProcRecord {
	r := &ProcRecord{every: every, stop: make(chan struct{}), done: make(chan struct{}),
		blobs: map[string]ProcHit{}, pids: map[int][]string{}, seen: map[string]int{}, failures: map[int]ProcHit{}}
	go r.run()
	return r
}

func (r *ProcRecord) run() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		r.sweep()
		time.Sleep(r.every)
	}
}

func (r *ProcRecord) sweep() {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		cl, err := os.ReadFile(dir + "/cmdline")
		if err != nil {
			r.fail(pid, "", "cmdline", err)
			continue
		}
		if len(cl) == 0 {
			continue // a kernel thread, or a process that just ended
		}
		exe := filepath.Base(string(bytes.SplitN(cl, []byte{0}, 2)[0]))
		env, err := os.ReadFile(dir + "/environ")
		if err != nil {
			r.fail(pid, exe, "environ", err)
		}
		r.mu.Lock()
		r.reads += 2
		r.bytes += int64(len(cl) + len(env))
		if cls := r.pids[pid]; len(cls) < maxCmdlines && !slices.Contains(cls, string(cl)) {
			counted := false
			for _, c := range cls {
				counted = counted || argv0(c) == exe
			}
			if !counted {
				r.seen[exe]++
			}
			r.pids[pid] = append(cls, string(cl))
		}
		for _, x := range [2]struct {
			where string
			b     []byte
		}{{"cmdline", cl}, {"environ", env}} {
			if len(x.b) == 0 {
				continue
			}
			key := x.where + "\x00" + string(x.b)
			if _, ok := r.blobs[key]; !ok {
				r.blobs[key] = ProcHit{PID: pid, UID: procUID(dir), Exe: exe, Where: x.where}
			}
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.sweeps++
	r.mu.Unlock()
}

// fail records a process that could not be read, unless it ended meanwhile.
func (r *ProcRecord) fail(pid int, exe, where string, err error) {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.failures[pid]; !ok {
		r.failures[pid] = ProcHit{PID: pid, Exe: exe, Where: where, Needle: err.Error()}
	}
}

// Stop ends the recording; it may be called more than once.
func (r *ProcRecord) Stop() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// Find searches everything recorded so far for needles: one hit per needle and distinct
// command line or environment, naming the first process seen with it.
func (r *ProcRecord) Find(needles Needles) []ProcHit {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ProcHit
	for key, h := range r.blobs {
		content := []byte(key[len(h.Where)+1:])
		for _, name := range needles.Find(content) {
			h.Needle = name
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PID != out[j].PID {
			return out[i].PID < out[j].PID
		}
		return out[i].Where+out[i].Needle < out[j].Where+out[j].Needle
	})
	return out
}

// SawPID reports whether the recording read process pid.
func (r *ProcRecord) SawPID(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.pids[pid]
	return ok
}

// Seen is how many distinct processes running exe (argv[0]'s base name) were read.
func (r *ProcRecord) Seen(exe string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[exe]
}

// SeenWith is how many distinct processes running exe had arg in their command line (as an
// argument or part of one): the processes of one test's daemon, by its data or runtime directory.
func (r *ProcRecord) SeenWith(exe, arg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, cls := range r.pids {
		for _, cl := range cls {
			if argv0(cl) == exe && strings.Contains(cl, arg) {
				n++
				break
			}
		}
	}
	return n
}

// maxCmdlines bounds the command lines kept per process (PostgreSQL's backends retitle
// themselves with every statement) for Seen and SeenWith; Find sees every one regardless.
const maxCmdlines = 32

// argv0 is the base name of a command line's first argument.
func argv0(cmdline string) string {
	first, _, _ := strings.Cut(cmdline, "\x00")
	return filepath.Base(first)
}

// Sweeps is how many times the recording went through every process.
func (r *ProcRecord) Sweeps() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sweeps
}

// Reads is how many command lines and environments were read, and their bytes.
func (r *ProcRecord) Reads() (int, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads, r.bytes
}

// Distinct is how many distinct command lines and environments were kept.
func (r *ProcRecord) Distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.blobs)
}

// Unreadable are the processes whose command line or environment could not be read (other
// than because they ended), once each, with the error in Needle: the recording may have missed
// what they held. A test checks that none of the processes it is about is among them.
func (r *ProcRecord) Unreadable() []ProcHit {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ProcHit, 0, len(r.failures))
	for _, h := range r.failures {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}
