// Package testkit is what pgflex's tests share, whatever package they test: the guard that
// skips a test for a missing part of the machine (or fails it where every part must be there),
// scanners that look for secrets and markers and prove they can find them, a watch of every
// process's command line and environment, the kernel's mount table, token claims, and a wait
// that ends with a clear failure. It depends on the standard library only, so that every
// package's tests, the lowest included, can use it.
package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// RequireEnv, set to "all" (make test does under CI=true), turns every skip for a missing part
// into a failure: a CI run without FUSE, root or PostgreSQL must not pass by testing nothing.
const RequireEnv = "PGFLEX_TEST_REQUIRE"

// Part is something of the machine an end-to-end test needs.
type Part int

// The parts.
const (
	// Root: mounts, other accounts, namespaces.
	Root Part = iota
	// FUSE: /dev/fuse and gocryptfs 2.4 or later on PATH.
	FUSE
	// PostgreSQL: Debian's PostgreSQL 15 server, with pgflex_guard installed (setup.sh).
	PostgreSQL
	// PgBackRest: the pgbackrest executable.
	PgBackRest
	// PSQL: the psql client on PATH.
	PSQL
	// Accounts: useradd and userdel on PATH.
	Accounts
	// AZ: Microsoft's az CLI (Debian's azure-cli) on PATH, and *.localhost host names resolving
	// through the system resolver (nss-myhostname), as az's Python reaches graph.localhost and
	// {vault}.vault.localhost.
	AZ
	// AzurePython: Debian's azure-cli 2.45 (scripts/setup.sh), whose Python modules tests import
	// with AzurePythonExe to run az's own code on pgflex's answers.
	AzurePython
	// LocalhostNames: names under .localhost resolve to the loopback address through the C
	// library (nss-myhostname, scripts/setup.sh), as server host names such as
	// {server}.postgres.localhost must for psql.
	LocalhostNames
	// Chromium: Debian's chromium, which the portal's tests drive headless (scripts/setup.sh).
	Chromium
	// Fscrypt: the kernel's ext4 encryption, loop devices and mkfs.ext4: volume.Fscrypt, the
	// layer new servers get where the host offers it.
	Fscrypt
)

// ChromiumExe is Debian's chromium.
const ChromiumExe = "/usr/bin/chromium"

// AzurePythonExe is the interpreter Debian's az runs under (a python3 earlier on PATH may not
// see its modules).
const AzurePythonExe = "/usr/bin/python3"

// BinDir is where Debian's PostgreSQL 15 server lives.
const BinDir = "/usr/lib/postgresql/15/bin"

var gocryptfsVersionRE = regexp.MustCompile(`^gocryptfs v(\d+)\.(\d+)`)

// missing says why a part is missing, or "" when it is there.
func missing(p Part) string {
	switch p {
	case Root:
		if os.Geteuid() != 0 {
			return "needs root (mounts, other accounts, namespaces)"
		}
	case FUSE:
		if fi, err := os.Stat("/dev/fuse"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
			return "no /dev/fuse on this machine: encrypted volumes cannot be mounted"
		}
		out, err := exec.Command("gocryptfs", "-version").Output()
		if err != nil {
			return "gocryptfs is not installed (scripts/setup.sh builds it)"
		}
		m := gocryptfsVersionRE.FindSubmatch(out)
		if m == nil {
			return "gocryptfs -version printed " + strconv.Quote(string(out))
		}
		major, _ := strconv.Atoi(string(m[1]))
		minor, _ := strconv.Atoi(string(m[2]))
		if major < 2 || major == 2 && minor < 4 {
			return "gocryptfs " + string(m[0]) + " is older than 2.4 (scripts/setup.sh builds 2.4.0)"
		}
	case PostgreSQL:
		if _, err := os.Stat(filepath.Join(BinDir, "postgres")); err != nil {
			return "PostgreSQL 15 server not installed (scripts/setup.sh)"
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(BinDir), "lib", "pgflex_guard.so")); err != nil {
			return "pgflex_guard is not installed (scripts/setup.sh builds it)"
		}
	case PgBackRest:
		if _, err := exec.LookPath("pgbackrest"); err != nil {
			return "pgBackRest not installed (scripts/setup.sh)"
		}
	case PSQL:
		if _, err := exec.LookPath("psql"); err != nil {
			return "psql is not installed (scripts/setup.sh)"
		}
	case AZ:
		if _, err := exec.LookPath("az"); err != nil {
			return "az is not installed (scripts/setup.sh installs Debian's azure-cli)"
		}
		return missing(LocalhostNames)
	case AzurePython:
		if _, err := os.Stat("/usr/lib/python3/dist-packages/azure/cli/command_modules/rdbms/validators.py"); err != nil {
			return "Debian's azure-cli is not installed (scripts/setup.sh)"
		}
		if _, err := os.Stat(AzurePythonExe); err != nil {
			return AzurePythonExe + " is missing"
		}
	case Accounts:
		for _, tool := range []string{"useradd", "userdel"} {
			if _, err := exec.LookPath(tool); err != nil {
				return tool + " is not installed"
			}
		}
	case Chromium:
		if _, err := os.Stat(ChromiumExe); err != nil {
			return "chromium is not installed (scripts/setup.sh installs Debian's chromium)"
		}
	case Fscrypt:
		if _, err := os.Stat("/sys/fs/ext4/features/encryption"); err != nil {
			return "the kernel's ext4 has no encryption (CONFIG_FS_ENCRYPTION): fscrypt volumes cannot be made"
		}
		if _, err := os.Stat("/dev/loop-control"); err != nil {
			return "no loop devices (/dev/loop-control): fscrypt volumes cannot be attached"
		}
		if _, err := exec.LookPath("mkfs.ext4"); err != nil {
			return "mkfs.ext4 is not installed (e2fsprogs)"
		}
	case LocalhostNames:
		// getent asks the C library, as libpq does.
		out, err := exec.Command("getent", "ahostsv4", "pgflex-probe.postgres.localhost").Output()
		if err != nil || !strings.HasPrefix(string(out), "127.") {
			return "names under .localhost do not resolve to the loopback address (install libnss-myhostname: scripts/setup.sh)"
		}
	}
	return ""
}

// Require skips t, saying why, when a part is missing; where RequireEnv is "all" it fails t
// instead.
func Require(t testing.TB, parts ...Part) {
	t.Helper()
	for _, p := range parts {
		if why := missing(p); why != "" {
			if os.Getenv(RequireEnv) == "all" {
				t.Fatalf("%s (%s=all: every end-to-end test must run here)", why, RequireEnv)
			}
			t.Skip(why)
		}
	}
}

// DataPlane are the parts a real server needs: root, FUSE, PostgreSQL, pgBackRest, accounts.
var DataPlane = []Part{Root, FUSE, Fscrypt, PostgreSQL, PgBackRest, Accounts}
