package testkit

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestScanNames(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/secret-name.txt", "a/b/plain", "c/x"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o700); err != nil {
			t.Fatal(err)
		}
		// The content holds the needle too: only names count here.
		if err := os.WriteFile(filepath.Join(dir, p), []byte("secret-name.txt"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "c", "dir-secret-name.txt-d"), 0o700); err != nil {
		t.Fatal(err)
	}
	res := ScanNames(t, []string{dir}, Needles{}.Add("name", []byte("secret-name.txt")))
	// a, a/secret-name.txt, a/b, a/b/plain, c, c/x, c/dir-...
	if res.Files != 7 {
		t.Errorf("read %d names, want 7", res.Files)
	}
	want := []string{filepath.Join(dir, "a", "secret-name.txt"), filepath.Join(dir, "c", "dir-secret-name.txt-d")}
	if got := res.Paths("name"); !slices.Equal(got, want) {
		t.Errorf("hits %v, want %v", got, want)
	}
	if !failsIn(t, func(tb testing.TB) { ScanNames(tb, []string{filepath.Join(dir, "nope")}, Needles{}) }) {
		t.Error("a missing root did not fail the scan")
	}
}

func TestPlantMissingOutside(t *testing.T) {
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean")
	if err := os.MkdirAll(clean, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(clean, "f"), []byte("nothing to see"), 0o600); err != nil {
		t.Fatal(err)
	}
	needles := Needles{}.AddSecret("key", []byte{1, 2, 3, 250, 251, 252}).Add("marker", []byte("pgflex-marker-x"))
	plant := Plant(t, filepath.Join(dir, "plant"), needles)
	res := ScanFiles(t, []string{clean, plant}, needles, ScanOptions{})
	if res.Files != 1+len(needles) {
		t.Errorf("read %d files, want %d", res.Files, 1+len(needles))
	}
	if m := res.Missing(needles, plant); len(m) != 0 {
		t.Errorf("planted needles not found: %v", m)
	}
	if o := res.Outside(plant); len(o) != 0 {
		t.Errorf("hits outside the plant: %v", o)
	}
	// A needle that is nowhere is missing; a hit elsewhere is outside.
	more := Needles{}.Add("absent", []byte("not planted anywhere"))
	if m := ScanFiles(t, []string{plant}, more, ScanOptions{}).Missing(more, plant); !slices.Equal(m, []string{"absent"}) {
		t.Errorf("Missing = %v, want [absent]", m)
	}
	if err := os.WriteFile(filepath.Join(clean, "leak"), needles["key (hex)"], 0o600); err != nil {
		t.Fatal(err)
	}
	res = ScanFiles(t, []string{clean, plant}, needles, ScanOptions{})
	if o := res.Outside(plant); len(o) != 1 || o[0].Path != filepath.Join(clean, "leak") || o[0].Needle != "key (hex)" {
		t.Errorf("Outside = %v, want the leak", o)
	}
	// plant-other shares a prefix with plant but is not under it.
	if res := (ScanResult{Hits: []Hit{{Path: plant + "-other/f", Needle: "marker"}}}); len(res.Outside(plant)) != 1 {
		t.Error("a sibling with the plant's name as prefix counted as inside it")
	}
}
