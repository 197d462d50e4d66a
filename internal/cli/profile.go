package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/pgflex/pgflex/internal/profile"
)

// Profile is the file `pgflex serve` writes into its data directory (profile.json, mode 0600).
// The type lives in internal/profile, shared with the daemon that writes it.
type Profile = profile.Profile

// ProfileUser is who the profile signs in as, as `az account show` reports it.
type ProfileUser = profile.User

// LoadProfile reads and validates a profile file. Its errors are sentences for the user.
func LoadProfile(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("The profile file '%s' does not exist.", path)
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("The profile file '%s' cannot be read: %w", path, err)
	}
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("The profile file '%s' is not valid JSON: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("The profile file '%s' is invalid: %w", path, err)
	}
	return &p, nil
}
