package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgflex/pgflex/internal/fsutil"
	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/procfs"
	"github.com/pgflex/pgflex/internal/sandbox"
)

// StopMode is how PostgreSQL is asked to shut down.
type StopMode string

const (
	// StopSmart waits for every client to disconnect (SIGTERM).
	StopSmart StopMode = "smart"
	// StopFast rolls back open transactions, disconnects clients and
	// shuts down cleanly with a checkpoint (SIGINT). The usual choice.
	StopFast StopMode = "fast"
	// StopImmediate exits without a checkpoint (SIGQUIT); the next start
	// runs crash recovery. Committed data is safe: it is in the WAL.
	StopImmediate StopMode = "immediate"
)

func (m StopMode) signal() (syscall.Signal, error) {
	switch m {
	case StopSmart:
		return syscall.SIGTERM, nil
	case StopFast:
		return syscall.SIGINT, nil
	case StopImmediate:
		return syscall.SIGQUIT, nil
	}
	return 0, fmt.Errorf("postgres: unknown stop mode %q", m)
}

// ExitReport says why a postmaster stopped.
type ExitReport struct {
	PID int
	// Requested is the stop mode this Instance asked for, or "" if the
	// postmaster stopped on its own or at someone else's request.
	Requested StopMode
	// ExitCode is the postmaster's exit status, or -1 when it was killed
	// by a signal or is unknown (an adopted postmaster is not our child).
	ExitCode int
	// Signal names the signal that killed it, e.g. "killed" for kill -9
	// or the kernel's OOM killer; "" otherwise.
	Signal string
	// ClusterState is pg_control's "Database cluster state" after the
	// exit: "shut down" for a clean stop, "in production" when it did
	// not get to shut down (crash recovery will run on the next start).
	ClusterState string
	Time         time.Time
}

// Reason renders the report for logs and operation errors.
func (r *ExitReport) Reason() string {
	if r == nil {
		return "not stopped"
	}
	var s string
	switch {
	case r.Requested != "":
		s = fmt.Sprintf("stopped on request (%s shutdown)", r.Requested)
	case r.Signal != "":
		s = fmt.Sprintf("killed by signal: %s", r.Signal)
	case r.ExitCode > 0:
		s = fmt.Sprintf("exited with status %d (see the server log)", r.ExitCode)
	case r.ExitCode == 0:
		s = "shut down at an outside request"
	case r.ClusterState == "shut down":
		s = "shut down cleanly, not by this service"
	default:
		s = "stopped abruptly (crash or kill)"
	}
	if r.ClusterState != "" {
		s += "; cluster state: " + r.ClusterState
	}
	return s
}

// Status is a snapshot of an instance.
type Status struct {
	Running bool
	PID     int
	// Ready: postmaster.pid reports the server ready for connections.
	Ready bool
	// Supervised: this Instance started the postmaster and will see its
	// exit status; false for an adopted one.
	Supervised bool
	// LastExit explains the last stop: as observed by this Instance, or,
	// for a stop it did not see, from pg_control alone. Nil while running
	// if this Instance saw no stop.
	LastExit *ExitReport
	// ClusterState is pg_control's state when not running.
	ClusterState string
}

// Instance manages one PostgreSQL server process: start (or adopt), wait
// until ready, stop, restart, status. It keeps no state that a restarted
// daemon would miss: the postmaster is found through postmaster.pid and
// /proc, so a fresh Instance adopts a server left running by a daemon that
// was killed.
//
// The postmaster runs as User in its own session, with the daemon's
// environment withheld, so that it survives the daemon (kill -9 included).
type Instance struct {
	// DataDir is the cluster's data directory, inside the mounted volume.
	DataDir string
	// User runs the server; not root.
	User osuser.User
	// Sandbox, if set, confines the server (see package sandbox): the postmaster is started
	// through SandboxExec, an executable whose main runs sandbox.Main, and drops to User there.
	Sandbox     *sandbox.Spec
	SandboxExec string
	// BinDir holds postgres and pg_controldata; default DefaultBinDir.
	BinDir string
	// Port and SocketDir as in the Settings the cluster was configured with.
	Port      int
	SocketDir string
	// Superuser is the role the service connects as (peer authentication
	// over the socket); default DefaultSuperuser.
	Superuser string
	// Logger receives events; nil means slog.Default().
	Logger *slog.Logger

	mu        sync.Mutex
	child     *exec.Cmd     // the postmaster, when this Instance started it
	childDone chan struct{} // closed when child has exited and been reaped
	requested StopMode      // the stop this Instance asked for, if any
	lastExit  *ExitReport
	// postmaster is the process this Instance started or adopted, by PID and start time.
	postmaster procfs.Identity
}

func (i *Instance) logger() *slog.Logger {
	if i.Logger != nil {
		return i.Logger
	}
	return slog.Default()
}

func (i *Instance) bin(name string) string {
	d := i.BinDir
	if d == "" {
		d = DefaultBinDir
	}
	return filepath.Join(d, name)
}

func (i *Instance) superuser() string {
	if i.Superuser != "" {
		return i.Superuser
	}
	return DefaultSuperuser
}

// SuperuserConnInfo is how the service reaches its own superuser: the Unix
// socket, peer authentication, no password.
func (i *Instance) SuperuserConnInfo() ConnInfo {
	return ConnInfo{Host: i.SocketDir, Port: i.Port, User: i.superuser(), Database: "postgres"}
}

// Connect opens a superuser connection over the socket.
func (i *Instance) Connect(ctx context.Context) (*pgx.Conn, error) {
	return i.SuperuserConnInfo().Connect(ctx)
}

// postmasterLogName, under the data directory, receives the postmaster's stderr until the
// logging collector takes over (startup errors such as a bad configuration land here).
const postmasterLogName = "log/postmaster.log"

// Start starts the server and waits until it accepts connections. If a
// postmaster is already running on DataDir (started by an earlier daemon)
// it is adopted instead. Start never creates DataDir: a missing data
// directory means the volume is not mounted, and starting there would
// write plaintext to the disk.
func (i *Instance) Start(ctx context.Context) error {
	if err := i.check(); err != nil {
		return err
	}
	i.mu.Lock()
	if i.childRunningLocked() {
		i.mu.Unlock()
		return i.WaitReady(ctx)
	}
	i.mu.Unlock()

	if pid, ok := i.runningPID(); ok {
		i.logger().InfoContext(ctx, "postgres already running; adopting", "data_dir", i.DataDir, "pid", pid)
		return i.WaitReady(ctx)
	}
	if _, err := os.Stat(filepath.Join(i.DataDir, "PG_VERSION")); err != nil {
		return fmt.Errorf("postgres start: %s is not an initialised data directory (is the volume mounted?): %w", i.DataDir, err)
	}
	// After a crash (or kill -9) of the postmaster its children exit on
	// their own once they notice; a new postmaster refuses to start while
	// they still hold the old shared memory, so wait for them.
	if err := i.waitOrphansGone(ctx); err != nil {
		return err
	}
	if err := i.prepareDirs(); err != nil {
		return fmt.Errorf("postgres start: %w", err)
	}
	// The data directory is the server account's: the log is opened beneath it, following no
	// link, and given away through its descriptor.
	logFile, err := fsutil.OpenOwnedBeneath(i.DataDir, postmasterLogName, 0o600, int(i.User.UID), int(i.User.GID))
	if err != nil {
		return fmt.Errorf("postgres start: %w", err)
	}
	defer logFile.Close()
	logStart, _ := logFile.Seek(0, io.SeekEnd)

	// Not CommandContext: cancelling the caller's context must not kill
	// the database server.
	cmd, err := i.command()
	if err != nil {
		return fmt.Errorf("postgres start: %w", err)
	}
	cmd.Env = childEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres start: %w", err)
	}
	// The sandbox executes postgres in place: the PID and start time are the postmaster's.
	ident, err := procfs.IdentityOf(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("postgres start: %w", err)
	}
	done := make(chan struct{})
	i.mu.Lock()
	i.child, i.childDone, i.requested, i.postmaster = cmd, done, "", ident
	i.mu.Unlock()
	go i.reap(cmd, done)
	i.logger().InfoContext(ctx, "postgres started", "data_dir", i.DataDir, "pid", cmd.Process.Pid, "port", i.Port)

	if err := i.WaitReady(ctx); err != nil {
		return i.WithLog(fmt.Errorf("%w; postmaster output: %s", err, fsutil.TailFile(logFile, logStart, 2<<10)))
	}
	return nil
}

// command is the postmaster's command: confined by the sandbox when one is set.
func (i *Instance) command() (*exec.Cmd, error) {
	if i.Sandbox != nil {
		spec := *i.Sandbox
		spec.User, spec.Dir = i.User, i.DataDir
		cmd, err := spec.Command(i.SandboxExec, i.bin("postgres"), "-D", i.DataDir)
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		return cmd, nil
	}
	cmd := exec.Command(i.bin("postgres"), "-D", i.DataDir)
	cmd.Dir = i.DataDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: i.User.Credential()}
	return cmd, nil
}

// Postmaster returns the running postmaster's identity (PID and start time), checked
// afresh: the process this Instance started or adopted, still alive, running this
// installation's postgres executable as User in DataDir. Processes that descend from it
// are this server's.
func (i *Instance) Postmaster() (procfs.Identity, error) {
	i.mu.Lock()
	ident := i.postmaster
	i.mu.Unlock()
	if ident.PID == 0 {
		pid, ok := i.runningPID()
		if !ok {
			return procfs.Identity{}, fmt.Errorf("postgres %s is not running", i.DataDir)
		}
		id, err := procfs.IdentityOf(pid)
		if err != nil {
			return procfs.Identity{}, err
		}
		i.mu.Lock()
		if i.postmaster.PID == 0 {
			i.postmaster = id
		}
		ident = i.postmaster
		i.mu.Unlock()
	}
	if !ident.Is() || !i.isOurPostgres(ident.PID) {
		return procfs.Identity{}, fmt.Errorf("postgres %s: the postmaster (pid %d) is gone", i.DataDir, ident.PID)
	}
	return ident, nil
}

func (i *Instance) check() error {
	if !filepath.IsAbs(i.DataDir) {
		return fmt.Errorf("postgres: data dir %q must be absolute", i.DataDir)
	}
	if i.User.UID == 0 {
		return errors.New("postgres: refusing to run PostgreSQL as root")
	}
	if i.Port == 0 || i.SocketDir == "" {
		return errors.New("postgres: instance needs Port and SocketDir")
	}
	return nil
}

// prepareDirs makes the socket directory (0750: the server's group, whose only other member
// is its backup account, reaches the socket) and the log directory (0700: logs stay out of
// backups and away from the group). The socket directory's parent is the daemon's; the log
// directory lies in the data directory, the server account's, so it is made beneath it without
// following links.
func (i *Instance) prepareDirs() error {
	parent, name := filepath.Split(i.SocketDir)
	if err := os.MkdirAll(parent, 0o711); err != nil {
		return err
	}
	if err := fsutil.MkdirBeneath(parent, name, 0o750, int(i.User.UID), int(i.User.GID)); err != nil {
		return err
	}
	return fsutil.MkdirBeneath(i.DataDir, "log", 0o700, int(i.User.UID), int(i.User.GID))
}

// reap waits for the child postmaster and records why it stopped.
func (i *Instance) reap(cmd *exec.Cmd, done chan struct{}) {
	_ = cmd.Wait()
	r := &ExitReport{PID: cmd.Process.Pid, ExitCode: cmd.ProcessState.ExitCode(), Time: time.Now().UTC()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.Signal = ws.Signal().String()
	}
	r.ClusterState, _ = i.clusterState(context.Background())
	i.mu.Lock()
	r.Requested = i.requested
	i.lastExit = r
	if i.child == cmd {
		i.child = nil
		i.postmaster = procfs.Identity{}
	}
	i.mu.Unlock()
	close(done)
	lvl := slog.LevelInfo
	if r.Requested == "" {
		lvl = slog.LevelWarn
	}
	i.logger().Log(context.Background(), lvl, "postgres stopped", "data_dir", i.DataDir, "pid", r.PID, "reason", r.Reason())
}

func (i *Instance) childRunningLocked() bool {
	if i.child == nil {
		return false
	}
	select {
	case <-i.childDone:
		return false
	default:
		return true
	}
}

// WaitReady waits until the server accepts connections, it stops, or ctx
// ends.
func (i *Instance) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		i.mu.Lock()
		done := i.childDone
		supervised := i.child != nil
		i.mu.Unlock()
		if supervised {
			select {
			case <-done:
				i.mu.Lock()
				r := i.lastExit
				i.mu.Unlock()
				return fmt.Errorf("postgres %s stopped while starting: %s", i.DataDir, r.Reason())
			default:
			}
		} else if _, ok := i.runningPID(); !ok {
			return fmt.Errorf("postgres %s is not running", i.DataDir)
		}
		if pf, err := readPIDFile(i.DataDir); err == nil && pf.status == "ready" {
			lastErr = i.ping(ctx)
			if lastErr == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres %s not ready: %w (last error: %v)", i.DataDir, ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

func (i *Instance) ping(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := i.Connect(cctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(cctx)
}

// Stop shuts the server down in the given mode and waits until every
// process of it has exited (the logging collector outlives the postmaster
// briefly), so that the volume can be unmounted right after, or until ctx
// ends. Stopping a stopped server is not an error.
func (i *Instance) Stop(ctx context.Context, mode StopMode) error {
	sig, err := mode.signal()
	if err != nil {
		return err
	}
	i.mu.Lock()
	var pid int
	var done chan struct{}
	if i.childRunningLocked() {
		pid, done = i.child.Process.Pid, i.childDone
	}
	i.requested = mode
	i.mu.Unlock()
	if pid == 0 {
		p, ok := i.runningPID()
		if !ok {
			// postmaster.pid unreadable (e.g. the volume's FUSE server
			// died under the running server): find the postmaster
			// among the processes working in DataDir.
			p, ok = i.postmasterFromProc()
		}
		if !ok {
			return i.waitOrphansGone(ctx) // children of a dead postmaster exit on their own
		}
		pid = p
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("postgres stop (%s) pid %d: %w", mode, pid, err)
	}
	if done != nil {
		select {
		case <-done:
			return i.waitOrphansGone(ctx)
		case <-ctx.Done():
			return fmt.Errorf("postgres stop (%s): pid %d still running: %w", mode, pid, ctx.Err())
		}
	}
	// Adopted: not our child, so poll until it is gone.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for procfs.Alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres stop (%s): pid %d still running: %w", mode, pid, ctx.Err())
		case <-tick.C:
		}
	}
	r := &ExitReport{PID: pid, Requested: mode, ExitCode: -1, Time: time.Now().UTC()}
	r.ClusterState, _ = i.clusterState(ctx)
	i.mu.Lock()
	i.lastExit = r
	i.mu.Unlock()
	i.logger().InfoContext(ctx, "postgres stopped", "data_dir", i.DataDir, "pid", pid, "reason", r.Reason())
	return i.waitOrphansGone(ctx)
}

// Reload makes the running server read its configuration files and TLS certificate again
// (SIGHUP to its postmaster, as pg_ctl reload sends).
func (i *Instance) Reload(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id, err := i.Postmaster()
	if err != nil {
		return err
	}
	if !id.Is() {
		return fmt.Errorf("postgres %s: its postmaster %d is gone", i.DataDir, id.PID)
	}
	return syscall.Kill(id.PID, syscall.SIGHUP)
}

// Restart stops the server in mode and starts it again.
func (i *Instance) Restart(ctx context.Context, mode StopMode) error {
	if err := i.Stop(ctx, mode); err != nil {
		return err
	}
	return i.Start(ctx)
}

// Status reports whether the server runs, and if not, why it stopped.
func (i *Instance) Status(ctx context.Context) (Status, error) {
	var st Status
	i.mu.Lock()
	if i.childRunningLocked() {
		st.Running, st.Supervised, st.PID = true, true, i.child.Process.Pid
	}
	st.LastExit = i.lastExit
	i.mu.Unlock()
	if !st.Running {
		if pid, ok := i.runningPID(); ok {
			st.Running, st.PID = true, pid
		}
	}
	if st.Running {
		if pf, err := readPIDFile(i.DataDir); err == nil && pf.pid == st.PID {
			st.Ready = pf.status == "ready"
		}
		return st, nil
	}
	cs, err := i.clusterState(ctx)
	if err != nil {
		return st, err
	}
	st.ClusterState = cs
	if st.LastExit == nil {
		// It stopped while no Instance watched (e.g. while the daemon
		// was down): pg_control still tells a clean stop from a crash.
		st.LastExit = &ExitReport{ExitCode: -1, ClusterState: cs}
	}
	return st, nil
}

// runningPID returns the postmaster's PID if postmaster.pid names a live
// process that is a postgres whose working directory is DataDir (the
// postmaster chdirs there). That rules out a stale file whose PID has been
// reused by an unrelated process.
func (i *Instance) runningPID() (int, bool) {
	pf, err := readPIDFile(i.DataDir)
	if err != nil {
		return 0, false
	}
	if !procfs.Alive(pf.pid) || !i.isOurPostgres(pf.pid) {
		return 0, false
	}
	return pf.pid, true
}

// isOurPostgres reports whether pid runs this installation's postgres executable (the exact
// file, not a name: anyone can name a program postgres), as User, working in DataDir.
func (i *Instance) isOurPostgres(pid int) bool {
	exe, err := procfs.Exe(pid)
	if err != nil {
		return false
	}
	want, err := filepath.EvalSymlinks(i.bin("postgres"))
	if err != nil || exe != want {
		return false
	}
	st, err := procfs.Read(pid)
	if err != nil || st.RUID != i.User.UID {
		return false
	}
	cwd, err := procfs.Cwd(pid)
	if err != nil {
		return false
	}
	dir, err := filepath.EvalSymlinks(i.DataDir)
	if err != nil {
		dir = filepath.Clean(i.DataDir)
	}
	return cwd == dir
}

// waitOrphansGone waits until no postgres process works in DataDir.
func (i *Instance) waitOrphansGone(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pids := i.processesInDataDir()
		if len(pids) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: processes %v still run in %s: %w", pids, i.DataDir, ctx.Err())
		case <-tick.C:
		}
	}
}

func (i *Instance) processesInDataDir() []int {
	var pids []int
	for _, pid := range procfs.WorkingIn("postgres", i.DataDir) {
		if i.isOurPostgres(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// postmasterFromProc returns the process working in DataDir whose parent
// does not: the postmaster of the server.
func (i *Instance) postmasterFromProc() (int, bool) {
	pids := i.processesInDataDir()
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	for _, p := range pids {
		if pp, err := procfs.Parent(p); err == nil && !in[pp] {
			return p, true
		}
	}
	return 0, false
}

type pidFile struct {
	pid    int
	status string // "starting", "stopping", "ready", "standby"
}

// readPIDFile parses postmaster.pid (line 1 PID, line 8 status), read beneath the data
// directory without following links.
func readPIDFile(dataDir string) (pidFile, error) {
	b, err := fsutil.ReadFileBeneath(dataDir, "postmaster.pid", 4096)
	if err != nil {
		return pidFile{}, err
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) == 0 {
		return pidFile{}, errors.New("empty postmaster.pid")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil {
		return pidFile{}, fmt.Errorf("postmaster.pid: %w", err)
	}
	pf := pidFile{pid: pid}
	if len(lines) >= 8 {
		pf.status = strings.TrimSpace(lines[7])
	}
	return pf, nil
}

// clusterState reads "Database cluster state" with pg_controldata.
func (i *Instance) clusterState(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, i.bin("pg_controldata"), "-D", i.DataDir)
	cmd.Env = childEnv()
	cmd.Env = append(cmd.Env, "LC_ALL=C") // English labels to parse
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: i.User.Credential()}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pg_controldata %s: %w", i.DataDir, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "Database cluster state:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("pg_controldata %s: no cluster state", i.DataDir)
}
