package cli

import (
	"os"
	"path/filepath"
	"testing"
)

func TestConfigSaveLoadPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cfg")
	c, err := LoadConfig(dir)
	if err != nil || c.Profile != "" || len(c.Defaults) != 0 {
		t.Fatalf("missing config: %+v, %v", c, err)
	}
	c.Profile = "/p.json"
	c.SetDefault("group", "rg")
	c.SetDefault("location", "eastus")
	c.SetDefault("location", "") // az: `--defaults location=` clears it
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "config.json"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %o, want %o", path, fi.Mode().Perm(), want)
		}
	}
	got, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Profile != "/p.json" || len(got.Defaults) != 1 || got.Defaults["group"] != "rg" {
		t.Errorf("loaded %+v", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("config dir holds %d files, want only config.json", len(entries))
	}
}

func TestConfigDir(t *testing.T) {
	env := map[string]string{"HOME": "/home/u"}
	getenv := func(k string) string { return env[k] }
	if d, _ := ConfigDir(getenv); d != "/home/u/.pgflex" {
		t.Errorf("default dir %q", d)
	}
	env["PGFLEX_CONFIG_DIR"] = "/etc/x"
	if d, _ := ConfigDir(getenv); d != "/etc/x" {
		t.Errorf("override dir %q", d)
	}
}

func TestConfigureDefaults(t *testing.T) {
	dir := t.TempDir()
	o := runOpts{configDir: dir}
	if out, errOut, code := runCLI(t, o, "configure", "--defaults", "group=rg1", "location=eastus"); code != 0 || out != "" || errOut != "" {
		t.Fatalf("configure: exit %d %q %q", code, out, errOut)
	}
	out, _, code := runCLI(t, o, "configure", "--list-defaults", "-o", "tsv")
	want := "group\t" + filepath.Join(dir, "config.json") + "\trg1\nlocation\t" + filepath.Join(dir, "config.json") + "\teastus\n"
	if code != 0 || out != want {
		t.Errorf("list-defaults: %q, want %q", out, want)
	}
	runCLI(t, o, "configure", "-d", "group=")
	out, _, _ = runCLI(t, o, "configure", "-l", "--query", "[].name", "-o", "tsv")
	if out != "location\n" {
		t.Errorf("after clearing group: %q", out)
	}
	if _, errOut, code := runCLI(t, o, "configure"); code != exitUsage || errOut == "" {
		t.Errorf("bare configure: exit %d %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, o, "configure", "-d", "novalue"); code != exitUsage || errOut != "ERROR: usage error: --defaults KEY=VALUE [KEY=VALUE ...]\n" {
		t.Errorf("bad default: exit %d %q", code, errOut)
	}
}

func TestConfigInvalidJSON(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, runOpts{configDir: dir}, "group", "list")
	want := "ERROR: The configuration file '" + filepath.Join(dir, "config.json") + "' is not valid JSON: invalid character 'o' looking for beginning of object key string\n"
	if code != exitFailure || errOut != want {
		t.Errorf("exit %d, %q, want %q", code, errOut, want)
	}
}
