package activitylog

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/store"
)

func TestAppendListFilter(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := New(st, slog.New(slog.DiscardHandler))
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	srvA := "/subscriptions/s1/resourceGroups/RG1/providers/Microsoft.DBforPostgreSQL/flexibleServers/a"
	srvB := "/subscriptions/s1/resourceGroups/rg2/providers/Microsoft.DBforPostgreSQL/flexibleServers/b"
	for i, id := range []string{srvA, srvB, srvA} {
		if err := l.Append(ctx, Event{ResourceID: id, Operation: "op", Level: LevelWarning, Timestamp: base.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Append(ctx, Event{ResourceID: "/subscriptions/s2/resourceGroups/x/providers/P/t/n", Operation: "other"})

	tests := []struct {
		filter string
		want   int
	}{
		{"", 3},
		{"resourceGroupName eq 'rg1'", 2},
		{"resourceUri eq '" + srvB + "'", 1},
		{"eventTimestamp ge '2026-11-26T10:00:30Z'", 2},
		{"eventTimestamp ge 2026-11-26T10:00:30Z and resourceGroupName eq 'RG1'", 1},
		{"eventTimestamp ge '2026-11-26T10:00:30Z' and eventTimestamp le '2026-11-26T10:01:30Z' and eventChannels eq 'Admin, Operation'", 1},
		// az monitor activity-log list sends no zone, and microseconds: UTC.
		{"eventTimestamp ge '2026-11-26T10:00:30.996816' and eventTimestamp le '2026-11-26T10:01:30.5'", 1},
		{"eventTimestamp ge 2026-11-26T10:00:30", 2},
		{"eventTimestamp ge '2026-11-26T12:00:30+02:00'", 2},
	}
	for _, tc := range tests {
		f, err := parseFilter(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.List(ctx, "S1", f)
		if err != nil || len(got) != tc.want {
			t.Errorf("filter %q: %d events (%v), want %d", tc.filter, len(got), err, tc.want)
		}
	}
	all, _ := l.List(ctx, "s1", Filter{})
	if !all[0].Timestamp.After(all[1].Timestamp) || all[0].ResourceGroup != "RG1" || all[0].Provider != "Microsoft.DBforPostgreSQL" {
		t.Errorf("newest first with derived fields: %+v", all[0])
	}
	for _, bad := range []string{"yesterday", "2026-11-26", "2026-11-26 10:00:30"} {
		if _, err := parseFilter("eventTimestamp ge '" + bad + "'"); err == nil {
			t.Errorf("a malformed time %q must be refused", bad)
		}
	}
}
