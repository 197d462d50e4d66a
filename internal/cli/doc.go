// Package cli is pgflex's command-line client: an az-shaped cobra command tree
// (`pgflex group create ...` does what `az group create ...` does) that talks to the
// daemon's ARM API through the profile file `pgflex serve` writes.
//
// Users bring their az knowledge with them, so this package copies az's observable
// behaviour rather than inventing its own: flag names and aliases, the -o formats
// (json, jsonc, yaml, yamlc, table, tsv, none, following knack's formatters), --query
// (JMESPath), the texts of errors and warnings, and exit codes (0 success, 1 failure,
// 2 usage error, 3 resource not found). Where the code departs from az it says so.
//
// The pieces:
//   - root.go: NewRootCommand, Execute and the global flags.
//   - args.go: flag helpers that later command groups reuse (resource group and
//     location with configured defaults, tags, --yes, --no-wait, required arguments).
//   - commands.go: "GET and print", "PUT as a long-running operation and print",
//     "DELETE as a long-running operation".
//   - client.go: the HTTP client (profile, TLS, *.localhost dialing, tokens, ARM errors,
//     paging, long-running operations).
//   - output.go, yaml.go, query.go: result rendering and --query.
//   - errors.go, log.go, progress.go, config.go, profile.go: the rest of az's plumbing.
//   - account.go, group.go, login.go, configure.go, version.go: the commands.
//   - postgres*.go: `postgres flexible-server` (create, show, list, update, delete, start,
//     stop, restart, show-connection-string, connect, execute, identity, db), with az's
//     client-side validation of customer-managed key flags (postgres_byok.go) and of the
//     location's capabilities (postgres_capabilities.go).
package cli
