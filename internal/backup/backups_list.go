package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Backup is one backup set in a repository, from pgbackrest info.
type Backup struct {
	// Label is pgBackRest's backup label, e.g. 20261126-215756F.
	Label string
	// Type is "full", "diff" or "incr".
	Type string
	// Repo is the repository index holding it.
	Repo int
	// Start and Stop are when the backup began and when it became
	// consistent; a restore can reach any time from Stop on.
	Start, Stop time.Time
	// Size is the database's size; RepoSize what the backup takes in the
	// repository (compressed, encrypted), both in bytes.
	Size, RepoSize int64
	// WALStart and WALStop are the first and last WAL segments the backup
	// needs; LSNStart and LSNStop its log sequence numbers.
	WALStart, WALStop string
	LSNStart, LSNStop string
	// Prior is the backup a diff or incr backup builds on.
	Prior string
	// Error is pgBackRest's flag for a backup that met page errors.
	Error bool
}

// ArchiveRange is the WAL a repository holds for one database history.
type ArchiveRange struct {
	Repo     int
	ID       string // e.g. "15-1": PostgreSQL version and history id
	Min, Max string // oldest and newest WAL segment
}

// RepoStatus is pgBackRest's status of one repository.
type RepoStatus struct {
	Repo int
	// Code is pgBackRest's status: 0 ok, 1 missing stanza path, 2 no valid
	// backups, 3 missing stanza data, 6 backup running, 99 other.
	Code    int
	Message string
	Cipher  string // "aes-256-cbc" or "none"
}

// Info is what pgbackrest info reports for a stanza.
type Info struct {
	Stanza string
	// Backups, oldest first.
	Backups []Backup
	Archive []ArchiveRange
	Repos   []RepoStatus
}

// Status codes of pgbackrest info that are not failures.
const (
	infoOK             = 0
	infoNoValidBackups = 2
	infoBackupRunning  = 6
)

// EarliestRestoreDate is the earliest time a restore from repo can reach:
// when the oldest backup in it became consistent, i.e. its stop time
// (which pgBackRest records in whole seconds, hence rounded up here). The
// backup's start time would promise too much: recovery cannot stop before
// the backup is consistent. ok is false when the repository holds no
// backup.
func (i *Info) EarliestRestoreDate(repo int) (t time.Time, ok bool) {
	for _, b := range i.Backups {
		if b.Repo == repo && !b.Error {
			return b.consistentAt(), true
		}
	}
	return time.Time{}, false
}

// consistentAt is a time by which the backup is surely consistent.
func (b Backup) consistentAt() time.Time { return b.Stop.Add(time.Second) }

// Latest returns the newest backup in repo.
func (i *Info) Latest(repo int) (Backup, bool) {
	for j := len(i.Backups) - 1; j >= 0; j-- {
		if i.Backups[j].Repo == repo {
			return i.Backups[j], true
		}
	}
	return Backup{}, false
}

// Find returns the backup with the given label in repo.
func (i *Info) Find(repo int, label string) (Backup, bool) {
	for _, b := range i.Backups {
		if b.Repo == repo && b.Label == label {
			return b, true
		}
	}
	return Backup{}, false
}

// latestBefore returns the newest backup in repo that is consistent at t.
func (i *Info) latestBefore(repo int, t time.Time) (Backup, bool) {
	for j := len(i.Backups) - 1; j >= 0; j-- {
		b := i.Backups[j]
		if b.Repo == repo && !b.Error && !b.consistentAt().After(t) {
			return b, true
		}
	}
	return Backup{}, false
}

// Info lists the backups and archived WAL of the stanza's repositories
// that are not paused. A repository that cannot be read (a wrong
// passphrase, a missing stanza) is an *Error.
func (s *Stanza) Info(ctx context.Context, pp Passphrases) (*Info, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return info(ctx, s.invocation(pp))
}

func info(ctx context.Context, inv invocation, args ...string) (*Info, error) {
	out, err := inv.run(ctx, "info", append([]string{"--output=json"}, args...)...)
	if err != nil {
		return nil, err
	}
	in, err := parseInfo(out)
	if err != nil {
		return nil, err
	}
	for _, r := range in.Repos {
		switch r.Code {
		case infoOK, infoNoValidBackups, infoBackupRunning:
		default:
			return in, &Error{Command: "info", Code: r.Code, Message: scrub(fmt.Sprintf("repository %d: %s", r.Repo, r.Message), inv.pass)}
		}
	}
	return in, nil
}

// infoJSON is the part of pgbackrest info --output=json that pgflex reads
// (format of pgBackRest 2.3x-2.5x).
type infoJSON struct {
	Name    string `json:"name"`
	Archive []struct {
		Database struct {
			RepoKey int `json:"repo-key"`
		} `json:"database"`
		ID  string `json:"id"`
		Min string `json:"min"`
		Max string `json:"max"`
	} `json:"archive"`
	Backup []struct {
		Archive struct {
			Start string `json:"start"`
			Stop  string `json:"stop"`
		} `json:"archive"`
		Database struct {
			RepoKey int `json:"repo-key"`
		} `json:"database"`
		Error *bool `json:"error"`
		Info  struct {
			Repository struct {
				Size int64 `json:"size"`
			} `json:"repository"`
			Size int64 `json:"size"`
		} `json:"info"`
		Label string `json:"label"`
		LSN   struct {
			Start string `json:"start"`
			Stop  string `json:"stop"`
		} `json:"lsn"`
		Prior     *string `json:"prior"`
		Timestamp struct {
			Start int64 `json:"start"`
			Stop  int64 `json:"stop"`
		} `json:"timestamp"`
		Type string `json:"type"`
	} `json:"backup"`
	Repo []struct {
		Cipher string `json:"cipher"`
		Key    int    `json:"key"`
		Status struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
	} `json:"repo"`
}

// parseInfo reads pgbackrest info --output=json for one stanza.
func parseInfo(out []byte) (*Info, error) {
	// A repository read with a wrong passphrase yields messages quoting
	// decrypted noise, raw control bytes included, which JSON forbids
	// inside strings; blank them (whitespace stays valid between tokens).
	out = bytes.Map(func(r rune) rune {
		if r < 0x20 {
			return ' '
		}
		return r
	}, out)
	var stanzas []infoJSON
	if err := json.Unmarshal(out, &stanzas); err != nil {
		return nil, fmt.Errorf("backup: parse pgbackrest info: %w", err)
	}
	if len(stanzas) != 1 {
		return nil, fmt.Errorf("backup: pgbackrest info reported %d stanzas, want 1", len(stanzas))
	}
	st := stanzas[0]
	in := &Info{Stanza: st.Name}
	for _, a := range st.Archive {
		in.Archive = append(in.Archive, ArchiveRange{Repo: a.Database.RepoKey, ID: a.ID, Min: a.Min, Max: a.Max})
	}
	for _, b := range st.Backup {
		switch b.Type {
		case "full", "diff", "incr":
		default:
			return nil, fmt.Errorf("backup: pgbackrest info: backup %s has unknown type %q", b.Label, b.Type)
		}
		bk := Backup{
			Label: b.Label, Type: b.Type, Repo: b.Database.RepoKey,
			Start: time.Unix(b.Timestamp.Start, 0).UTC(), Stop: time.Unix(b.Timestamp.Stop, 0).UTC(),
			Size: b.Info.Size, RepoSize: b.Info.Repository.Size,
			WALStart: b.Archive.Start, WALStop: b.Archive.Stop, LSNStart: b.LSN.Start, LSNStop: b.LSN.Stop,
		}
		if b.Prior != nil {
			bk.Prior = *b.Prior
		}
		if b.Error != nil {
			bk.Error = *b.Error
		}
		in.Backups = append(in.Backups, bk)
	}
	slices.SortStableFunc(in.Backups, func(a, b Backup) int {
		if c := a.Stop.Compare(b.Stop); c != 0 {
			return c
		}
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return a.Repo - b.Repo
	})
	for _, r := range st.Repo {
		in.Repos = append(in.Repos, RepoStatus{Repo: r.Key, Code: r.Status.Code, Message: r.Status.Message, Cipher: r.Cipher})
	}
	return in, nil
}

// repoArg selects one repository for a pgBackRest command.
func repoArg(n int) string { return "--repo=" + strconv.Itoa(n) }
