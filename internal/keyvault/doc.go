// Package keyvault is pgflex's key store: the Microsoft.KeyVault/vaults and
// Microsoft.KeyVault/managedHSMs resource providers (ARM) and the Key Vault keys REST API served
// on {vault}.{KeyVaultSuffix} and {hsm}.{ManagedHSMSuffix}, shaped so that Azure's own clients
// (armkeyvault, azkeys, az) work against it unchanged.
//
// Files are named for the API operation they serve:
//
//	vaults_put.go, vaults_patch.go, vaults_get.go, vaults_delete.go, vaults_accesspolicies.go,
//	vaults_checkname.go, deletedvaults.go      Microsoft.KeyVault/vaults (ARM)
//	managedhsm.go, managedhsms_put.go, managedhsms_get.go, managedhsms_delete.go
//	                                           Microsoft.KeyVault/managedHSMs (ARM), and deleted
//	                                           HSMs and their purge
//	hsm_rbac.go                                a Managed HSM's local RBAC: role assignments and
//	                                           role definitions on the HSM's own host
//	keystore.go                                the data-plane host: vault lookup, bearer
//	                                           challenge, token checks, routing, error bodies
//	keys_create.go, keys_get.go, keys_list.go, keys_update.go, keys_rotate.go,
//	keys_rotationpolicy.go, keys_delete.go, deletedkeys.go, keys_crypto.go
//	                                           the keys REST operations
//	authz.go, accesspolicy.go                  who may do what: access policies or RBAC
//	key.go                                     the versioned key model and its sealed storage
//	rotation.go                                automatic rotation and scheduled purges
//	audit.go                                   the audit trail and its list API
//	servicekeys.go                             service-managed keys for the data plane
//
// # Key material
//
// A private key exists in plaintext only in this process's memory. At rest it is sealed with
// AES-256-GCM under the daemon's root key (internal/seal); the additional data is the key's
// store key, which names the vault (by its internal id), the key and the version, so that one
// sealed blob cannot be moved to another key. Only the public part is ever returned.
//
// # Authorization
//
// Every key operation is authorized by the token's oid: by the vault's access policies, or, when
// the vault has enableRbacAuthorization, by a RoleChecker (role assignments, implemented by
// internal/rbac). A Managed HSM knows neither access policies nor ARM role assignments: only
// the role assignments it keeps itself (scopes /, /keys, /keys/{name}) of the built-in Managed
// HSM roles of internal/rbac's catalog, matched with its rules. Its initial administrators hold
// Managed HSM Administrator and Crypto User at "/". Refusals are 403 Forbidden with Azure's
// messages.
//
// # Managed HSM
//
// A Managed HSM is a key store record of its own kind (Vault.Kind): the same versioned keys,
// reported as RSA-HSM, on a host under the Managed HSM suffix, with its own token audience and
// bearer challenge. It is active at creation (no security-domain ceremony) and has no hardware
// behind it: its keys are sealed under the root key like a vault's.
//
// # The audit trail (a pgflex extension)
//
// Every key operation that presents a token is recorded (time, caller, vault, key, version,
// operation name as Azure's AuditEvent log names it, HTTP status). The record is listed with
//
//	GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}/auditEvents
//	    ?api-version={any vault api-version}[&keyName={key}][&$top=N]
//
// which answers {"value":[AuditEvent...],"nextLink":...}, oldest first.
//
// # Automatic rotation
//
// A background loop (Start) rotates keys whose rotation policy says so and purges soft-deleted
// keys and vaults whose retention has ended. It runs once a minute and at once whenever a
// rotation policy or a key's expiry changes, so a policy whose timeBeforeExpiry is already due
// (set exp close to now) rotates without waiting. No test-only clock exists: timeAfterCreate is
// covered by the unit tests of the schedule computation.
package keyvault
