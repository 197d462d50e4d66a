package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// APIVersionActivityLog is the api-version of Microsoft.Insights event data, which az's
// `monitor activity-log list` reads.
const APIVersionActivityLog = "2015-04-01"

// activityLogProperties are the EventData properties --select accepts, as az lists them.
var activityLogProperties = []string{
	"authorization", "caller", "category", "claims", "correlationId", "description", "eventDataId",
	"eventName", "eventTimestamp", "httpRequest", "id", "level", "operationId", "operationName",
	"properties", "resourceGroupName", "resourceId", "resourceProviderName", "resourceType", "status",
	"subStatus", "submissionTimestamp", "subscriptionId", "tenantId",
}

const (
	activityTimeFormat = "Format: date (yyyy-mm-dd) time (hh:mm:ss.xxxxx) timezone (+/-hh:mm)"
	startTimeHelp      = "Start time of the query. " + activityTimeFormat
	endTimeHelp        = "End time of the query. Defaults to the current time. " + activityTimeFormat
)

func newMonitorCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("monitor", "Manage the Azure Monitor Service.")
	activity := newCommandGroup("activity-log", "Manage activity logs.")
	activity.AddCommand(newActivityLogListCommand(a))
	cmd.AddCommand(activity)
	return cmd
}

// activityLogQuery is what `monitor activity-log list` asks for.
type activityLogQuery struct {
	correlationID, resourceGroup, resourceID, namespace string
	caller, status                                      string
	startTime, endTime                                  []string // nargs='+': words joined by a space
	offset                                              string
	maxEvents                                           int
	selects                                             []string
}

func newActivityLogListCommand(a *App) *cobra.Command {
	var q activityLogQuery
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List and query activity log events.",
		Long: "List and query activity log events.\n\n" +
			"pgflex records there every change it makes on its own, with its cause: a key version followed, " +
			"a server made Inaccessible by a revoked key, access restored.",
		Example: "  pgflex monitor activity-log list --start-time 2018-07-01 --offset 7d\n" +
			"  pgflex monitor activity-log list --correlation-id b5eac9d2-e829-4c9a-9efb-586d19417c5f\n" +
			"  pgflex monitor activity-log list -g MyResourceGroup --offset 1h\n" +
			"  pgflex monitor activity-log list --resource-id /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{server} " +
			"--query \"[].{time:eventTimestamp, operation:operationName.value, description:description}\"",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// az's -g falls back to the configured default group; a narrower scope given on
			// the command line wins over that default.
			if q.correlationID == "" && q.resourceID == "" && q.namespace == "" {
				if err := a.ResolveArgs(Arg{Name: "--resource-group/-g", Value: &q.resourceGroup, Default: "group", Optional: true}); err != nil {
					return err
				}
			}
			f, err := q.filter(time.Now())
			if err != nil {
				return err
			}
			selects, err := canonicalSelects(q.selects)
			if err != nil {
				return err
			}
			events, err := a.listActivityLog(cmd.Context(), f, selects, q.maxEvents)
			if err != nil {
				return err
			}
			return a.Print(events)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&q.correlationID, "correlation-id", "", "Correlation ID to query.")
	AddResourceGroupFlag(cmd, &q.resourceGroup)
	fl.StringVar(&q.resourceID, "resource-id", "", "ARM ID of a resource.")
	fl.StringVar(&q.namespace, "namespace", "", "Resource provider namespace.")
	fl.StringVar(&q.caller, "caller", "", "Caller to look for when querying.")
	fl.StringVar(&q.status, "status", "", "Status to query for (ex: Failed)")
	fl.StringArrayVar(&q.startTime, "start-time", nil, startTimeHelp)
	markMultiValue(cmd, "start-time", "+")
	fl.StringArrayVar(&q.endTime, "end-time", nil, endTimeHelp)
	markMultiValue(cmd, "end-time", "+")
	fl.StringVar(&q.offset, "offset", "6h", "Time offset of the query range, in ##d##h format. Can be used with either --start-time or --end-time. "+
		"If used with --start-time, then the end time will be calculated by adding the offset. If used with --end-time (default), "+
		"then the start time will be calculated by subtracting the offset. If --start-time and --end-time are provided, then --offset will be ignored.")
	fl.IntVar(&q.maxEvents, "max-events", 50, "Maximum number of records to return.")
	fl.StringArrayVar(&q.selects, "select", nil, "Space-separated list of properties to return. Allowed values: "+strings.Join(activityLogProperties, ", ")+".")
	markMultiValue(cmd, "select", "+")
	return cmd
}

// activityFilter is one activity-log query: a time range and at most one scope, as az builds it.
type activityFilter struct {
	from, to       time.Time
	field, value   string // correlationId, resourceGroupName, resourceUri or resourceProvider
	caller, status string
}

// filter resolves the time range the way az does — neither end given: the offset before now;
// one end: the offset from it; both: the offset is ignored — and picks the scope: the first
// of correlation id, resource group, resource id, namespace.
func (q *activityLogQuery) filter(now time.Time) (activityFilter, error) {
	var f activityFilter
	offset, err := parsePeriod("--offset", q.offset)
	if err != nil {
		return f, err
	}
	var start, end time.Time
	if len(q.startTime) > 0 {
		if start, err = parseActivityTime(q.startTime, startTimeHelp); err != nil {
			return f, err
		}
	}
	if len(q.endTime) > 0 {
		if end, err = parseActivityTime(q.endTime, endTimeHelp); err != nil {
			return f, err
		}
	}
	switch {
	case start.IsZero() && end.IsZero():
		end = now
		start = end.Add(-offset)
	case start.IsZero():
		start = end.Add(-offset)
	case end.IsZero():
		end = start.Add(offset)
	}
	f.from, f.to = start.UTC(), end.UTC()
	switch {
	case q.correlationID != "":
		f.field, f.value = "correlationId", q.correlationID
	case q.resourceGroup != "":
		f.field, f.value = "resourceGroupName", q.resourceGroup
	case q.resourceID != "":
		f.field, f.value = "resourceUri", q.resourceID
	case q.namespace != "":
		f.field, f.value = "resourceProvider", q.namespace
	}
	f.caller, f.status = q.caller, q.status
	return f, nil
}

// odata is the $filter Azure's event data API accepts.
func (f activityFilter) odata() string {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	s := "eventTimestamp ge " + quote(f.from.Format(time.RFC3339Nano)) + " and eventTimestamp le " + quote(f.to.Format(time.RFC3339Nano))
	if f.field != "" {
		s += " and " + f.field + " eq " + quote(f.value)
	}
	if f.caller != "" {
		s += " and caller eq " + quote(f.caller)
	}
	if f.status != "" {
		s += " and status eq " + quote(f.status)
	}
	return s
}

// activityEvent is what matches reads of an EventData.
type activityEvent struct {
	Caller            string `json:"caller"`
	CorrelationID     string `json:"correlationId"`
	EventTimestamp    string `json:"eventTimestamp"`
	ResourceGroupName string `json:"resourceGroupName"`
	ResourceID        string `json:"resourceId"`
	Status            struct {
		Value string `json:"value"`
	} `json:"status"`
	ResourceProviderName struct {
		Value string `json:"value"`
	} `json:"resourceProviderName"`
}

// matches applies every term of the filter to an event. The service applies those it supports
// (pgflex's: the time range, the resource group and the resource); checking all of them again
// here makes the answer what the filter says whichever terms the service honoured.
func (f activityFilter) matches(raw json.RawMessage) bool {
	var e activityEvent
	if json.Unmarshal(raw, &e) != nil {
		return false
	}
	eq := strings.EqualFold
	if t, err := time.Parse(time.RFC3339Nano, e.EventTimestamp); err == nil && (t.Before(f.from) || t.After(f.to)) {
		return false
	}
	switch f.field {
	case "correlationId":
		if !eq(e.CorrelationID, f.value) {
			return false
		}
	case "resourceGroupName":
		if !eq(e.ResourceGroupName, f.value) {
			return false
		}
	case "resourceUri":
		if !eq(e.ResourceID, f.value) {
			return false
		}
	case "resourceProvider":
		if !eq(e.ResourceProviderName.Value, f.value) {
			return false
		}
	}
	return (f.caller == "" || eq(e.Caller, f.caller)) && (f.status == "" || eq(e.Status.Value, f.status))
}

// listActivityLog reads events newest first, up to max, each cut to the selected properties.
func (a *App) listActivityLog(ctx context.Context, f activityFilter, selects []string, max int) ([]json.RawMessage, error) {
	sub, c, err := a.armSession(ctx)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(c.ARMURL(SubscriptionPath(sub)+"/providers/Microsoft.Insights/eventtypes/management/values", APIVersionActivityLog))
	if err != nil {
		return nil, err
	}
	params := u.Query()
	params.Set("$filter", f.odata())
	if len(selects) > 0 {
		params.Set("$select", strings.Join(selects, ","))
	}
	u.RawQuery = params.Encode()
	events := []json.RawMessage{}
	if max <= 0 {
		return events, nil
	}
	var cutErr error
	err = c.EachItem(ctx, u.String(), func(raw json.RawMessage) bool {
		if !f.matches(raw) {
			return true
		}
		if len(selects) > 0 {
			if raw, cutErr = selectProperties(raw, selects); cutErr != nil {
				return false
			}
		}
		events = append(events, raw)
		return len(events) < max
	})
	if err == nil {
		err = cutErr
	}
	return events, err
}

// selectProperties keeps only the selected properties of an event, as the service's $select does.
func selectProperties(raw json.RawMessage, selects []string) (json.RawMessage, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, &UserError{Msg: "The service answered with an event that is not a JSON object.", Err: err}
	}
	kept := map[string]json.RawMessage{}
	for _, k := range selects {
		if v, ok := all[k]; ok && string(v) != "null" {
			kept[k] = v
		}
	}
	return json.Marshal(kept)
}

// canonicalSelects checks --select against the EventData properties, case-insensitively as
// az's enum type does, and returns their canonical spelling.
func canonicalSelects(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, s := range in {
		i := slices.IndexFunc(activityLogProperties, func(p string) bool { return strings.EqualFold(p, s) })
		if i < 0 {
			quoted := make([]string, len(activityLogProperties))
			for j, p := range activityLogProperties {
				quoted[j] = pythonRepr(p)
			}
			return nil, Usagef("argument --select: invalid choice: %s (choose from %s)", pythonRepr(s), strings.Join(quoted, ", "))
		}
		if !slices.Contains(out, activityLogProperties[i]) {
			out = append(out, activityLogProperties[i])
		}
	}
	return out, nil
}

// periodPattern is az's period_type: an ISO 8601 duration (P1DT2H) or its shorthand (1d2h, 30m).
var periodPattern = regexp.MustCompile(`^(p)?(\d+y)?(\d+m)?(\d+d)?(t)?(\d+h)?(\d+m)?(\d+s)?$`)

// parsePeriod reads az's period_type as a duration: days, hours, minutes (an "m" before the
// hours counts as minutes, as az reads it) and seconds. Years, which az's shorthand silently
// drops, are refused.
func parsePeriod(flag, s string) (time.Duration, error) {
	m := periodPattern.FindStringSubmatch(strings.ToLower(s))
	if m == nil || m[2] != "" {
		return 0, Usagef("argument %s: invalid period_type value: %s", flag, pythonRepr(s))
	}
	n := func(part string) time.Duration {
		v, _ := strconv.Atoi(strings.TrimRight(part, "dhms"))
		return time.Duration(v)
	}
	minutes := m[7]
	if minutes == "" {
		minutes = m[3]
	}
	return n(m[4])*24*time.Hour + n(m[6])*time.Hour + n(minutes)*time.Minute + n(m[8])*time.Second, nil
}

// activityTimeLayouts are the ISO 8601 forms --start-time and --end-time accept; fractional
// seconds are accepted after the seconds of any of them.
var activityTimeLayouts = []string{
	"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05",
	"2006-01-02T15:04Z07:00", "2006-01-02T15:04",
	"2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05 Z07:00", "2006-01-02 15:04:05Z0700", "2006-01-02 15:04:05",
	"2006-01-02 15:04Z07:00", "2006-01-02 15:04",
	"2006-01-02",
}

// parseActivityTime reads az's datetime_type: the words are joined by a space, and a time
// without a zone is local time, as az reads it.
func parseActivityTime(words []string, help string) (time.Time, error) {
	s := strings.Join(words, " ")
	for _, layout := range activityTimeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, &UserError{Msg: fmt.Sprintf("Unable to parse: '%s'. Expected format: %s", s, help)}
}
