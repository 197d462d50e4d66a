package cli_test

import (
	"fmt"
	"os"

	"github.com/pgflex/pgflex/internal/cli"
)

// The command tree runs an az command line: here the libpq connection string of a database,
// with the server's host and port left as placeholders (-s/--server-name fills them in from the
// daemon).
func ExampleNewRootCommand_postgres() {
	dir, err := os.MkdirTemp("", "pgflex-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	env := cli.Env{
		Args: []string{"postgres", "flexible-server", "show-connection-string", "-u", "pgadmin", "-p", "Secret123!",
			"-d", "app", "--query", `connectionStrings."C++ (libpq)"`, "-o", "tsv"},
		Stdout: os.Stdout,
		Getenv: func(k string) string {
			if k == "PGFLEX_CONFIG_DIR" {
				return dir // no configured defaults
			}
			return ""
		},
	}
	code := cli.Execute(cli.NewRootCommand(env))
	fmt.Println("exit code", code)
	// Output:
	// host={host} port={port} dbname=app user=pgadmin password=Secret123! sslmode=require
	// exit code 0
}
