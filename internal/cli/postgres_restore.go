package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// `pgflex postgres flexible-server restore` and `geo-restore` are az's flexible_server_restore
// and flexible_server_georestore: a new server created from the backups of another, by a PUT
// with createMode PointInTimeRestore (from the source's own region) or GeoRestore (from its
// copies in the paired region). Restoring is the only way to change a server's kind of key: the
// new server gets its own encryption, a service-managed key unless --identity and --key (and,
// with geo-redundant backup, --backup-identity and --backup-key) say otherwise.

// az's texts, verbatim.
const (
	msgRestoreTimeFormat = "The restore point in time value has incorrect date format. Please use ISO format e.g., 2021-10-22T00:08:23+00:00."
	// restore raises the first, geo-restore and revive-dropped the second.
	msgInvalidSourceServer    = "The provided source server %s is invalid."
	msgInvalidSourceServerGeo = "The provided source-server %s is invalid."
)

// The createModes of the commands that make a server from another's backups.
const (
	createModePointInTimeRestore = "PointInTimeRestore"
	createModeGeoRestore         = "GeoRestore"
	createModeReviveDropped      = "ReviveDropped"
)

// pgRestoreArgs are the arguments of restore, geo-restore and revive-dropped; mode is the
// createMode the command sends.
type pgRestoreArgs struct {
	mode                       string
	group, name, source        string
	restoreTime, location, geo string
	byok                       byokArgs
	noWait                     bool
}

func newPostgresRestoreCommand(a *App) *cobra.Command {
	o := pgRestoreArgs{mode: createModePointInTimeRestore}
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore server from backup.",
		Long: "Restore a flexible server to a point in time into a new server, in the source's region. The new server " +
			"has its own data encryption key and its own choice of key: a service-managed key unless --identity and --key " +
			"name a customer-managed one, whatever the source used. This is how a server moves between service- and " +
			"customer-managed keys.",
		Example: "  pgflex postgres flexible-server restore -g testgroup -n testserverNew --source-server testserver --restore-time \"2017-06-15T13:10:00Z\"\n" +
			"  pgflex postgres flexible-server restore -g testgroup -n testserverNew --source-server testserver \\\n" +
			"    --identity testIdentity --key https://myvault.vault.localhost:8443/keys/mykey",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.restorePostgresServer(cmd.Context(), &o) },
	}
	addRestoreFlags(cmd, &o)
	return cmd
}

func newPostgresGeoRestoreCommand(a *App) *cobra.Command {
	o := pgRestoreArgs{mode: createModeGeoRestore}
	cmd := &cobra.Command{
		Use:   "geo-restore",
		Short: "Geo-restore server from backup.",
		Long: "Restore a flexible server into a new server in the source's paired region, from the geo-redundant copies " +
			"of its backups (the source needs geo-redundant backup enabled). The new server has its own data encryption " +
			"key and its own choice of key, as with restore.",
		Example: "  pgflex postgres flexible-server geo-restore -g testgroup -n testserverNew --source-server testserver -l westus\n" +
			"  pgflex postgres flexible-server geo-restore -g testgroup -n testserverNew --source-server testserver -l westus \\\n" +
			"    --identity testIdentity --key https://myvault.vault.localhost:8443/keys/mykey",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.restorePostgresServer(cmd.Context(), &o) },
	}
	addRestoreFlags(cmd, &o)
	AddLocationFlag(cmd, &o.location)
	return cmd
}

func addRestoreFlags(cmd *cobra.Command, o *pgRestoreArgs) {
	addNewServerFromBackupFlags(cmd, o)
	cmd.Flags().StringVar(&o.restoreTime, "restore-time", "",
		"The point in time in UTC to restore from (ISO8601 format), e.g., 2017-04-26T02:10:00+00:00. The default value is set to current time.")
}

// addNewServerFromBackupFlags are the flags restore, geo-restore and revive-dropped share.
func addNewServerFromBackupFlags(cmd *cobra.Command, o *pgRestoreArgs) {
	AddResourceGroupFlag(cmd, &o.group)
	addServerNameFlag(cmd, &o.name, "name", "n")
	cmd.Flags().StringVar(&o.source, "source-server", "", "The name or resource ID of the source server to restore from.")
	addEnumFlag(cmd, &o.geo, "geo-redundant-backup", "Disabled", "Whether or not geo redundant backup is enabled.", "Enabled", "Disabled")
	addBYOKFlags(cmd, &o.byok)
	AddNoWaitFlag(cmd, &o.noWait)
}

// restorePostgresServer checks everything that needs no call first (identities, source,
// restore time, the data-encryption flags against the new server's geo setting), then reads
// the source and checks the new name at the target location, and only then sends the PUT.
// az runs the same checks with the two reads first; the outcome differs only in which of
// several errors is reported. revive-dropped reads no source: it no longer exists, and the
// new server goes to --location.
func (a *App) restorePostgresServer(ctx context.Context, o *pgRestoreArgs) error {
	args := []Arg{RequiredArg("--source-server", &o.source)}
	if o.mode != createModePointInTimeRestore {
		args = append(args, LocationArg(&o.location))
	}
	// The default is taken when the command starts, as az's is (whole seconds, UTC).
	now := time.Now().UTC().Truncate(time.Second)
	ref, err := a.serverArgs(ctx, &o.group, &o.name, "--name/-n", args...)
	if err != nil {
		return err
	}
	o.name = strings.ToLower(o.name)
	ref.name = o.name
	if len(o.name) < 3 || len(o.name) > 63 {
		return &UserError{Msg: "Server name must be at least 3 characters and at most 63 characters."}
	}
	if err := resolveBYOKIdentities(&o.byok, ref.sub, o.group); err != nil {
		return err
	}
	sourceID, err := restoreSourceID(o.source, ref.sub, o.group, o.mode != createModePointInTimeRestore)
	if err != nil {
		return err
	}
	pointInTime := now
	if o.restoreTime != "" {
		if pointInTime, err = parseRestoreTime(o.restoreTime); err != nil {
			return err
		}
	}
	// The validator sees the new server's geo-redundant backup setting and no instance: the
	// new server's keys have nothing to do with the source's.
	if err := validateBYOK(o.byok, o.geo, nil); err != nil {
		return err
	}

	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	location := o.location
	if o.mode != createModeReviveDropped {
		resp, err := c.ARM(ctx, http.MethodGet, escapeResourceID(sourceID), APIVersionPostgres, nil)
		if err != nil {
			return err
		}
		source, err := decodeServer(resp.Body)
		if err != nil {
			return err
		}
		if o.mode == createModePointInTimeRestore {
			location = strings.Join(strings.Fields(strings.ToLower(source.Location)), "")
		}
	}
	if err := a.checkServerName(ctx, ref.sub, location, o.name); err != nil {
		return err
	}

	body := restoreServerBody(o, sourceID, location, pointInTime)
	resp, err := c.ARM(ctx, http.MethodPut, ref.path(), APIVersionPostgres, body)
	if err != nil || o.noWait {
		return err
	}
	final, err := a.wait(ctx, c, http.MethodPut, c.ARMURL(ref.path(), APIVersionPostgres), resp)
	if err != nil {
		return err
	}
	return a.printServer(final.Body)
}

// restoreServerBody is the PUT: the createMode, the source, the point in time, the new
// server's geo-redundant backup setting and, when a customer-managed key is given, its identity
// and dataEncryption blocks exactly as create sends them.
func restoreServerBody(o *pgRestoreArgs, sourceID, location string, pointInTime time.Time) map[string]any {
	props := map[string]any{
		"createMode":             o.mode,
		"sourceServerResourceId": sourceID,
		"pointInTimeUTC":         formatPointInTime(pointInTime),
		"backup":                 map[string]any{"geoRedundantBackup": o.geo},
	}
	body := map[string]any{"location": location, "properties": props}
	if identity, enc := buildIdentityAndDataEncryption(o.byok, nil); identity != nil {
		body["identity"] = identity
		props["dataEncryption"] = enc
	}
	return body
}

// restoreSourceID is az's resolution of --source-server: a resource id as given, a bare name
// as the flexible server of that name in the new server's group and subscription. dashed
// selects the wording of geo-restore and revive-dropped ("source-server") over restore's.
func restoreSourceID(source, sub, group string, dashed bool) (string, error) {
	if isResourceID(source) {
		return source, nil
	}
	if source != "" && !strings.Contains(source, "/") {
		return "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/" + flexibleServerType + "/" + source, nil
	}
	if dashed {
		return "", &UserError{Msg: fmt.Sprintf(msgInvalidSourceServerGeo, source)}
	}
	return "", &UserError{Msg: fmt.Sprintf(msgInvalidSourceServer, source)}
}

// escapeResourceID makes a resource id a request path, each segment escaped.
func escapeResourceID(id string) string {
	segs := strings.Split(id, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// restoreTimeLayouts are the forms --restore-time accepts: ISO 8601 with "T" or a space,
// with or without seconds (fractions allowed), with an offset (Z, +hh:mm, +hhmm, +hh) or none
// (UTC), or a date alone (midnight UTC). az hands the value to dateutil's parser, which takes
// more; these are the forms a time is written in.
var restoreTimeLayouts = func() []string {
	var out []string
	for _, sep := range []string{"T", " "} {
		for _, clock := range []string{"15:04:05", "15:04"} {
			for _, zone := range []string{"Z07:00", "Z0700", "Z07", " Z07:00", ""} {
				out = append(out, "2006-01-02"+sep+clock+zone)
			}
		}
	}
	return append(out, "2006-01-02")
}()

// parseRestoreTime reads --restore-time as az's validate_and_format_restore_point_in_time
// does; a time without an offset is UTC.
func parseRestoreTime(s string) (time.Time, error) {
	v := strings.ToUpper(strings.TrimSpace(s))
	for _, suffix := range []string{" UTC", " GMT"} {
		if strings.HasSuffix(v, suffix) {
			v = strings.TrimSuffix(v, suffix) + "Z"
		}
	}
	for _, layout := range restoreTimeLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Truncate(time.Microsecond), nil
		}
	}
	return time.Time{}, &UserError{Msg: msgRestoreTimeFormat}
}

// formatPointInTime writes pointInTimeUTC as the Python SDK serializes a datetime (msrest's
// serialize_iso): UTC, at least milliseconds, "Z" — "2021-10-22T00:08:23.000Z".
func formatPointInTime(t time.Time) string {
	t = t.UTC()
	frac := strings.TrimRight(fmt.Sprintf("%06d", t.Nanosecond()/1000), "0")
	for len(frac) < 3 {
		frac += "0"
	}
	return t.Format("2006-01-02T15:04:05") + "." + frac + "Z"
}
