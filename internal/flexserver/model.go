package flexserver

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/dataenc"
)

// Namespace and type of the resource.
const (
	Namespace    = "Microsoft.DBforPostgreSQL"
	ResourceType = Namespace + "/flexibleServers"
)

// Server states, as Azure names them.
const (
	StateProvisioning = "Provisioning"
	StateReady        = "Ready"
	StateUpdating     = "Updating"
	StateStopping     = "Stopping"
	StateStopped      = "Stopped"
	StateStarting     = "Starting"
	StateRestarting   = "Restarting"
	StateDropping     = "Dropping"
	StateInaccessible = "Inaccessible"
)

// Data encryption types.
const (
	EncSystemManaged = "SystemManaged"
	EncAzureKeyVault = "AzureKeyVault"
	// encSystemAssignedLegacy is the 2022-12-01 spelling of SystemManaged.
	encSystemAssignedLegacy = "SystemAssigned"
)

// Key statuses.
const (
	KeyValid   = "Valid"
	KeyInvalid = "Invalid"
)

// SKU is the compute tier and size.
type SKU struct {
	Name string `json:"name"`
	Tier string `json:"tier"`
}

// Encryption is the server's data-encryption configuration.
type Encryption struct {
	Type              string `json:"type"`
	PrimaryKeyURI     string `json:"primaryKeyURI,omitempty"`
	PrimaryIdentityID string `json:"primaryUserAssignedIdentityId,omitempty"`
	GeoKeyURI         string `json:"geoBackupKeyURI,omitempty"`
	GeoIdentityID     string `json:"geoBackupUserAssignedIdentityId,omitempty"`
	PrimaryKeyStatus  string `json:"primaryEncryptionKeyStatus,omitempty"`
	GeoKeyStatus      string `json:"geoBackupEncryptionKeyStatus,omitempty"`
}

// IdentityRef is a user-assigned identity attached to a server.
type IdentityRef struct {
	ID          string `json:"id"`
	PrincipalID string `json:"principalId"`
	ClientID    string `json:"clientId"`
	location    string // known while a request resolves it; not stored
}

// Server is the persisted record of a flexible server.
type Server struct {
	SubscriptionID string `json:"subscriptionId"`
	ResourceGroup  string `json:"resourceGroup"`
	Name           string `json:"name"`
	// UID names the server's directories: a server re-created under the same name gets new ones.
	UID                 string            `json:"uid"`
	Location            string            `json:"location"`
	Tags                map[string]string `json:"tags,omitempty"`
	SKU                 SKU               `json:"sku"`
	Version             string            `json:"version"`
	AdministratorLogin  string            `json:"administratorLogin"`
	StorageSizeGB       int               `json:"storageSizeGB"`
	AutoGrow            string            `json:"autoGrow"`
	BackupRetentionDays int               `json:"backupRetentionDays"`
	GeoRedundantBackup  string            `json:"geoRedundantBackup"`
	PublicNetworkAccess string            `json:"publicNetworkAccess"`
	// FirewallRules admit clients at the PostgreSQL endpoint (firewall.go).
	FirewallRules    []FirewallRule `json:"firewallRules,omitempty"`
	HAMode           string         `json:"haMode"`
	AvailabilityZone string         `json:"availabilityZone,omitempty"`
	ListenAddress    string         `json:"listenAddress"`
	Port             int            `json:"port"`
	State            string         `json:"state"`
	// Desired is what the reconciler keeps the data plane at: Running or Stopped.
	Desired    string                 `json:"desired"`
	Encryption Encryption             `json:"encryption"`
	Identities map[string]IdentityRef `json:"identities,omitempty"` // by lower-case id
	// Envelope is the wrapped DEK; the plaintext DEK is never persisted.
	Envelope *dataenc.Envelope `json:"envelope,omitempty"`
	// BackupEnvelope is repository 1's backup DEK, wrapped by the primary key (service- or
	// customer-managed); its passphrase encrypts the backups in the server's region.
	BackupEnvelope *dataenc.Envelope `json:"backupEnvelope,omitempty"`
	// GeoEnvelope is repository 2's backup DEK (geo-redundant backup), wrapped by the geo-backup
	// key through the geo-backup identity, or by the paired region's service key.
	GeoEnvelope *dataenc.Envelope `json:"geoEnvelope,omitempty"`
	// EarliestRestore is when the oldest backup in repository 1 became consistent: the earliest
	// point a restore can reach (zero: no backup yet).
	EarliestRestore time.Time `json:"earliestRestore,omitempty"`
	// LastAutomaticBackup is when the newest scheduled full backup completed.
	LastAutomaticBackup time.Time `json:"lastAutomaticBackup,omitempty"`
	// GeoBackupDue: repository 2 needs a full backup (it was paused, and its WAL has a gap).
	GeoBackupDue bool `json:"geoBackupDue,omitempty"`
	// SourceServerID is the server this one was restored from.
	SourceServerID string `json:"sourceServerId,omitempty"`
	// Parameters are the user's overrides of server parameters (lower-case name → value as
	// written into the configuration); PendingRestart names the static ones among them changed
	// since PostgreSQL last started.
	Parameters     map[string]string `json:"parameters,omitempty"`
	PendingRestart []string          `json:"pendingRestart,omitempty"`
	// Operation is the running long-running operation, if any: one at a time per server.
	Operation string    `json:"operation,omitempty"`
	Created   time.Time `json:"created"`
	// StateReason says why the server is in its state (e.g. why it is Inaccessible).
	StateReason string `json:"stateReason,omitempty"`
	// StorageReadOnly, when set, says why the storage monitor made the server read-only (its
	// storage is nearly full): its configuration sets default_transaction_read_only.
	StorageReadOnly string `json:"storageReadOnly,omitempty"`

	// fqdn is the server's host name, {name}.{DNS suffix}, set when the server is shown: not
	// stored, since the suffix is the daemon's setting.
	fqdn string
	// storageUsage is the server's latest storage measurement, set when the server is shown.
	storageUsage *StorageUsage
}

// Desired states.
const (
	DesiredRunning = "Running"
	DesiredStopped = "Stopped"
)

// ID is the server's resource id.
func (s *Server) ID() arm.ResourceID {
	return arm.NewResourceID(s.SubscriptionID, s.ResourceGroup, Namespace, "flexibleServers", s.Name)
}

func serverKey(sub, rg, name string) string {
	return "pgserver/" + strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/" + strings.ToLower(name)
}

// nameKey indexes server names, which are globally unique (they form a DNS name in Azure).
func nameKey(name string) string { return "pgserver-name/" + strings.ToLower(name) }

// portKey reserves a listening port.
func portKey(port int) string { return "pgserver-port/" + strconv.Itoa(port) }

// isCMK reports whether the server uses a customer-managed key.
func (s *Server) isCMK() bool { return s.Encryption.Type == EncAzureKeyVault }

// view renders the server as Azure returns it for api-version shape v.
func (s *Server) view(v apiShape) map[string]any {
	tags := s.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	props := map[string]any{
		"administratorLogin":       s.AdministratorLogin,
		"version":                  s.Version,
		"minorVersion":             "",
		"state":                    s.State,
		"fullyQualifiedDomainName": s.fqdn,
		"storage":                  s.storageView(),
		"authConfig":               map[string]any{"activeDirectoryAuth": "Disabled", "passwordAuth": "Enabled"},
		"dataEncryption":           s.encryptionView(v),
		"backup": map[string]any{"backupRetentionDays": s.BackupRetentionDays, "geoRedundantBackup": s.GeoRedundantBackup,
			"earliestRestoreDate": timeOrNil(s.EarliestRestore)},
		"network":           map[string]any{"publicNetworkAccess": s.PublicNetworkAccess},
		"highAvailability":  map[string]any{"mode": s.HAMode, "state": "NotEnabled"},
		"maintenanceWindow": map[string]any{"customWindow": "Disabled", "dayOfWeek": 0, "startHour": 0, "startMinute": 0},
		"replicationRole":   "Primary",
		"replicaCapacity":   5,
		"availabilityZone":  s.AvailabilityZone,
	}
	if v.replicaObject {
		props["replica"] = map[string]any{"role": "Primary", "capacity": 5}
	}
	if s.SourceServerID != "" {
		props["sourceServerResourceId"] = s.SourceServerID
	}
	if s.StateReason != "" {
		props["stateReason"] = s.StateReason // pgflex extension: why the server is in its state
	} else if s.StorageReadOnly != "" {
		props["stateReason"] = "The server is read-only: " + s.StorageReadOnly
	}
	out := map[string]any{
		"id":         s.ID().String(),
		"name":       s.Name,
		"type":       ResourceType,
		"location":   s.Location,
		"tags":       tags,
		"sku":        s.SKU,
		"identity":   s.identityView(),
		"properties": props,
		"systemData": map[string]any{"createdAt": s.Created.Format(time.RFC3339)},
	}
	return out
}

// encryptionView is properties.dataEncryption. Its type is SystemManaged or AzureKeyVault in
// every version: the service has always answered SystemManaged, and the 2022-12-01 swagger's
// original "SystemAssigned" was corrected to match (Azure/azure-rest-api-specs#22851).
func (s *Server) encryptionView(v apiShape) map[string]any {
	str := func(x string) any {
		if x == "" {
			return nil
		}
		return x
	}
	enc := map[string]any{
		"type":                          s.Encryption.Type,
		"primaryKeyURI":                 str(s.Encryption.PrimaryKeyURI),
		"primaryUserAssignedIdentityId": str(s.Encryption.PrimaryIdentityID),
	}
	if v.geoBackupEncryption {
		enc["geoBackupKeyURI"] = str(s.Encryption.GeoKeyURI)
		enc["geoBackupUserAssignedIdentityId"] = str(s.Encryption.GeoIdentityID)
		enc["primaryEncryptionKeyStatus"] = str(s.Encryption.PrimaryKeyStatus)
		enc["geoBackupEncryptionKeyStatus"] = str(s.Encryption.GeoKeyStatus)
	}
	if s.isCMK() && s.Envelope != nil {
		// pgflex extension: the key version that wraps the DEK now (the configured URI may be
		// versionless, following the newest version).
		enc["primaryKeyVersionInUse"] = str(s.Envelope.KeyVersion())
		if s.GeoEnvelope != nil && v.geoBackupEncryption {
			enc["geoBackupKeyVersionInUse"] = str(s.GeoEnvelope.KeyVersion())
		}
	}
	return enc
}

// identityTypeNone is identity.type of a server without user-assigned identities; a request
// with it removes them all.
const identityTypeNone = "None"

func (s *Server) identityView() map[string]any {
	if len(s.Identities) == 0 {
		return map[string]any{"type": identityTypeNone}
	}
	uai := map[string]any{}
	keys := make([]string, 0, len(s.Identities))
	for k := range s.Identities {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ref := s.Identities[k]
		uai[ref.ID] = map[string]any{"principalId": ref.PrincipalID, "clientId": ref.ClientID}
	}
	return map[string]any{"type": "UserAssigned", "userAssignedIdentities": uai}
}

// storageTier and storageIOPS follow Azure's default performance tier per disk size.
func storageTier(gb int) string {
	switch {
	case gb <= 32:
		return "P4"
	case gb <= 64:
		return "P6"
	case gb <= 128:
		return "P10"
	case gb <= 256:
		return "P15"
	case gb <= 512:
		return "P20"
	case gb <= 1024:
		return "P30"
	case gb <= 2048:
		return "P40"
	case gb <= 4096:
		return "P50"
	case gb <= 8192:
		return "P60"
	case gb <= 16384:
		return "P70"
	}
	return "P80"
}

func storageIOPS(gb int) int {
	iops := map[string]int{"P4": 120, "P6": 240, "P10": 500, "P15": 1100, "P20": 2300, "P30": 5000,
		"P40": 7500, "P50": 7500, "P60": 16000, "P70": 18000, "P80": 20000}
	return iops[storageTier(gb)]
}

// timeOrNil renders a time as Azure does (RFC 3339, UTC), or null when unset.
func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}
