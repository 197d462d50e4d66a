package keyvault

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// AuditEvent is one key operation in the audit trail, with the fields of Azure's Key Vault
// AuditEvent log that matter here.
type AuditEvent struct {
	Time           time.Time `json:"time"`
	Vault          string    `json:"vault"`
	KeyName        string    `json:"keyName,omitempty"`
	KeyVersion     string    `json:"keyVersion,omitempty"`
	Operation      string    `json:"operationName"` // KeyWrap, KeyUnwrap, KeyCreate, ...
	CallerObjectID string    `json:"callerObjectId"`
	CallerAppID    string    `json:"callerApplicationId,omitempty"`
	CallerIP       string    `json:"callerIpAddress,omitempty"`
	HTTPStatus     int       `json:"httpStatusCode"`
	ResultType     string    `json:"resultType"` // Success or Failure
	Result         string    `json:"resultSignature"`
	RequestID      string    `json:"requestId,omitempty"`
	// ClientInfo is the client's User-Agent, as Azure records it. pgflex's data plane puts in it
	// the server and the reason for each use of a key (dataenc.WithPurpose).
	ClientInfo string `json:"clientInfo,omitempty"`
}

// ServiceCaller names pgflex itself in the audit trail (automatic rotation, service keys).
const ServiceCaller = "pgflex"

func auditPrefix(vaultID string) string { return "kv/audit/" + vaultID + "/" }

var auditSeq atomic.Uint64

// auditKey orders events by time; the sequence number keeps events of the same nanosecond
// apart and in order.
func auditKey(vaultID string, t time.Time) string {
	return fmt.Sprintf("%s%020d-%010d", auditPrefix(vaultID), t.UnixNano(), auditSeq.Add(1)%1e10)
}

// appendAudit stores one event under the vault's internal id.
func (s *Service) appendAudit(ctx context.Context, vaultID string, e *AuditEvent) error {
	if e.ResultType == "" {
		e.ResultType = "Success"
		if e.HTTPStatus >= 400 {
			e.ResultType = "Failure"
		}
	}
	if e.Result == "" {
		e.Result = http.StatusText(e.HTTPStatus)
	}
	if err := s.st.Update(ctx, func(tx store.Tx) error {
		return store.PutJSON(tx, auditKey(vaultID, e.Time), e)
	}); err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	return nil
}

// recordAudit appends the audit event of a data-plane request. The write does not follow the
// request's cancellation: an operation that ran is recorded.
func (s *Service) recordAudit(_ context.Context, log *slog.Logger, v *Vault, op string, c caller, key, version string, status int, reqID string, r *http.Request) error {
	if op == "" {
		return nil
	}
	err := s.appendAudit(context.Background(), v.ID, &AuditEvent{Time: s.now().UTC(), Vault: v.Name, KeyName: key, KeyVersion: version,
		Operation: op, CallerObjectID: c.ObjectID, CallerAppID: c.AppID, CallerIP: remoteIP(r), HTTPStatus: status, RequestID: reqID,
		ClientInfo: clientInfo(r.UserAgent())})
	if err != nil {
		log.Error("audit write failed", "err", err)
	}
	return err
}

// clientInfo bounds what a client's User-Agent puts in the audit trail.
func clientInfo(ua string) string {
	if len(ua) > 256 {
		ua = ua[:256]
	}
	return strings.ToValidUTF8(ua, "?")
}

// AuditEvents returns a vault's audit trail, oldest first, optionally for one key (by name,
// case-insensitively). vaultID is the vault's internal id.
func (s *Service) AuditEvents(ctx context.Context, vaultID, keyName string) ([]AuditEvent, error) {
	var out []AuditEvent
	err := s.st.View(ctx, func(tx store.Tx) error {
		all, err := store.ListJSON[AuditEvent](tx, auditPrefix(vaultID))
		if err != nil {
			return err
		}
		for _, e := range all {
			if keyName == "" || strings.EqualFold(e.KeyName, keyName) {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}

// listAuditEvents serves the pgflex extension
// GET .../Microsoft.KeyVault/vaults/{vaultName}/auditEvents?api-version=...&keyName=...
func (s *Service) listAuditEvents(w http.ResponseWriter, r *arm.Request) {
	var v *Vault
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		v, err = activeVaultInGroup(tx, r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vaultName"))
		return err
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	s.writeAuditEvents(w, r, v)
}

// listHSMAuditEvents serves the same extension for a Managed HSM:
// GET .../Microsoft.KeyVault/managedHSMs/{name}/auditEvents?api-version=...&keyName=...
func (s *Service) listHSMAuditEvents(w http.ResponseWriter, r *arm.Request) {
	var v *Vault
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		v, err = activeHSMInGroup(tx, r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("name"))
		return err
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	s.writeAuditEvents(w, r, v)
}

func (s *Service) writeAuditEvents(w http.ResponseWriter, r *arm.Request, v *Vault) {
	events, err := s.AuditEvents(r.Context(), v.ID, r.URL.Query().Get("keyName"))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	page, err := arm.Paginate(r, events)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}
