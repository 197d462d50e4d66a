// Package flexserver is the Microsoft.DBforPostgreSQL provider: flexible servers and their
// databases, as Azure's ARM API shapes them, each server a real PostgreSQL instance whose every
// byte on disk is encrypted under its own DEK.
//
// The package owns the resource end to end: the model and its views per api-version
// (model.go), validation with Azure's messages (validation.go), one file per API operation
// (servers_create.go, servers_update.go, ...), the lifecycle steps run as long-running
// operations and resumed after a daemon restart (servers_actions.go, servers_delete.go), the
// key monitor (keymonitor.go), and the reconciler that brings every server back to the state
// it should be in (reconcile.go). The data plane (encrypted volume + PostgreSQL) sits behind
// the DataPlane interface; key wrapping behind dataenc.Wrapper.
package flexserver
