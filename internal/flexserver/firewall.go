package flexserver

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// Firewall rules (Microsoft.DBforPostgreSQL/flexibleServers/firewallRules) are kept in the
// server's own record: they are written, deleted and restored with it, and no other write of
// the record can lose them (every write re-reads the record in its transaction, see mutate).
// The PostgreSQL endpoint enforces them (Admit); see firewallCache for how a change reaches it.

// FirewallRule admits clients whose IPv4 address is in [Start, End].
type FirewallRule struct {
	Name  string `json:"name"`
	Start string `json:"startIpAddress"`
	End   string `json:"endIpAddress"`
}

const firewallRuleType = ResourceType + "/firewallRules"

// validateFirewallRuleName: 1 to 128 letters, digits, '-' and '_' (Azure's FirewallRules
// swagger pattern ^[-\w]+$ with its length limit).
func validateFirewallRuleName(name string) error {
	ok := name != "" && len(name) <= 128
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			ok = false
		}
	}
	if !ok {
		return arm.InvalidParameter("firewallRuleName", "The firewall rule name '%s' is not valid: use 1 to 128 letters, digits, hyphens (-) or underscores (_).", name)
	}
	return nil
}

// parseIPv4 reads a firewall rule's address: dotted-quad IPv4 only, as Azure's swagger pattern
// demands (no IPv6, no zones, no leading zeros).
func parseIPv4(target, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, arm.InvalidParameter(target, "The IP address '%s' is not valid: a firewall rule takes IPv4 addresses, such as 203.0.113.7.", s)
	}
	return a, nil
}

// validateFirewallRule checks the addresses of a rule.
func validateFirewallRule(fr FirewallRule) error {
	start, err := parseIPv4("properties.startIpAddress", fr.Start)
	if err != nil {
		return err
	}
	end, err := parseIPv4("properties.endIpAddress", fr.End)
	if err != nil {
		return err
	}
	if start.Compare(end) > 0 {
		return arm.BadRequest("FirewallRuleStartIpAddressGreaterThanEndIpAddress",
			"The start IP address '%s' of the firewall rule '%s' is greater than its end IP address '%s'.", fr.Start, fr.Name, fr.End)
	}
	return nil
}

func firewallRuleView(srv *Server, fr FirewallRule) map[string]any {
	return map[string]any{
		"id":         srv.ID().Child("firewallRules", fr.Name).String(),
		"name":       fr.Name,
		"type":       firewallRuleType,
		"properties": map[string]any{"startIpAddress": fr.Start, "endIpAddress": fr.End},
	}
}

// firewallRuleIndex finds a rule by name (case-insensitive, as ARM names are).
func (s *Server) firewallRuleIndex(name string) int {
	return slices.IndexFunc(s.FirewallRules, func(fr FirewallRule) bool { return strings.EqualFold(fr.Name, name) })
}

func (s *Service) listFirewallRules(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.load(r.Context(), serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	views := []map[string]any{}
	for _, fr := range srv.FirewallRules {
		views = append(views, firewallRuleView(srv, fr))
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}

func (s *Service) getFirewallRule(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.load(r.Context(), serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	name := r.Param("firewallRuleName")
	i := srv.firewallRuleIndex(name)
	if i < 0 {
		arm.WriteError(w, r, arm.ResourceNotFound(srv.ID().Child("firewallRules", name)))
		return
	}
	arm.WriteJSON(w, http.StatusOK, firewallRuleView(srv, srv.FirewallRules[i]))
}

// createFirewallRule is PUT (create or replace). The rule is stored, and in force at the
// endpoint, before the answer; the answer is still Azure's long-running one (202 with
// Azure-AsyncOperation, the one status every SDK accepts: v5's swagger allows 200 and 202 only),
// whose operation has already succeeded, so that clients poll as they do on Azure.
func (s *Service) createFirewallRule(w http.ResponseWriter, r *arm.Request) {
	id := serverIDFrom(r)
	srv, err := s.load(r.Context(), id)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	name := r.Param("firewallRuleName")
	if err := validateFirewallRuleName(name); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var body struct {
		Properties *struct {
			StartIPAddress *string `json:"startIpAddress"`
			EndIPAddress   *string `json:"endIpAddress"`
		} `json:"properties"`
	}
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Properties == nil || body.Properties.StartIPAddress == nil || body.Properties.EndIPAddress == nil {
		arm.WriteError(w, r, arm.InvalidParameter("properties", "A firewall rule needs properties.startIpAddress and properties.endIpAddress."))
		return
	}
	fr := FirewallRule{Name: name, Start: *body.Properties.StartIPAddress, End: *body.Properties.EndIPAddress}
	if err := validateFirewallRule(fr); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if srv.State == StateDropping {
		arm.WriteError(w, r, arm.Conflict("InvalidServerState", "The server '%s' is being deleted; its firewall rules cannot change.", srv.Name))
		return
	}
	srv, err = s.mutate(r.Context(), id, func(cur *Server) error {
		if i := cur.firewallRuleIndex(name); i >= 0 {
			fr.Name = cur.FirewallRules[i].Name // the name keeps the case it was created with
			cur.FirewallRules[i] = fr
			return nil
		}
		if err := checkRuleCount(cur); err != nil {
			return err
		}
		cur.FirewallRules = append(cur.FirewallRules, fr)
		return nil
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	s.log.Info("firewall rule set", "server", srv.Name, "rule", fr.Name, "start", fr.Start, "end", fr.End)
	s.doneOperation(w, r, srv, "flexserver/putFirewallRule", http.StatusAccepted, nil)
}

// maxFirewallRules bounds a server's rules: its record, and the endpoint's check of every new
// connection, stay small.
const maxFirewallRules = 256

// checkRuleCount refuses a rule beyond maxFirewallRules.
func checkRuleCount(srv *Server) error {
	if len(srv.FirewallRules) >= maxFirewallRules {
		return arm.BadRequest("FirewallRuleLimitExceeded",
			"The server '%s' has %d firewall rules, the most a server may have. Delete a rule, or widen one to cover a range, before adding another.", srv.Name, len(srv.FirewallRules))
	}
	return nil
}

func (s *Service) deleteFirewallRule(w http.ResponseWriter, r *arm.Request) {
	id := serverIDFrom(r)
	if _, err := s.load(r.Context(), id); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	name := r.Param("firewallRuleName")
	found := false
	srv, err := s.mutate(r.Context(), id, func(cur *Server) error {
		if i := cur.firewallRuleIndex(name); i >= 0 {
			cur.FirewallRules = slices.Delete(cur.FirewallRules, i, i+1)
			found = true
		}
		return nil
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if !found {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.log.Info("firewall rule deleted", "server", srv.Name, "rule", name)
	s.doneOperation(w, r, srv, "flexserver/deleteFirewallRule", http.StatusAccepted, nil)
}

// doneOperation answers with a long-running operation whose work is already done.
func (s *Service) doneOperation(w http.ResponseWriter, r *arm.Request, srv *Server, kind string, status int, body any) {
	op := s.newOperation(srv, kind)
	if err := s.ops.Start(r.Context(), op, func(context.Context, *arm.Operation) error { return nil }); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.Accepted(w, r, op, status, body)
}

// Admission is what the PostgreSQL endpoint needs to decide whether a client may reach a
// server: its public network access and its firewall rules' ranges.
type Admission struct {
	PublicNetworkDisabled bool
	ranges                [][2]netip.Addr
}

// Admits reports whether client may connect. IPv4 clients seen through an IPv6 socket count by
// their IPv4 address; other IPv6 clients match no rule (Azure's rules are IPv4 only).
func (a Admission) Admits(client netip.Addr) bool {
	if a.PublicNetworkDisabled {
		return false
	}
	client = client.Unmap()
	if !client.Is4() {
		return false
	}
	for _, rg := range a.ranges {
		if rg[0].Compare(client) <= 0 && client.Compare(rg[1]) <= 0 {
			return true
		}
	}
	return false
}

func admissionOf(srv *Server) Admission {
	a := Admission{PublicNetworkDisabled: srv.PublicNetworkAccess == "Disabled"}
	for _, fr := range srv.FirewallRules {
		start, err1 := netip.ParseAddr(fr.Start)
		end, err2 := netip.ParseAddr(fr.End)
		if err1 == nil && err2 == nil {
			a.ranges = append(a.ranges, [2]netip.Addr{start, end})
		}
	}
	return a
}

// firewallCache holds each server's Admission by lower-case name, so that the endpoint decides
// without reading the store. It is filled on a miss and invalidated after every write of a
// server's record (mutate, create, delete), once the write has committed: a miss reads the
// store and fills the entry under mu, so a reader that read the record before a write can only
// fill before that write's invalidation, which then removes it. A change is thus in force for
// every new connection by the time the request that made it is answered; established sessions
// are not touched.
type firewallCache struct {
	mu sync.Mutex
	m  map[string]Admission
}

func (c *firewallCache) invalidate(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, strings.ToLower(name))
}

// Admission is the firewall of the server with the given name. A server that no longer exists
// admits nobody.
func (s *Service) Admission(ctx context.Context, name string) (Admission, error) {
	c := &s.firewall
	c.mu.Lock()
	defer c.mu.Unlock()
	key := strings.ToLower(name)
	if a, ok := c.m[key]; ok {
		return a, nil
	}
	var srv Server
	err := s.st.View(ctx, func(tx store.Tx) error {
		owner, err := tx.Get(nameKey(name))
		if err != nil {
			return err
		}
		id, err := arm.ParseResourceID(string(owner))
		if err != nil {
			return err
		}
		return store.GetJSON(tx, serverKey(id.SubscriptionID, id.ResourceGroup, id.Name()), &srv)
	})
	if errors.Is(err, store.ErrNotFound) {
		return Admission{PublicNetworkDisabled: true}, nil
	}
	if err != nil {
		return Admission{}, err
	}
	a := admissionOf(&srv)
	if c.m == nil {
		c.m = map[string]Admission{}
	}
	c.m[key] = a
	return a, nil
}
