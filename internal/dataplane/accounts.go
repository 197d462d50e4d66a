package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"github.com/pgflex/pgflex/internal/flexserver"
	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/procfs"
)

// The two OS accounts of a server.
const (
	// kindDB runs the server's PostgreSQL (and nothing else).
	kindDB = "db"
	// kindBackup runs pgBackRest for the daemon: a member of kindDB's group, it reads the data
	// directory; it owns the server's repositories, which outlive the server for its backup
	// retention, and so does this account.
	kindBackup = "bk"
)

// accountName is a server's account of a kind: pgflex-{kind}-{the first 16 hex digits of the
// server's UID}. The name is derived, so a restarted daemon finds the accounts without a
// record of them.
func (m *Manager) accountName(kind, serverUID string) string {
	hex := strings.ReplaceAll(serverUID, "-", "")
	if len(hex) > 16 {
		hex = hex[:16]
	}
	return "pgflex-" + kind + "-" + strings.ToLower(hex)
}

// accountComment marks an account as this installation's, for this server: the archive socket
// maps a peer's uid back to its server through it, and operators can tell what it is for.
func (m *Manager) accountComment(kind, serverUID string) string {
	return "pgflex " + m.cfg.InstallationID + " " + kind + " " + serverUID
}

// ensureAccounts makes (or finds) a server's two accounts.
func (m *Manager) ensureAccounts(ctx context.Context, inst flexserver.Instance) (db, bk osuser.User, err error) {
	dbName := m.accountName(kindDB, inst.UID)
	db, err = osuser.Ensure(ctx, dbName, osuser.Options{Range: m.cfg.AccountRange, Comment: m.accountComment(kindDB, inst.UID)})
	if err != nil {
		return db, bk, fmt.Errorf("server %s: %w", inst.Name, err)
	}
	bk, err = osuser.Ensure(ctx, m.accountName(kindBackup, inst.UID), osuser.Options{Range: m.cfg.AccountRange,
		Comment: m.accountComment(kindBackup, inst.UID), Groups: []string{dbName}})
	if err != nil {
		return db, bk, fmt.Errorf("server %s: %w", inst.Name, err)
	}
	return db, bk, nil
}

// backupAccount finds a server's (or a deleted server's, during its retention) backup account.
func (m *Manager) backupAccount(serverUID string) (osuser.User, error) {
	u, err := osuser.Lookup(m.accountName(kindBackup, serverUID))
	if err != nil {
		return osuser.User{}, fmt.Errorf("the backup account of server %s: %w", serverUID, err)
	}
	return u, nil
}

// ServerAccountUID is the uid of the account that runs a server's PostgreSQL: the owner of the
// server's port, which the PostgreSQL endpoint checks before it hands the port a client.
func (m *Manager) ServerAccountUID(serverUID string) (uint32, error) {
	u, err := osuser.Lookup(m.accountName(kindDB, serverUID))
	if err != nil {
		return 0, fmt.Errorf("the account of server %s: %w", serverUID, err)
	}
	return u.UID, nil
}

// removeAccount ends every process of a server's account and removes it. Its files must be
// gone already (a later account may get the same uid).
func (m *Manager) removeAccount(ctx context.Context, kind, serverUID string) error {
	name := m.accountName(kind, serverUID)
	if u, err := osuser.Lookup(name); err == nil {
		if err := procfs.KillUser(ctx, u.UID); err != nil {
			return err
		}
	}
	return osuser.Remove(ctx, name)
}

// killAccount ends every process of a server's account, if it exists.
func (m *Manager) killAccount(ctx context.Context, kind, serverUID string) error {
	u, err := osuser.Lookup(m.accountName(kind, serverUID))
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil
		}
		return err
	}
	return procfs.KillUser(ctx, u.UID)
}

// serverOfAccount returns the server UID an account of this installation serves, and its kind.
func (m *Manager) serverOfAccount(uid uint32) (kind, serverUID string, err error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(u.Name) // the comment (GECOS)
	if len(f) != 4 || f[0] != "pgflex" || f[1] != m.cfg.InstallationID || u.Username != m.accountName(f[2], f[3]) {
		return "", "", fmt.Errorf("uid %d is not an account of this installation", uid)
	}
	return f[2], f[3], nil
}

// InstallationAccounts lists the OS accounts of an installation (for cleanup by tests and
// operators).
func InstallationAccounts(installationID string) ([]string, error) {
	return osuser.ListByComment("pgflex " + installationID + " ")
}
