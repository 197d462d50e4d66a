// Package osuser manages the operating-system accounts pgflex runs servers under: one account
// for each server's PostgreSQL and one for its backups, made when the server is created and
// removed when it is gone, so that no two servers share a uid and a process of one server has
// no right on another's files, sockets or processes.
//
// Accounts are system accounts (no home, no login shell, no subordinate ids) with a group of
// their own, numbered from a range reserved for pgflex (Range), away from the host's own
// users. useradd and userdel do the work: they lock /etc/passwd and /etc/group, so daemons and
// tests running side by side cannot corrupt them; a lock held by another process is retried.
package osuser

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// User is an operating-system account.
type User struct {
	Name     string
	UID, GID uint32
	// Groups are supplementary groups a process of this user gets (besides GID): the backup
	// account of a server is in the group of that server's PostgreSQL account, so that it
	// reads the data directory (initdb --allow-group-access) and nothing else.
	Groups []uint32
}

// Credential runs a child as u with exactly u's groups: never root's supplementary groups.
func (u User) Credential() *syscall.Credential {
	groups := append([]uint32{}, u.Groups...)
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: groups, NoSetGroups: false}
}

// Range is the uid and gid range of pgflex's accounts.
type Range struct{ Min, Max uint32 }

// DefaultRange is far above Debian's ranges for system (100-999) and human (1000-59999)
// accounts, and below the 2^31 that some tools mishandle.
var DefaultRange = Range{Min: 700000, Max: 899999}

func (r Range) valid() bool { return r.Min > 1000 && r.Max > r.Min && r.Max < 1<<31 }

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// ValidName reports whether name may be an account name (Debian's rules, at most 32 bytes).
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Lookup finds an existing account, with its supplementary groups.
func Lookup(name string) (User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return User{}, fmt.Errorf("look up OS user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return User{}, fmt.Errorf("OS user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return User{}, fmt.Errorf("OS user %q: gid %q: %w", name, u.Gid, err)
	}
	out := User{Name: name, UID: uint32(uid), GID: uint32(gid)}
	gids, err := u.GroupIds()
	if err != nil {
		return User{}, fmt.Errorf("OS user %q: groups: %w", name, err)
	}
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err == nil && uint32(n) != out.GID {
			out.Groups = append(out.Groups, uint32(n))
		}
	}
	return out, nil
}

// Options describe an account to make.
type Options struct {
	// Range the uid and gid are taken from; zero means DefaultRange.
	Range Range
	// Groups are existing groups the account joins (supplementary).
	Groups []string
	// Comment is the account's GECOS field: what it is for, so that an operator (and
	// Remove's callers) can tell pgflex's accounts apart.
	Comment string
}

// Ensure returns the account name, making it if it does not exist: a system account with a
// group of its own, no home directory and no login shell. An existing account must not be
// root and must be in every group of opts.Groups (it is added to the missing ones).
func Ensure(ctx context.Context, name string, opts Options) (User, error) {
	if !ValidName(name) {
		return User{}, fmt.Errorf("OS user name %q is not allowed", name)
	}
	if opts.Range == (Range{}) {
		opts.Range = DefaultRange
	}
	if !opts.Range.valid() {
		return User{}, fmt.Errorf("OS user range %d-%d is not usable", opts.Range.Min, opts.Range.Max)
	}
	if strings.ContainsAny(opts.Comment, ":\n,") {
		return User{}, fmt.Errorf("OS user comment %q may not contain ':', ',' or a newline", opts.Comment)
	}
	for _, g := range opts.Groups {
		if !ValidName(g) {
			return User{}, fmt.Errorf("group name %q is not allowed", g)
		}
	}
	u, err := Lookup(name)
	if err != nil {
		min, max := strconv.FormatUint(uint64(opts.Range.Min), 10), strconv.FormatUint(uint64(opts.Range.Max), 10)
		args := []string{"--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", "--comment", opts.Comment,
			"-K", "SYS_UID_MIN=" + min, "-K", "SYS_UID_MAX=" + max, "-K", "SYS_GID_MIN=" + min, "-K", "SYS_GID_MAX=" + max}
		if _, err := user.LookupGroup(name); err == nil {
			// A group left by an earlier account of this name (Remove deletes it, unless it
			// crashed in between): the account takes it back.
			args = append(args, "--gid", name)
		} else {
			args = append(args, "--user-group")
		}
		if len(opts.Groups) > 0 {
			args = append(args, "--groups", strings.Join(opts.Groups, ","))
		}
		if err := run(ctx, "useradd", append(args, name)...); err != nil {
			// Another caller may have made it meanwhile.
			if u, lerr := Lookup(name); lerr == nil {
				return ensureGroups(ctx, u, opts.Groups)
			}
			return User{}, fmt.Errorf("create OS user %q: %w", name, err)
		}
		if u, err = Lookup(name); err != nil {
			return User{}, err
		}
	}
	if u.UID == 0 || u.GID == 0 {
		return User{}, fmt.Errorf("OS user %q is root's: pgflex runs nothing of a server as root", name)
	}
	return ensureGroups(ctx, u, opts.Groups)
}

// ensureGroups adds u to the groups it lacks (an account made before a crash may lack them).
func ensureGroups(ctx context.Context, u User, groups []string) (User, error) {
	for _, g := range groups {
		grp, err := user.LookupGroup(g)
		if err != nil {
			return User{}, fmt.Errorf("OS user %q: group %q: %w", u.Name, g, err)
		}
		gid, _ := strconv.ParseUint(grp.Gid, 10, 32)
		if uint32(gid) == u.GID || containsGID(u.Groups, uint32(gid)) {
			continue
		}
		if err := run(ctx, "usermod", "--append", "--groups", g, u.Name); err != nil {
			return User{}, fmt.Errorf("add OS user %q to group %q: %w", u.Name, g, err)
		}
		u.Groups = append(u.Groups, uint32(gid))
	}
	return u, nil
}

func containsGID(gids []uint32, g uint32) bool {
	for _, x := range gids {
		if x == g {
			return true
		}
	}
	return false
}

// Remove deletes an account and its group (the group of the same name, even while other
// accounts are in it: it was this account's). Its processes must be gone (procfs.KillUser) and
// its files removed first: a later account may get the same ids. A missing account is not an
// error.
func Remove(ctx context.Context, name string) error {
	if !ValidName(name) {
		return fmt.Errorf("OS user name %q is not allowed", name)
	}
	if _, err := user.Lookup(name); err == nil {
		if err := run(ctx, "userdel", name); err != nil {
			if _, lerr := user.Lookup(name); lerr == nil {
				return fmt.Errorf("remove OS user %q: %w", name, err)
			}
		}
	} else {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return fmt.Errorf("look up OS user %q: %w", name, err)
		}
	}
	// userdel keeps a group that still has members.
	if _, err := user.LookupGroup(name); err == nil {
		if err := run(ctx, "groupdel", name); err != nil {
			if _, lerr := user.LookupGroup(name); lerr == nil {
				return fmt.Errorf("remove group %q: %w", name, err)
			}
		}
	}
	return nil
}

// ListByComment returns the names of accounts whose comment starts with prefix.
func ListByComment(prefix string) ([]string, error) {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 5 && prefix != "" && strings.HasPrefix(fields[4], prefix) {
			out = append(out, fields[0])
		}
	}
	return out, sc.Err()
}

// shadowBusy: useradd, usermod and userdel exit with 1 ("cannot lock /etc/passwd; try again
// later"), 10 ("can't update group file") or 6/8 when another tool holds the lock or an
// entry is half-made; they are retried.
func shadowBusy(code int) bool { return code == 1 || code == 6 || code == 8 || code == 10 }

// run runs one of shadow's tools, retrying while another process holds its locks.
func run(ctx context.Context, tool string, args ...string) error {
	delay := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		cmd := exec.CommandContext(ctx, tool, args...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !shadowBusy(ee.ExitCode()) || attempt >= 40 || !strings.Contains(string(out), "lock") && ee.ExitCode() == 1 {
			return fmt.Errorf("%s: %w: %s", tool, err, strings.TrimSpace(string(out)))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %s)", tool, ctx.Err(), strings.TrimSpace(string(out)))
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}
