package postgres_test

import (
	"context"
	"log"
	"path/filepath"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
)

// Creating a server's PostgreSQL inside its mounted volume, as the daemon
// does. (Not run: it needs root, a mounted volume and a certificate.)
func ExampleInstance() {
	ctx := context.Background()
	mountDir := "/var/lib/pgflex/servers/s1/mount" // a mounted volume.Volume's MountDir
	var certPEM, keyPEM, adminPassword []byte      // from pgflex's CA and the create request

	// The server's own account (the daemon makes one per server).
	user, err := osuser.Ensure(ctx, "pgflex-db-0123456789abcdef", osuser.Options{Comment: "pgflex server s1"})
	if err != nil {
		log.Fatal(err)
	}
	dataDir := filepath.Join(mountDir, "pgdata")
	if err := postgres.InitDB(ctx, postgres.InitOptions{DataDir: dataDir, User: user}); err != nil {
		log.Fatal(err)
	}
	if err := postgres.InstallServerCertificate(ctx, dataDir, user, certPEM, keyPEM); err != nil {
		log.Fatal(err)
	}
	settings := postgres.Settings{Port: 6432, SocketDir: "/run/pgflex/s1"}
	if err := postgres.WriteConfig(ctx, dataDir, user, settings); err != nil {
		log.Fatal(err)
	}
	inst := &postgres.Instance{DataDir: dataDir, User: user, Port: settings.Port, SocketDir: settings.SocketDir}
	if err := inst.Start(ctx); err != nil { // adopts a server that is already running
		log.Fatal(err)
	}
	conn, err := inst.Connect(ctx) // superuser, over the socket, by peer authentication
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := postgres.CreateAdmin(ctx, conn, "pgadmin", adminPassword); err != nil {
		log.Fatal(err)
	}
}
