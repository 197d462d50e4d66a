package flexserver

import (
	"context"

	"github.com/pgflex/pgflex/internal/dataenc"
)

// Instance is what the data plane needs to know of a server.
type Instance struct {
	UID           string
	Name          string
	Version       string
	ListenAddress string
	Port          int
	AdminLogin    string
	VCores        int
	MemoryMB      int
}

// Status is the data plane's actual state of one server.
type Status struct {
	Mounted bool // the plaintext view of the volume is mounted
	Running bool // PostgreSQL accepts connections (or may still hold a stale mount: stop it)
}

// Database is one database of a server.
type Database struct {
	Name      string
	Charset   string
	Collation string
}

// DataPlane runs servers: an encrypted volume keyed by the DEK, PostgreSQL inside it.
// Implementations must be idempotent: every call may be repeated after a crash.
type DataPlane interface {
	// SupportedVersions are the PostgreSQL major versions this host can run.
	SupportedVersions() []string
	// Create makes the encrypted volume keyed by dek, writes env beside it, initialises,
	// configures and starts PostgreSQL inside, and creates the administrator role. What it
	// leaves behind on failure is removed by Destroy.
	Create(ctx context.Context, inst Instance, env *dataenc.Envelope, dek, adminPassword []byte) error
	// Start mounts the volume (adopting a live mount) and starts PostgreSQL (adopting a running
	// one). dek may be nil when the volume is already mounted.
	Start(ctx context.Context, inst Instance, dek []byte) error
	// Stop stops PostgreSQL (fast shutdown) and unmounts the volume.
	Stop(ctx context.Context, inst Instance) error
	// Restart restarts PostgreSQL, keeping the volume mounted.
	Restart(ctx context.Context, inst Instance) error
	// Status reports what is mounted and running.
	Status(ctx context.Context, inst Instance) (Status, error)
	// WriteEnvelope replaces the wrapped DEK kept beside the volume (after a rewrap).
	WriteEnvelope(ctx context.Context, inst Instance, env *dataenc.Envelope) error
	// Destroy deletes the wrapped DEK beside the volume first (crypto-shredding), then stops
	// everything and removes every file of the server.
	Destroy(ctx context.Context, inst Instance) error
	// SetAdminPassword changes the administrator's password.
	SetAdminPassword(ctx context.Context, inst Instance, password []byte) error
	CreateDatabase(ctx context.Context, inst Instance, db Database) error
	DropDatabase(ctx context.Context, inst Instance, name string) error
	ListDatabases(ctx context.Context, inst Instance) ([]Database, error)
}

// instance derives the data-plane description of a server.
func (s *Server) instance() Instance {
	_, info, _ := lookupSKU(s.SKU.Name)
	return Instance{UID: s.UID, Name: s.Name, Version: s.Version, ListenAddress: s.ListenAddress, Port: s.Port,
		AdminLogin: s.AdministratorLogin, VCores: info.VCores, MemoryMB: info.VCores * info.MemoryPerVCoreM}
}
