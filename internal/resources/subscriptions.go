// Package resources is the Microsoft.Resources provider: the tenant's subscriptions, the
// location catalog of each subscription, and resource groups — including Azure's cascading
// delete, in which deleting a group deletes every resource in it.
package resources

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/store"
)

// API versions accepted for Microsoft.Resources, as Azure lists them for these types.
var (
	SubscriptionAPIVersions = []string{"2016-06-01", "2019-06-01", "2019-11-01", "2020-01-01", "2021-01-01", "2022-01-01", "2022-09-01", "2022-12-01"}
	GroupAPIVersions        = []string{"2019-05-01", "2019-10-01", "2020-06-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01", "2023-07-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-03-01", "2025-04-01"}
)

// Subscription is a subscription record.
type Subscription struct {
	ID          string `json:"subscriptionId"`
	DisplayName string `json:"displayName"`
	TenantID    string `json:"tenantId"`
	State       string `json:"state"`
}

func subscriptionKey(id string) string { return "subscription/" + strings.ToLower(id) }

// PutSubscription stores a subscription (bootstrap creates the default one).
func PutSubscription(tx store.Tx, s *Subscription) error {
	return store.PutJSON(tx, subscriptionKey(s.ID), s)
}

func (s *Subscription) view() map[string]any {
	return map[string]any{
		"id":             "/subscriptions/" + s.ID,
		"subscriptionId": s.ID,
		"tenantId":       s.TenantID,
		"displayName":    s.DisplayName,
		"state":          s.State,
		"subscriptionPolicies": map[string]any{
			"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off",
		},
		"authorizationSource": "RoleBased",
		"managedByTenants":    []any{},
	}
}

// Subscription reads a subscription, answering ARM's 404 when it does not exist.
func (s *Service) Subscription(ctx context.Context, id string) (*Subscription, error) {
	var sub Subscription
	err := s.st.View(ctx, func(tx store.Tx) error { return store.GetJSON(tx, subscriptionKey(id), &sub) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, arm.Errorf(http.StatusNotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", id)
	}
	return &sub, err
}

func (s *Service) listSubscriptions(w http.ResponseWriter, r *arm.Request) {
	var subs []Subscription
	if err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		subs, err = store.ListJSON[Subscription](tx, "subscription/")
		return err
	}); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	views := make([]map[string]any, 0, len(subs))
	for i := range subs {
		views = append(views, subs[i].view())
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}

func (s *Service) getSubscription(w http.ResponseWriter, r *arm.Request) {
	sub, err := s.Subscription(r.Context(), r.Param("subscriptionId"))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, sub.view())
}

func (s *Service) listLocations(w http.ResponseWriter, r *arm.Request) {
	sub, err := s.Subscription(r.Context(), r.Param("subscriptionId"))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var out []map[string]any
	for _, reg := range regions.All() {
		md := map[string]any{"regionType": "Physical", "regionCategory": "Recommended", "geography": reg.Geography,
			"geographyGroup": reg.Geography, "pairedRegion": []any{}}
		if reg.Paired != "" {
			md["pairedRegion"] = []map[string]string{{"name": reg.Paired, "id": "/subscriptions/" + sub.ID + "/locations/" + reg.Paired}}
		}
		out = append(out, map[string]any{
			"id":                  "/subscriptions/" + sub.ID + "/locations/" + reg.Name,
			"name":                reg.Name,
			"displayName":         reg.DisplayName,
			"regionalDisplayName": "(" + reg.Geography + ") " + reg.DisplayName,
			"type":                "Region",
			"metadata":            md,
		})
	}
	// Azure answers the whole catalog in one page.
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}
