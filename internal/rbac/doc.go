// Package rbac is the Microsoft.Authorization provider — Azure's built-in role definitions and
// role assignments at any ARM scope — and the checker the key store asks, on every operation of
// a vault with RBAC authorization, whether the caller holds a data action there.
//
// Role definitions are Azure's own, as data (roles_builtin.json): Owner, Contributor, Reader,
// User Access Administrator and the Key Vault roles with their real actions and dataActions. The
// Managed HSM local-RBAC roles (roles_managedhsm.json) are kept beside them for a Managed HSM
// data plane; they are not ARM roles and ARM assignments cannot name them.
//
// A role assignment (scope, role, principal) grants at its scope and everything below it. Its
// scope is any ARM id — a subscription, a resource group, a vault, a key inside a vault — so
// the routes take scopes of any depth. Assignments outlive the principals they name, as in
// Azure, but grant nothing once the principal is gone from the directory; they are deleted
// with the resource group they lie in.
package rbac
