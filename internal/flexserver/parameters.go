package flexserver

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/postgres"
)

// Server parameters (Microsoft.DBforPostgreSQL/flexibleServers/configurations). The catalog
// is PostgreSQL 15's own pg_settings (pgsettings15.jsonl, taken from a running server of
// Debian's postgresql-15: name, unit, short_desc, vartype, min_val, max_val, enumvals,
// context, boot_val, category). A server keeps its user overrides in its record
// (Server.Parameters); the data plane writes them, with the SKU's defaults, into the server's
// user configuration file (internal/postgres WriteUserConfig) and reloads.

//go:embed pgsettings15.jsonl
var pgSettingsJSONL []byte

// pgSetting is one row of pg_settings.
type pgSetting struct {
	Name     string   `json:"name"`
	Unit     string   `json:"unit"`
	Desc     string   `json:"desc"`
	Type     string   `json:"type"` // bool, integer, real, enum, string
	Min      string   `json:"min"`
	Max      string   `json:"max"`
	Enum     []string `json:"enum"`
	Context  string   `json:"context"`
	Boot     string   `json:"boot"`
	Category string   `json:"category"`
}

// requireSecureTransport is Azure's own parameter (not PostgreSQL's).
const requireSecureTransport = "require_secure_transport"

// azureExtensions is Azure's allow-list of extensions the administrator may create (pgflex_guard
// enforces it); pgflex offers the extensions of postgres.DefaultExtensions, all allowed by
// default. It is written into postgresql.conf (postgres.Settings.Extensions), not the user file.
const azureExtensions = "azure.extensions"

// catalog is the parameters by lower-case name (Azure lists names in lower case).
var catalog = sync.OnceValue(func() map[string]pgSetting {
	out := map[string]pgSetting{}
	sc := bufio.NewScanner(bytes.NewReader(pgSettingsJSONL))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var p pgSetting
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			panic(fmt.Sprintf("pgsettings15.jsonl: %v", err)) // embedded at build time
		}
		p.Name = strings.ToLower(p.Name)
		out[p.Name] = p
	}
	out[requireSecureTransport] = pgSetting{Name: requireSecureTransport, Type: "bool", Context: "sighup", Boot: "on",
		Desc:     "Whether client connections to the server are required to use some form of secure transport.",
		Category: "Connections and Authentication / SSL"}
	out[azureExtensions] = pgSetting{Name: azureExtensions, Type: "set", Context: "sighup",
		Boot: strings.Join(postgres.DefaultExtensions, ","), Enum: postgres.DefaultExtensions,
		Desc: "Specifies which extensions are allowed to be created in the server.", Category: "Customized Options"}
	return out
})

// Reasons a parameter is read-only.
const (
	whyIsolation  = "pgflex keeps every server inside its own account, sandbox and files; this parameter would reach outside them"
	whyEncryption = "TLS and password encryption are managed by the service; this parameter would weaken them"
	whyDurability = "it would risk committed data (durability is not negotiable on this service)"
	whyBackups    = "continuous archiving and point-in-time restore depend on it; it is managed by the service"
	whyLogs       = "server logs stay on the server's encrypted volume; their place and format are managed by the service"
	whyControl    = "the service manages it to run the server"
	whyLibraries  = "only the libraries the service loads may be loaded (extensions are allowed through azure.extensions)"
)

// readOnlyParameters are the parameters no user may set, with the reason (every setting
// internal/postgres writes that users must not change is here; the data plane refuses them too).
var readOnlyParameters = map[string]string{
	"listen_addresses": whyIsolation, "port": whyIsolation, "unix_socket_directories": whyIsolation,
	"unix_socket_group": whyIsolation, "unix_socket_permissions": whyIsolation, "data_directory": whyIsolation,
	"config_file": whyIsolation, "hba_file": whyIsolation, "ident_file": whyIsolation, "external_pid_file": whyIsolation,
	"dynamic_library_path": whyIsolation, "krb_server_keyfile": whyIsolation, "temp_tablespaces": whyIsolation,
	"allow_system_table_mods": whyIsolation, "bonjour": whyIsolation, "bonjour_name": whyIsolation,
	"event_source": whyIsolation, "role": whyControl, "session_authorization": whyControl,
	"ssl": whyEncryption, "ssl_cert_file": whyEncryption, "ssl_key_file": whyEncryption, "ssl_ca_file": whyEncryption,
	"ssl_crl_file": whyEncryption, "ssl_crl_dir": whyEncryption, "ssl_ciphers": whyEncryption,
	"ssl_min_protocol_version": whyEncryption, "ssl_max_protocol_version": whyEncryption, "ssl_dh_params_file": whyEncryption,
	"ssl_ecdh_curve": whyEncryption, "ssl_prefer_server_ciphers": whyEncryption, "ssl_passphrase_command": whyEncryption,
	"ssl_passphrase_command_supports_reload": whyEncryption, "password_encryption": whyEncryption,
	"db_user_namespace": whyEncryption,
	"fsync":             whyDurability, "full_page_writes": whyDurability, "wal_init_zero": whyDurability,
	"data_sync_retry": whyDurability, "wal_sync_method": whyDurability, "zero_damaged_pages": whyDurability,
	"ignore_checksum_failure": whyDurability, "ignore_invalid_pages": whyDurability, "ignore_system_indexes": whyDurability,
	"wal_level": whyBackups, "archive_mode": whyBackups, "archive_command": whyBackups, "archive_library": whyBackups,
	"restore_command": whyBackups, "archive_cleanup_command": whyBackups, "recovery_end_command": whyBackups,
	"max_wal_senders": whyBackups, "max_replication_slots": whyBackups, "primary_conninfo": whyBackups,
	"primary_slot_name": whyBackups, "promote_trigger_file": whyBackups, "recovery_target": whyBackups,
	"recovery_target_action": whyBackups, "recovery_target_inclusive": whyBackups, "recovery_target_lsn": whyBackups,
	"recovery_target_name": whyBackups, "recovery_target_time": whyBackups, "recovery_target_timeline": whyBackups,
	"recovery_target_xid": whyBackups, "recovery_min_apply_delay": whyBackups, "hot_standby": whyBackups,
	"wal_receiver_create_temp_slot": whyBackups,
	"logging_collector":             whyLogs, "log_directory": whyLogs, "log_filename": whyLogs, "log_destination": whyLogs,
	"log_file_mode": whyLogs, "syslog_facility": whyLogs, "syslog_ident": whyLogs,
	"shared_preload_libraries": whyLibraries, "session_preload_libraries": whyLibraries,
	"local_preload_libraries": whyLibraries, "jit_provider": whyLibraries,
	"restart_after_crash": whyControl, "exit_on_error": whyControl, "cluster_name": whyControl,
	"shared_memory_type": whyControl, "dynamic_shared_memory_type": whyControl,
	// The host's huge pages are not reserved for servers: "on" would keep the server from starting.
	"huge_pages": whyControl, "huge_page_size": whyControl,
	"transaction_isolation": whyControl, "transaction_read_only": whyControl, "transaction_deferrable": whyControl,
	// With no standby, any name would make every commit wait forever (the service's own too).
	"synchronous_standby_names": whyControl,
	// syncfs does not reach the encrypted volume's files through FUSE on every kernel.
	"recovery_init_sync_method": whyDurability,
}

// readOnlyReason says why a parameter cannot be set, or "".
func readOnlyReason(p pgSetting) string {
	if why, ok := readOnlyParameters[p.Name]; ok {
		return why
	}
	switch {
	case p.Context == "internal":
		return "it is fixed when PostgreSQL is built or its data directory initialized"
	case p.Category == "File Locations":
		// Paths on the host (extension_destdir among them: a directory searched before the
		// server's own for extension scripts and libraries).
		return whyIsolation
	case p.Category == "Developer Options" || strings.HasPrefix(p.Name, "debug_") || strings.HasPrefix(p.Name, "trace_"):
		return "it is a developer option of PostgreSQL, not for a service"
	}
	return ""
}

// maxConnectionsByMemory is Azure's default max_connections per memory size of the compute
// (Azure Database for PostgreSQL flexible server, "Limits": "Maximum connections",
// https://learn.microsoft.com/azure/postgresql/flexible-server/concepts-limits): 2 GiB 50,
// 4 GiB 429, 8 GiB 859, 16 GiB 1718, 32 GiB 3437, 48 GiB and more 5000.
var maxConnectionsByMemory = []struct{ memoryMB, maxConnections int }{
	{1024, 50}, {2048, 50}, {4096, 429}, {8192, 859}, {16384, 1718}, {32768, 3437}, {49152, 5000},
}

// skuDefaults are the parameters that follow the server's compute size (memory in MB), as
// Azure's do: max_connections from Azure's table; shared_buffers a quarter of the memory and
// effective_cache_size three quarters (Azure's defaults), with shared_buffers capped at
// 256MB because pgflex shares one host between servers.
func skuDefaults(memoryMB int) map[string]string {
	if memoryMB <= 0 {
		return map[string]string{}
	}
	conns := 50
	for _, row := range maxConnectionsByMemory {
		if memoryMB >= row.memoryMB {
			conns = row.maxConnections
		}
	}
	pagesPerMB := 128 // shared_buffers and effective_cache_size are in 8kB pages
	return map[string]string{
		"max_connections":      strconv.Itoa(conns),
		"shared_buffers":       strconv.Itoa(min(memoryMB/4, 256) * pagesPerMB),
		"effective_cache_size": strconv.Itoa(memoryMB * 3 / 4 * pagesPerMB),
		"work_mem":             "4096",   // kB, Azure's 4MB
		"maintenance_work_mem": "262144", // kB: index builds sort in memory, not through the volume
	}
}

// serviceDefaults are values internal/postgres writes into every server's postgresql.conf for
// parameters users may change (shown as their defaultValue), in each parameter's unit.
var serviceDefaults = map[string]string{
	"wal_buffers": "2048", "wal_compression": "lz4", "checkpoint_timeout": "900", "checkpoint_completion_target": "0.9",
	"max_wal_size": "2048", "min_wal_size": "256", "timezone": "UTC", "log_timezone": "UTC",
	"log_line_prefix": "%m [%p] %q%u@%d ", "log_checkpoints": "on", "log_statement": "none",
	"log_rotation_age": "1440", "log_rotation_size": "102400", "synchronous_commit": "on",
}

// parameterDefault is what a parameter is when the user did not set it.
func (srv *Server) parameterDefault(p pgSetting) string {
	if v, ok := skuDefaults(srv.memoryMB())[p.Name]; ok {
		return v
	}
	if v, ok := serviceDefaults[p.Name]; ok {
		return v
	}
	return p.Boot
}

func (srv *Server) memoryMB() int {
	_, info, _ := lookupSKU(srv.SKU.Name)
	return info.VCores * info.MemoryPerVCoreM
}

// allowsPlaintext: require_secure_transport is off. Clients without TLS send no server name,
// so they reach the server through the endpoint as user@server (internal/pgrouter).
func (srv *Server) allowsPlaintext() bool { return srv.Parameters[requireSecureTransport] == "off" }

// effectiveParameters are what the data plane writes into the server's user configuration:
// the SKU's defaults, then the user's overrides. Azure-level parameters are not PostgreSQL's.
// A server made read-only by the storage monitor has default_transaction_read_only on,
// whatever the user set.
func (srv *Server) effectiveParameters() map[string]string {
	out := skuDefaults(srv.memoryMB())
	for n, v := range srv.Parameters {
		if n != requireSecureTransport && n != azureExtensions {
			out[n] = v
		}
	}
	if srv.StorageReadOnly != "" {
		out["default_transaction_read_only"] = "on"
	}
	return out
}

// extensions is the server's azure.extensions for the data plane: nil for the default (all
// of postgres.DefaultExtensions), an empty list to allow none.
func (srv *Server) extensions() []string {
	v, ok := srv.Parameters[azureExtensions]
	if !ok {
		return nil
	}
	if v == "" {
		return []string{}
	}
	return strings.Split(v, ",")
}

var dataTypes = map[string]string{"bool": "Boolean", "integer": "Integer", "real": "Numeric", "enum": "Enumeration",
	"string": "String", "set": "Set"}

func allowedValues(srv *Server, p pgSetting) string {
	switch p.Type {
	case "bool":
		return "on,off"
	case "integer", "real":
		lo, hi := parameterRange(srv, p)
		return lo + "-" + hi
	case "enum", "set":
		return strings.Join(p.Enum, ",")
	}
	return ""
}

// parameterRange is PostgreSQL's range, narrowed where a value PostgreSQL accepts would keep a
// server of this service from starting.
func parameterRange(srv *Server, p pgSetting) (lo, hi string) {
	lo, hi = p.Min, p.Max
	switch p.Name {
	case "max_connections":
		lo, hi = "25", "5000" // Azure's range
	case "shared_buffers":
		// At most half the compute's memory (in 8kB pages): more could not be allocated on a
		// host shared with other servers, and the server would not start again.
		if mb := srv.memoryMB(); mb > 0 {
			hi = strconv.Itoa(mb / 2 * 128)
		}
	case "wal_buffers":
		// Allocated and zeroed at start: at most an eighth of the compute's memory (8kB pages).
		if mb := srv.memoryMB(); mb > 0 {
			hi = strconv.Itoa(mb / 8 * 128)
		}
	case "min_dynamic_shared_memory":
		// Allocated at start: at most a quarter of the compute's memory (MB).
		if mb := srv.memoryMB(); mb > 0 {
			hi = strconv.Itoa(mb / 4)
		}
	}
	return lo, hi
}

func parameterView(srv *Server, p pgSetting) map[string]any {
	def := srv.parameterDefault(p)
	value, source := def, "system-default"
	if v, ok := srv.Parameters[p.Name]; ok {
		value, source = v, "user-override"
	}
	desc := p.Desc
	why := readOnlyReason(p)
	if why != "" {
		desc += " (Read-only on this service: " + why + ".)"
	}
	return map[string]any{
		"id":   srv.ID().Child("configurations", p.Name).String(),
		"name": p.Name,
		"type": ResourceType + "/configurations",
		"properties": map[string]any{
			"value":                  value,
			"description":            desc,
			"defaultValue":           def,
			"dataType":               dataTypes[p.Type],
			"allowedValues":          allowedValues(srv, p),
			"source":                 source,
			"isDynamicConfig":        p.Context != "postmaster" && p.Context != "internal",
			"isReadOnly":             why != "",
			"isConfigPendingRestart": slices.Contains(srv.PendingRestart, p.Name),
			"unit":                   p.Unit,
			"documentationLink":      "https://www.postgresql.org/docs/15/runtime-config.html",
		},
	}
}

// lookupParameter finds a parameter of the catalog (case-insensitively), or answers Azure's
// ConfigurationNotExists.
func lookupParameter(srv *Server, name string) (pgSetting, error) {
	if p, ok := catalog()[strings.ToLower(name)]; ok {
		return p, nil
	}
	return pgSetting{}, arm.Errorf(http.StatusNotFound, "ConfigurationNotExists",
		"The configuration '%s' does not exist for %s server version %s.", name, srv.Name, srv.Version)
}

// normalizeValue checks value against p's type and range and returns it as it is stored and
// written (booleans as on/off, enumerations in their own spelling); errors are Azure's 400.
func normalizeValue(srv *Server, p pgSetting, value string) (string, error) {
	bad := func(format string, a ...any) error {
		e := arm.InvalidParameter("properties.value", "Invalid value given for parameter %s. Specify a valid parameter value. ", p.Name)
		e.Message += fmt.Sprintf(format, a...)
		return e
	}
	v := strings.TrimSpace(value)
	switch p.Type {
	case "bool":
		switch strings.ToLower(v) {
		case "on", "true", "yes", "1":
			return "on", nil
		case "off", "false", "no", "0":
			return "off", nil
		}
		return "", bad("'%s' is not a Boolean: use on or off.", value)
	case "integer":
		lo, hi := parameterRange(srv, p)
		n, err := strconv.ParseInt(v, 10, 64)
		l, _ := strconv.ParseInt(lo, 10, 64)
		h, _ := strconv.ParseInt(hi, 10, 64)
		if err != nil {
			return "", bad("'%s' is not an integer%s.", value, unitNote(p))
		}
		if n < l || n > h {
			return "", bad("%d is outside the allowed range %s-%s%s.", n, lo, hi, unitNote(p))
		}
		return strconv.FormatInt(n, 10), nil
	case "real":
		lo, hi := parameterRange(srv, p)
		f, err := strconv.ParseFloat(v, 64)
		l, _ := strconv.ParseFloat(lo, 64)
		h, _ := strconv.ParseFloat(hi, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return "", bad("'%s' is not a number.", value)
		}
		if f < l || f > h {
			return "", bad("%s is outside the allowed range %s-%s.", v, lo, hi)
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	case "enum":
		for _, e := range p.Enum {
			if strings.EqualFold(e, v) {
				return e, nil
			}
		}
		return "", bad("'%s' is not one of %s.", value, strings.Join(p.Enum, ", "))
	case "set":
		// A comma-separated subset of the allowed values, in the catalog's order; empty allows none.
		chosen := map[string]bool{}
		for _, item := range strings.Split(v, ",") {
			item = strings.ToLower(strings.TrimSpace(item))
			if item == "" {
				continue
			}
			if !slices.Contains(p.Enum, item) {
				return "", bad("'%s' is not one of %s.", item, strings.Join(p.Enum, ", "))
			}
			chosen[item] = true
		}
		var out []string
		for _, e := range p.Enum {
			if chosen[e] {
				out = append(out, e)
			}
		}
		return strings.Join(out, ","), nil
	}
	if len(value) > 1024 || strings.IndexFunc(value, unicode.IsControl) >= 0 {
		return "", bad("The value must be one line of at most 1024 characters.")
	}
	return value, nil
}

func unitNote(p pgSetting) string {
	if p.Unit == "" {
		return ""
	}
	return " (in units of " + p.Unit + ")"
}

func (s *Service) listParameters(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.load(r.Context(), serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	names := make([]string, 0, len(catalog()))
	for n := range catalog() {
		names = append(names, n)
	}
	sort.Strings(names)
	views := make([]map[string]any, 0, len(names))
	for _, n := range names {
		views = append(views, parameterView(srv, catalog()[n]))
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}

func (s *Service) getParameter(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.load(r.Context(), serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	p, err := lookupParameter(srv, r.Param("configurationName"))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, parameterView(srv, p))
}

// setParameter is PUT and PATCH: a value (with source user-override or none), or a reset to
// the default (source system-default, or the default value itself, as az sends for a set
// without --value). It is stored with the server at once and applied by a long-running
// operation: a reload, so dynamic parameters take effect at once; a static one is pending
// until the server restarts.
func (s *Service) setParameter(w http.ResponseWriter, r *arm.Request) {
	id := serverIDFrom(r)
	var body struct {
		Properties struct {
			Value  *string `json:"value"`
			Source string  `json:"source"`
		} `json:"properties"`
	}
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	mu := s.serverLock(id)
	mu.Lock()
	defer mu.Unlock()
	var op *arm.Operation
	var (
		changed, addedPending bool
		name, old, now        string
		had, has              bool
	)
	_, err := s.mutate(r.Context(), id, func(cur *Server) error {
		p, err := lookupParameter(cur, r.Param("configurationName"))
		if err != nil {
			return err
		}
		if why := readOnlyReason(p); why != "" {
			return arm.BadRequest("ParameterIsReadOnly", "The configuration '%s' is read-only on this service: %s.", p.Name, why)
		}
		var value string
		reset := false
		switch strings.ToLower(body.Properties.Source) {
		case "system-default":
			reset = true
		case "", "user-override":
			if body.Properties.Value == nil {
				return arm.InvalidParameter("properties.value", "Invalid value given for parameter %s. Specify a valid parameter value.", p.Name)
			}
			if value, err = normalizeValue(cur, p, *body.Properties.Value); err != nil {
				return err
			}
			reset = value == cur.parameterDefault(p)
		default:
			return arm.InvalidParameter("properties.source", "Invalid value given for parameter source. Specify a valid parameter value: user-override or system-default.")
		}
		if cur.State == StateInaccessible {
			return inaccessible(cur, "configured")
		}
		if cur.State != StateReady {
			return arm.Conflict("InvalidServerState", "The server '%s' is %s; its parameters can be set only while it is Ready.", cur.Name, cur.State)
		}
		if cur.Operation != "" {
			return busy(cur)
		}
		name = p.Name
		old, had = cur.Parameters[p.Name]
		if reset {
			delete(cur.Parameters, p.Name)
		} else {
			if cur.Parameters == nil {
				cur.Parameters = map[string]string{}
			}
			cur.Parameters[p.Name] = value
		}
		now, has = cur.Parameters[p.Name]
		changed = had != has || old != now
		addedPending = false
		if changed && p.Context == "postmaster" && !slices.Contains(cur.PendingRestart, p.Name) {
			cur.PendingRestart = append(cur.PendingRestart, p.Name)
			addedPending = true
		}
		op = s.newOperation(cur, "flexserver/setConfiguration")
		return nil
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if err := s.ops.Start(r.Context(), op, func(ctx context.Context, op *arm.Operation) error {
		if !changed {
			return nil
		}
		err := s.applyParameters(ctx, id)
		if err != nil {
			// PostgreSQL refused the value (or it could not be applied): the server keeps
			// its previous value, in the record and in its configuration file.
			s.revertParameter(ctx, id, name, old, had, now, has, addedPending)
		}
		return err
	}); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("server parameter set", "server", id.Name(), "parameter", r.Param("configurationName"), "operation", op.Name)
	arm.Accepted(w, r, op, http.StatusAccepted, nil)
}

// applyParameters writes the server's current parameters into its configuration and reloads
// it. Changes apply one at a time per server, each reading the record afresh: an operation that
// started earlier never writes its older values over a later change's.
func (s *Service) applyParameters(ctx context.Context, id arm.ResourceID) error {
	return s.applyParametersWith(ctx, id, nil)
}

// applyParametersWith is applyParameters for the server as change makes it (nil: as it is),
// recording the change once PostgreSQL has it.
func (s *Service) applyParametersWith(ctx context.Context, id arm.ResourceID, change func(*Server)) error {
	mu, _ := s.paramLocks.LoadOrStore(id.Key(), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	srv, err := s.reload(ctx, id)
	if err != nil {
		return err
	}
	if srv == nil {
		return notFound(id)
	}
	if change == nil {
		return s.dp.SetParameters(ctx, srv.instance())
	}
	change(srv)
	if err := s.dp.SetParameters(ctx, srv.instance()); err != nil {
		return err
	}
	_, err = s.mutate(ctx, id, func(cur *Server) error {
		change(cur)
		return nil
	})
	return err
}

// revertParameter puts a parameter back to its value before a change that failed (unless a
// later change has replaced it since) and writes the configuration again.
func (s *Service) revertParameter(ctx context.Context, id arm.ResourceID, name, old string, had bool, failed string, failedSet, addedPending bool) {
	ctx = context.WithoutCancel(ctx)
	if _, err := s.mutate(ctx, id, func(cur *Server) error {
		if v, ok := cur.Parameters[name]; ok != failedSet || v != failed {
			return nil // changed again since: the later change decides
		}
		if had {
			cur.Parameters[name] = old
		} else {
			delete(cur.Parameters, name)
		}
		if addedPending {
			cur.PendingRestart = slices.DeleteFunc(cur.PendingRestart, func(n string) bool { return n == name })
		}
		return nil
	}); err != nil {
		s.log.Warn("put a refused parameter back", "server", id.Name(), "parameter", name, "err", err)
		return
	}
	if err := s.applyParameters(ctx, id); err != nil {
		s.log.Warn("write the configuration back after a refused parameter", "server", id.Name(), "parameter", name, "err", err)
	}
}

// clearPendingRestart records that the server's PostgreSQL started with its current
// parameters.
func (s *Service) clearPendingRestart(ctx context.Context, id arm.ResourceID) {
	if _, err := s.mutate(context.WithoutCancel(ctx), id, func(cur *Server) error {
		cur.PendingRestart = nil
		return nil
	}); err != nil {
		s.log.Warn("record the server's parameters as applied", "server", id.Name(), "err", err)
	}
}
