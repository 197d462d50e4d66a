// Command pgflex is the pgflex daemon (`pgflex serve`) and its az-shaped CLI.
package main

import (
	"os"

	"github.com/pgflex/pgflex/internal/backup"
	"github.com/pgflex/pgflex/internal/cli"
	"github.com/pgflex/pgflex/internal/sandbox"
)

func main() {
	// The daemon starts each server's PostgreSQL through this binary, which confines it and
	// becomes it; PostgreSQL runs it as its archive_command (and restore_command). Answer
	// those before anything else.
	if code, ok := sandbox.Main(os.Args[1:]); ok {
		os.Exit(code)
	}
	if code, ok := backup.RunHelper(os.Args[1:]); ok {
		os.Exit(code)
	}
	root := cli.NewRootCommand(cli.OSEnv())
	// serve is added in serve.go: the daemon lives beside the CLI in one binary.
	root.AddCommand(newServeCommand())
	os.Exit(cli.Execute(root))
}
