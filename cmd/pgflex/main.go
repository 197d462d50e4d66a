// Command pgflex is the pgflex daemon (`pgflex serve`) and its az-shaped CLI.
package main

import (
	"os"

	"github.com/pgflex/pgflex/internal/cli"
)

func main() {
	root := cli.NewRootCommand(cli.OSEnv())
	// serve is added in serve.go: the daemon lives beside the CLI in one binary.
	root.AddCommand(newServeCommand())
	os.Exit(cli.Execute(root))
}
