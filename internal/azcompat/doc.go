// Package azcompat holds the tests that drive Microsoft's own az CLI (Debian's azure-cli 2.45)
// against a real pgflex daemon: sign-in, accounts, resource groups, Key Vault, Microsoft Graph
// and the commands the seed runs. It has no code of its own; the harness is
// internal/testenv's AZ.
package azcompat
