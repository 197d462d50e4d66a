// Package postgres manages the PostgreSQL 15 instance of one pgflex server,
// split by lifecycle step as in CloudNativePG:
//
//   - initdb.go: the unprivileged OS user (EnsureOSUser) and cluster
//     creation (InitDB) inside the mounted encrypted volume;
//   - configuration.go: postgresql.conf, pg_hba.conf and pg_ident.conf
//     generated from typed Settings (fsync, full_page_writes and
//     synchronous_commit are always on);
//   - instance.go: start or adopt, wait until ready, stop (smart, fast,
//     immediate), restart, status, and why the server stopped;
//   - roles.go and scram.go: the administrator role, whose password reaches
//     the server only as a SCRAM-SHA-256 verifier computed here;
//   - conninfo.go: pgx connections built field by field.
//
// The server runs as an unprivileged user in its own session, so it survives
// the daemon being killed; a restarted daemon adopts it through
// postmaster.pid and /proc. The service's superuser is reached over the Unix
// socket by peer authentication (no password exists anywhere for it); every
// TCP client needs TLS and scram-sha-256, and the superuser cannot log in over
// TCP at all.
package postgres
