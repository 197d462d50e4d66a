package flexserver

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/postgres"
)

func TestBuildFailure(t *testing.T) {
	op := &arm.Operation{Name: "op-1"}
	created := &Server{Name: "pg1"}
	restored := &Server{Name: "pg2", SourceServerID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/src"}
	log := []string{
		"2026-12-07 18:00:00.000 UTC [7] LOG:  starting PostgreSQL 15",
		`2026-12-07 18:00:00.100 UTC [7] FATAL:  could not bind IPv4 address "127.0.0.1": Address already in use`,
		"2026-12-07 18:00:00.200 UTC [7] LOG:  database system is shut down",
	}
	refusal := arm.BadRequest("InvalidParameterValue", "PostgreSQL refused to create database x: collation \"xx\" does not exist.")
	for _, tc := range []struct {
		name     string
		srv      *Server
		err      error
		evidence []string
		code     string
		message  string // a part of the message
		info     bool
	}{
		{"internal error with the log: what PostgreSQL said", created, errors.New("postgres start: /run/x not ready"), log,
			"InternalServerError", `The server 'pg1' could not be created: PostgreSQL reported "FATAL: could not bind IPv4 address "127.0.0.1": Address already in use". The last lines`, true},
		{"a restore says restored", restored, errors.New("boom"), log, "InternalServerError", "could not be restored", true},
		{"internal error without a log: the generic text, no internals", created, errors.New("gocryptfs mount /srv/x failed"), nil,
			"InternalServerError", "An unexpected error occured while processing the request. Tracking ID: 'op-1'", false},
		{"a log without a failure line", created, errors.New("boom"), []string{"LOG:  starting"},
			"InternalServerError", "An unexpected error occured", true},
		{"an ARM error keeps its code and text, and gains the log", created, fmt.Errorf("create database: %w", refusal), log,
			"InvalidParameterValue", refusal.Message, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := buildFailure(tc.srv, op, tc.err, tc.evidence)
			if got.Code != tc.code || !strings.Contains(got.Message, tc.message) {
				t.Fatalf("buildFailure = (%s) %q, want (%s) containing %q", got.Code, got.Message, tc.code, tc.message)
			}
			if got.Code == "InternalServerError" && (got.Status != http.StatusInternalServerError || strings.Contains(got.Message, "/run/") || strings.Contains(got.Message, "/srv/")) {
				t.Fatalf("internal failure: status %d, message %q", got.Status, got.Message)
			}
			if !tc.info {
				if got.AdditionalInfo != nil {
					t.Fatalf("additionalInfo without a log: %v", got.AdditionalInfo)
				}
				return
			}
			if len(got.AdditionalInfo) != 1 || got.AdditionalInfo[0]["type"] != "PostgreSQLLog" {
				t.Fatalf("additionalInfo: %v", got.AdditionalInfo)
			}
			lines := got.AdditionalInfo[0]["info"].(map[string]any)["lines"].([]string)
			if strings.Join(lines, "\n") != strings.Join(tc.evidence, "\n") {
				t.Fatalf("additionalInfo lines %q, want %q", lines, tc.evidence)
			}
			// The error the caller built is not changed underneath it.
			if refusal.AdditionalInfo != nil {
				t.Fatal("buildFailure modified the ARM error it was given")
			}
		})
	}
	// The log an error carries is what a failed step read, before its files were removed.
	carried := &postgres.LogEvidence{Err: errors.New("recovery failed"), Lines: log[:2]}
	if got := postgres.LogOf(fmt.Errorf("restore: %w", carried)); len(got) != 2 {
		t.Fatalf("LogOf through wrapping: %q", got)
	}
}
