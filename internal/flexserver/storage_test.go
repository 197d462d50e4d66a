package flexserver

import (
	"strings"
	"testing"
)

// usage is a measurement of a size GiB filesystem with avail GiB free (floats for fractions).
func usage(sizeGB int, availGiB float64, sizable bool) StorageUsage {
	total := uint64(sizeGB) * gib
	avail := uint64(availGiB * gib)
	return StorageUsage{Total: total, Used: total - avail, Avail: avail, Sizable: sizable}
}

func TestStorageAutoGrowThreshold(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sizeGB int
		avail  float64
		due    bool
	}{
		// 1 TiB or less: less than min(20 %, 64 GiB) free.
		{"32 GiB, 7 GiB free (78 % used)", 32, 7, false},
		{"32 GiB, 6.5 GiB free (80 % used)", 32, 6.5, false},
		{"32 GiB, 6.3 GiB free (80.3 % used)", 32, 6.3, true},
		{"32 GiB, 3.2 GiB free (90 % used)", 32, 3.2, true},
		{"128 GiB: Azure's example, 25.7 GiB free", 128, 25.7, false},
		{"128 GiB: Azure's example, 25.5 GiB free", 128, 25.5, true},
		{"512 GiB: 20 % is more than 64 GiB, 65 GiB free", 512, 65, false},
		{"512 GiB: 63 GiB free", 512, 63, true},
		{"1024 GiB: still the 20 % rule, capped at 64 GiB", 1024, 63.9, true},
		// More than 1 TiB: less than min(10 %, 64 GiB) free.
		{"2048 GiB: Azure's example, 65 GiB free", 2048, 65, false},
		{"2048 GiB: 63 GiB free", 2048, 63, true},
		{"empty", 32, 32, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := autoGrowDue(usage(tc.sizeGB, tc.avail, true), tc.sizeGB); got != tc.due {
				t.Errorf("autoGrowDue = %v, want %v", got, tc.due)
			}
		})
	}
}

func TestStorageReadOnlyThreshold(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    StorageUsage
		due  bool
	}{
		{"128 GiB at 94 %", usage(128, 7.68, true), false},
		{"128 GiB at 95 %", usage(128, 6.4, true), true},
		{"128 GiB at 99 %", usage(128, 1, true), true},
		{"2048 GiB at 99 %: 20 GiB free, still read-only", usage(2048, 20, true), true},
		{"32 GiB with 5.1 GiB free (84 %)", usage(32, 5.1, true), false},
		{"32 GiB with 4.9 GiB free: under 5 GiB", usage(32, 4.9, true), true},
		{"host filesystem: at the limit", usage(64, 0, false), true},
		{"nothing measured", StorageUsage{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readOnlyDue(tc.u); got != tc.due {
				t.Errorf("readOnlyDue(%.1f%% used, %d free) = %v, want %v", tc.u.Percent(), tc.u.Avail, got, tc.due)
			}
		})
	}
}

func TestStorageNextSize(t *testing.T) {
	for _, tc := range []struct {
		from, to int
		ok       bool
	}{
		{32, 64, true}, {64, 128, true}, {1024, 2048, true}, {4096, 8192, true}, {16384, 32767, true},
		{32767, 0, false},
	} {
		to, ok := nextStorageSize(tc.from)
		if to != tc.to || ok != tc.ok {
			t.Errorf("nextStorageSize(%d) = %d, %v; want %d, %v", tc.from, to, ok, tc.to, tc.ok)
		}
	}
}

func TestStorageUndersized(t *testing.T) {
	for _, tc := range []struct {
		name   string
		u      StorageUsage
		sizeGB int
		want   bool
	}{
		// ext4 takes a few percent for its own metadata: a 32 GiB filesystem reports less.
		{"32 GiB filesystem of a 32 GiB server", StorageUsage{Total: 31 * gib, Sizable: true}, 32, false},
		{"32 GiB filesystem of a 64 GiB server: its grow is not done", StorageUsage{Total: 31 * gib, Sizable: true}, 64, true},
		{"host filesystem: a limit only", StorageUsage{Total: 32 * gib}, 64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := undersized(tc.u, tc.sizeGB); got != tc.want {
				t.Errorf("undersized = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestStorageReadOnlyConfiguration: a read-only server's configuration sets
// default_transaction_read_only on, over the user's own value, and show says why.
func TestStorageReadOnlyConfiguration(t *testing.T) {
	srv := &Server{Name: "s1", StorageSizeGB: 32, AutoGrow: "Disabled", SKU: SKU{Name: "Standard_B1ms"},
		Parameters: map[string]string{"default_transaction_read_only": "off"}}
	if got := srv.effectiveParameters()["default_transaction_read_only"]; got != "off" {
		t.Fatalf("writable server: default_transaction_read_only = %q, want the user's off", got)
	}
	srv.StorageReadOnly = storageReadOnlyReason(srv, usage(32, 1, true))
	if got := srv.effectiveParameters()["default_transaction_read_only"]; got != "on" {
		t.Fatalf("read-only server: default_transaction_read_only = %q, want on", got)
	}
	props := srv.view(shapeOf("2024-08-01"))["properties"].(map[string]any)
	if ro := props["storage"].(map[string]any)["isReadOnly"]; ro != true {
		t.Errorf("properties.storage.isReadOnly = %v, want true", ro)
	}
	reason, _ := props["stateReason"].(string)
	for _, want := range []string{"read-only", "96.9% used", "enable storage autogrow", "SET default_transaction_read_only = off"} {
		if !strings.Contains(reason, want) {
			t.Errorf("stateReason %q does not say %q", reason, want)
		}
	}
}
