package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeActivityLog serves canned events on a fakeDaemon, newest first, two per page, and
// records each request's $filter and $select. It applies no filter at all, so what a test sees
// filtered is filtered by the CLI.
type fakeActivityLog struct {
	f      *fakeDaemon
	mu     sync.Mutex
	events []map[string]any
	reqs   []map[string]string
}

func newFakeActivityLog(t *testing.T) (*fakeDaemon, *fakeActivityLog) {
	f := newFakeDaemon(t)
	x := &fakeActivityLog{f: f}
	f.mux.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		skip, _ := strconv.Atoi(q.Get("$skiptoken"))
		x.mu.Lock()
		x.reqs = append(x.reqs, map[string]string{"filter": q.Get("$filter"), "select": q.Get("$select"), "api-version": q.Get("api-version")})
		page := []any{}
		for i := skip; i < len(x.events) && len(page) < 2; i++ {
			page = append(page, x.events[i])
		}
		body := map[string]any{"value": page}
		if skip+2 < len(x.events) {
			body["nextLink"] = fmt.Sprintf("%s%s?api-version=%s&$skiptoken=%d", f.srv.URL, r.URL.Path, q.Get("api-version"), skip+2)
		}
		x.mu.Unlock()
		replyJSON(w, http.StatusOK, body)
	})
	return f, x
}

// add appends an event older than the ones before it, in the daemon's EventData shape.
func (x *fakeActivityLog) add(group, server, op, caller, status, ts string) {
	loc := func(v string) map[string]any { return map[string]any{"value": v, "localizedValue": v} }
	id := "/subscriptions/" + x.f.sub + "/resourceGroups/" + group + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + server
	n := len(x.events)
	x.events = append(x.events, map[string]any{
		"id": id + "/events/e" + strconv.Itoa(n), "eventDataId": "e" + strconv.Itoa(n), "correlationId": "c" + strconv.Itoa(n),
		"caller": caller, "category": loc("Administrative"), "description": op + " on " + server, "eventName": loc("EndRequest"),
		"eventTimestamp": ts, "submissionTimestamp": ts, "level": "Informational",
		"operationName": loc("Microsoft.DBforPostgreSQL/flexibleServers/" + op + "/action"), "resourceGroupName": group, "resourceId": id,
		"resourceProviderName": loc("Microsoft.DBforPostgreSQL"), "resourceType": loc("Microsoft.DBforPostgreSQL/flexibleServers"),
		"status": loc(status), "subStatus": loc(""), "subscriptionId": x.f.sub, "tenantId": "",
		"properties": map[string]any{"cause": op},
	})
}

func (x *fakeActivityLog) requests() []map[string]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]map[string]string(nil), x.reqs...)
}

// seed is a log of five events on 2026-01-02, newest first.
func (x *fakeActivityLog) seed() {
	x.add("rg1", "srv1", "keyRevoked", "pgflex", "Succeeded", "2026-01-02T10:00:00Z")
	x.add("rg2", "srv2", "keyVersionUpdated", "pgflex", "Succeeded", "2026-01-02T09:00:00Z")
	x.add("rg1", "srv1", "keyVersionUpdated", "someone@example.com", "Succeeded", "2026-01-02T08:00:00Z")
	x.add("rg1", "srv1", "accessRestored", "pgflex", "Failed", "2026-01-02T07:00:00Z")
	x.add("rg1", "srv3", "keyVersionUpdated", "pgflex", "Succeeded", "2026-01-01T07:00:00Z")
}

func TestActivityLogListSendsAzFilterAndAppliesIt(t *testing.T) {
	f, x := newFakeActivityLog(t)
	x.seed()
	o := withProfile(t, f)
	out, errOut, code := runCLI(t, o, "monitor", "activity-log", "list", "-g", "rg1", "--start-time", "2026-01-02T00:00:00Z", "--offset", "1d2h",
		"--caller", "PGFLEX", "--status", "succeeded", "--query", "[].description", "-o", "tsv")
	if code != 0 || out != "keyRevoked on srv1\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	reqs := x.requests()
	want := "eventTimestamp ge '2026-01-02T00:00:00Z' and eventTimestamp le '2026-01-03T02:00:00Z' and resourceGroupName eq 'rg1' and caller eq 'PGFLEX' and status eq 'succeeded'"
	if len(reqs) == 0 || reqs[0]["filter"] != want || reqs[0]["api-version"] != APIVersionActivityLog || reqs[0]["select"] != "" {
		t.Fatalf("requests = %v\nwant filter %s", reqs, want)
	}

	// Each scope flag, and the time range: the event of 2026-01-01 is outside.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--resource-id", "/subscriptions/" + f.sub + "/resourceGroups/rg1/providers/Microsoft.DBforPostgreSQL/flexibleServers/SRV1"},
			"keyRevoked on srv1\nkeyVersionUpdated on srv1\naccessRestored on srv1\n"},
		{[]string{"-g", "rg2"}, "keyVersionUpdated on srv2\n"},
		{[]string{"-g", "other"}, ""},
		{[]string{"--correlation-id", "c3"}, "accessRestored on srv1\n"},
		{[]string{"--namespace", "microsoft.dbforpostgresql", "--status", "Failed"}, "accessRestored on srv1\n"},
		{[]string{"--caller", "someone@example.com"}, "keyVersionUpdated on srv1\n"},
		{[]string{"-g", "rg1", "--end-time", "2026-01-02T08:00:00Z", "--offset", "1h"}, "keyVersionUpdated on srv1\naccessRestored on srv1\n"},
		{[]string{"-g", "rg1", "--start-time", "2026-01-02T09:30:00Z"}, "keyRevoked on srv1\n"},
		{[]string{"-g", "rg1", "--start-time", "2026-01-02T10:00:01Z"}, ""},
	} {
		args := append([]string{"monitor", "activity-log", "list", "--offset", "1d"}, tc.args...)
		if !strings.Contains(strings.Join(tc.args, " "), "-time") {
			args = append(args, "--start-time", "2026-01-02")
		}
		out, errOut, code := runCLI(t, o, append(args, "--query", "[].description", "-o", "tsv")...)
		if code != 0 || out != tc.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
	// Scope flags are exclusive in az's order: the correlation id wins over the group.
	n := len(x.requests())
	if _, errOut, code := runCLI(t, o, "monitor", "activity-log", "list", "--correlation-id", "c1", "-g", "rg1"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if reqs := x.requests(); !strings.HasSuffix(reqs[n]["filter"], "and correlationId eq 'c1'") {
		t.Errorf("filter with --correlation-id and -g: %s", reqs[n]["filter"])
	}
}

func TestActivityLogListDefaultGroupAndWindow(t *testing.T) {
	f, x := newFakeActivityLog(t)
	o := withProfile(t, f)
	last := func() string { r := x.requests(); return r[len(r)-1]["filter"] }

	before := time.Now().UTC()
	if _, errOut, code := runCLI(t, o, "monitor", "activity-log", "list"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	parts := strings.Split(last(), "'") // eventTimestamp ge 'FROM' and eventTimestamp le 'TO'
	if len(parts) != 5 {
		t.Fatalf("default filter: %s", last())
	}
	from, _ := time.Parse(time.RFC3339Nano, parts[1])
	to, _ := time.Parse(time.RFC3339Nano, parts[3])
	if to.Before(before) || time.Since(to) > time.Minute || to.Sub(from) != 6*time.Hour {
		t.Errorf("default window: %s", last())
	}

	// The configured default group scopes the query unless a narrower scope is given.
	runCLI(t, o, "configure", "--defaults", "group=rg9")
	runCLI(t, o, "monitor", "activity-log", "list")
	if !strings.HasSuffix(last(), "and resourceGroupName eq 'rg9'") {
		t.Errorf("default group not used: %s", last())
	}
	runCLI(t, o, "monitor", "activity-log", "list", "--resource-id", "/subscriptions/x/resourceGroups/a/providers/P/t/n")
	if !strings.HasSuffix(last(), "and resourceUri eq '/subscriptions/x/resourceGroups/a/providers/P/t/n'") {
		t.Errorf("--resource-id with a default group: %s", last())
	}
}

func TestActivityLogListMaxEventsSelectAndTable(t *testing.T) {
	f, x := newFakeActivityLog(t)
	x.seed()
	o := withProfile(t, f)
	base := []string{"monitor", "activity-log", "list", "--start-time", "2025-12-31", "--offset", "3d"}

	// --max-events stops reading pages once it has enough.
	out, _, code := runCLI(t, o, append(base, "--max-events", "3", "--query", "[].eventDataId", "-o", "tsv")...)
	if code != 0 || out != "e0\ne1\ne2\n" || len(x.requests()) != 2 {
		t.Errorf("--max-events 3: exit %d, %q after %d page requests", code, out, len(x.requests()))
	}
	if out, _, code := runCLI(t, o, append(base, "--max-events", "0")...); code != 0 || out != "[]\n" {
		t.Errorf("--max-events 0: exit %d, %q", code, out)
	}

	// --select: only those properties, named case-insensitively, and sent as $select.
	var events []map[string]any
	out, errOut, code := runCLI(t, o, append(base, "--select", "operationName", "EVENTTIMESTAMP", "--max-events", "2")...)
	if err := json.Unmarshal([]byte(out), &events); code != 0 || err != nil || len(events) != 2 {
		t.Fatalf("--select: exit %d, %v, %s %s", code, err, out, errOut)
	}
	if len(events[0]) != 2 || events[0]["eventTimestamp"] != "2026-01-02T10:00:00Z" ||
		events[0]["operationName"].(map[string]any)["value"] != "Microsoft.DBforPostgreSQL/flexibleServers/keyRevoked/action" {
		t.Errorf("--select: %v", events[0])
	}
	if r := x.requests(); r[len(r)-1]["select"] != "operationName,eventTimestamp" {
		t.Errorf("$select = %q", r[len(r)-1]["select"])
	}

	// -o table: az has no table transformer here, so the columns are the events' scalar properties.
	out, _, code = runCLI(t, o, append(base, "--max-events", "1", "-o", "table")...)
	header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	want := []string{"Caller", "CorrelationId", "Description", "EventDataId", "EventTimestamp", "Level", "ResourceGroupName",
		"ResourceId", "SubmissionTimestamp", "SubscriptionId", "TenantId"}
	if code != 0 || strings.Join(header, " ") != strings.Join(want, " ") || !strings.Contains(out, "keyRevoked on srv1") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
}

func TestActivityLogListUsageErrors(t *testing.T) {
	f, _ := newFakeActivityLog(t)
	o := withProfile(t, f)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--offset", "1y"}, exitUsage, "ERROR: argument --offset: invalid period_type value: '1y'\n"},
		{[]string{"--offset", "soon"}, exitUsage, "ERROR: argument --offset: invalid period_type value: 'soon'\n"},
		{[]string{"--max-events", "many"}, exitUsage, "ERROR: argument --max-events: invalid int value: 'many'\n"},
		{[]string{"--select", "bogus"}, exitUsage, "ERROR: argument --select: invalid choice: 'bogus' (choose from 'authorization', 'caller',"},
		{[]string{"--start-time", "yesterday"}, exitFailure,
			"ERROR: Unable to parse: 'yesterday'. Expected format: Start time of the query. Format: date (yyyy-mm-dd) time (hh:mm:ss.xxxxx) timezone (+/-hh:mm)\n"},
		{[]string{"--end-time", "2026-13-01"}, exitFailure, "ERROR: Unable to parse: '2026-13-01'. Expected format: End time of the query. Defaults to the current time."},
	} {
		_, errOut, code := runCLI(t, o, append([]string{"monitor", "activity-log", "list"}, tc.args...)...)
		if code != tc.code || !strings.HasPrefix(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

func TestParsePeriod(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"6h": 6 * time.Hour, "1d2h": 26 * time.Hour, "30m": 30 * time.Minute, "1h30m": 90 * time.Minute, "45s": 45 * time.Second,
		"1d2h3m4s": 26*time.Hour + 3*time.Minute + 4*time.Second, "PT1H": time.Hour, "P1DT2H30M": 26*time.Hour + 30*time.Minute,
		"7D": 7 * 24 * time.Hour, "": 0,
	} {
		if got, err := parsePeriod("--offset", in); err != nil || got != want {
			t.Errorf("parsePeriod(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"1y", "1w", "h", "6 h", "-1h", "1h1d"} {
		if _, err := parsePeriod("--offset", in); err == nil {
			t.Errorf("parsePeriod(%q) accepted", in)
		}
	}
}

func TestParseActivityTime(t *testing.T) {
	local := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04:05", s, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		words []string
		want  time.Time
	}{
		{[]string{"2026-01-02T03:04:05Z"}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{[]string{"2026-01-02T03:04:05.25+02:00"}, time.Date(2026, 1, 2, 1, 4, 5, 250e6, time.UTC)},
		{[]string{"2026-01-02T03:04:05-0130"}, time.Date(2026, 1, 2, 4, 34, 5, 0, time.UTC)},
		{[]string{"2026-01-02", "03:04:05", "+00:00"}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{[]string{"2026-01-02", "03:04:05"}, local("2026-01-02 03:04:05")},
		{[]string{"2026-01-02T03:04"}, local("2026-01-02 03:04:00")},
		{[]string{"2026-01-02"}, local("2026-01-02 00:00:00")},
	} {
		got, err := parseActivityTime(tc.words, startTimeHelp)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseActivityTime(%q) = %v, %v; want %v", tc.words, got, err, tc.want)
		}
	}
}

func TestActivityFilterTimeRange(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		q        activityLogQuery
		from, to string
	}{
		{activityLogQuery{offset: "6h"}, "2026-03-04T06:00:00Z", "2026-03-04T12:00:00Z"},
		{activityLogQuery{offset: "1d", startTime: []string{"2026-01-01T00:00:00Z"}}, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},
		{activityLogQuery{offset: "2h", endTime: []string{"2026-01-01T00:00:00Z"}}, "2025-12-31T22:00:00Z", "2026-01-01T00:00:00Z"},
		{activityLogQuery{offset: "2h", startTime: []string{"2026-01-01T00:00:00+01:00"}, endTime: []string{"2026-01-05T00:00:00Z"}},
			"2025-12-31T23:00:00Z", "2026-01-05T00:00:00Z"},
	} {
		f, err := tc.q.filter(now)
		if err != nil || f.from.Format(time.RFC3339) != tc.from || f.to.Format(time.RFC3339) != tc.to {
			t.Errorf("%+v: %v..%v, %v; want %s..%s", tc.q, f.from, f.to, err, tc.from, tc.to)
		}
	}
}
