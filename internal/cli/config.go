package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// configFileName is the CLI's configuration file inside the config directory.
const configFileName = "config.json"

// Config is the CLI's persistent configuration ($PGFLEX_CONFIG_DIR/config.json), az's
// ~/.azure/config in JSON: the profile `pgflex login` stored, and the defaults `pgflex configure
// --defaults` set (group, location, ...).
type Config struct {
	Profile  string            `json:"profile,omitempty"`
	Defaults map[string]string `json:"defaults,omitempty"`
}

// ConfigDir is $PGFLEX_CONFIG_DIR, else $HOME/.pgflex.
func ConfigDir(getenv func(string) string) (string, error) {
	if d := getenv("PGFLEX_CONFIG_DIR"); d != "" {
		return d, nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("cannot find the configuration directory: set PGFLEX_CONFIG_DIR: %w", err)
		}
	}
	return filepath.Join(home, ".pgflex"), nil
}

// LoadConfig reads dir/config.json; a missing file is an empty configuration.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, configFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, userError(err, "The configuration file '%s' cannot be read", path)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, &UserError{Msg: fmt.Sprintf("The configuration file '%s' is not valid JSON: %v", path, err), Err: err}
	}
	return &c, nil
}

// Save writes the configuration to dir/config.json, mode 0600 in a 0700 directory (it names
// the profile, which holds a secret), replacing the file atomically.
func (c *Config) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json")
	if err != nil {
		return fmt.Errorf("write configuration: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write configuration: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write configuration: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write configuration: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, configFileName)); err != nil {
		return fmt.Errorf("write configuration: %w", err)
	}
	return nil
}

// SetDefault sets a default; an empty value removes it, as `az configure --defaults group=` does.
func (c *Config) SetDefault(key, value string) {
	if value == "" {
		delete(c.Defaults, key)
		return
	}
	if c.Defaults == nil {
		c.Defaults = map[string]string{}
	}
	c.Defaults[key] = value
}

// defaultFromEnv is the environment override of a configured default, as az reads
// AZURE_DEFAULTS_GROUP before its config file: PGFLEX_DEFAULTS_GROUP.
func defaultFromEnv(getenv func(string) string, key string) string {
	return getenv("PGFLEX_DEFAULTS_" + strings.ToUpper(key))
}
