package flexserver

import (
	"testing"
	"time"
)

func TestRestoreMode(t *testing.T) {
	for _, tc := range []struct {
		mode *string
		want string
	}{
		{nil, ""},
		{ptr("Default"), ""},
		{ptr("Create"), ""},
		{ptr("pointintimerestore"), modePointInTimeRestore},
		{ptr("GeoRestore"), modeGeoRestore},
		{ptr("REVIVEDROPPED"), modeReviveDropped},
		{ptr("Replica"), ""}, // refused later by validateCreate, with its own message
	} {
		body := &serverBody{Properties: &serverProps{CreateMode: tc.mode}}
		if got := restoreMode(body); got != tc.want {
			t.Errorf("restoreMode(%v) = %q, want %q", deref(tc.mode), got, tc.want)
		}
	}
}

func TestBackupNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"ondemand-1", true},
		{"before.migration_2", true},
		{"a", true},
		{"-leading-dash", false},
		{"has space", false},
		{"slash/inside", false},
		{string(make([]byte, 129)), false},
	} {
		if got := backupNameRE.MatchString(tc.name); got != tc.ok {
			t.Errorf("backup name %q accepted = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestBackupRecordView(t *testing.T) {
	srv := &Server{SubscriptionID: "sub", ResourceGroup: "rg", Name: "pg1"}
	done := time.Date(2026, 11, 26, 10, 0, 5, 0, time.UTC)
	for _, tc := range []struct {
		source, wantType string
	}{
		{backupSourceAutomatic, "Full"},
		{backupSourceCustomer, "Customer On-Demand"},
	} {
		v := (&backupRecord{Name: "b1", Source: tc.source, Completed: done}).view(srv)
		p := v["properties"].(map[string]any)
		if v["name"] != "b1" || v["type"] != "Microsoft.DBforPostgreSQL/flexibleServers/backups" ||
			v["id"] != "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg1/backups/b1" ||
			p["backupType"] != tc.wantType || p["source"] != tc.source || p["completedTime"] != "2026-11-26T10:00:05Z" {
			t.Errorf("view of a %s backup: %v", tc.source, v)
		}
	}
}

func TestDroppedRetention(t *testing.T) {
	d := &droppedServer{Server: Server{BackupRetentionDays: 7}, DeletedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	if got, want := d.retainedUntil(), time.Date(2026, 11, 8, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("retained until %s, want %s", got, want)
	}
}

func ptr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
