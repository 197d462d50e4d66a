package resources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/store"
)

// Group provisioning states.
const (
	StateSucceeded = "Succeeded"
	StateDeleting  = "Deleting"
)

// Group is a resource group record.
type Group struct {
	SubscriptionID    string            `json:"subscriptionId"`
	Name              string            `json:"name"` // casing as created
	Location          string            `json:"location"`
	Tags              map[string]string `json:"tags,omitempty"`
	ManagedBy         string            `json:"managedBy,omitempty"`
	ProvisioningState string            `json:"provisioningState"`
	Created           time.Time         `json:"created"`
	// DeleteOperation is the running delete, which a repeated DELETE answers with.
	DeleteOperation string `json:"deleteOperation,omitempty"`
}

// ID is the group's resource id.
func (g *Group) ID() arm.ResourceID {
	return arm.ResourceID{SubscriptionID: g.SubscriptionID, ResourceGroup: g.Name}
}

func groupKey(sub, name string) string {
	return "rg/" + strings.ToLower(sub) + "/" + strings.ToLower(name)
}

func (g *Group) view() map[string]any {
	var managedBy any
	if g.ManagedBy != "" {
		managedBy = g.ManagedBy
	}
	tags := g.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return map[string]any{
		"id":         g.ID().String(),
		"name":       g.Name,
		"type":       "Microsoft.Resources/resourceGroups",
		"location":   g.Location,
		"tags":       tags,
		"managedBy":  managedBy,
		"properties": map[string]any{"provisioningState": g.ProvisioningState},
	}
}

// Member is a provider whose resources live in resource groups; a group delete asks each
// member, in Order (lower first), to delete what it has in the group.
type Member struct {
	Name  string
	Order int
	// DeleteAllInGroup deletes every resource of the provider in the group, waiting until done.
	DeleteAllInGroup func(ctx context.Context, subscriptionID, group string) error
	// List, if set, reports the provider's live resources for the generic resource list.
	List ListFunc
}

// Service is the Microsoft.Resources provider.
type Service struct {
	st      store.Store
	ops     *arm.Operations
	log     *slog.Logger
	mu      sync.Mutex
	members []Member
	// deleting serialises group DELETEs, so that a repeated one finds the first's operation.
	deleting sync.Mutex
}

// New makes the provider.
func New(st store.Store, ops *arm.Operations, log *slog.Logger) *Service {
	s := &Service{st: st, ops: ops, log: log}
	ops.RegisterResumer(kindDeleteGroup, s.runDelete)
	return s
}

// AddMember registers a provider for cascading group deletes.
func (s *Service) AddMember(m Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = append(s.members, m)
	sort.SliceStable(s.members, func(i, j int) bool { return s.members[i].Order < s.members[j].Order })
}

// RegisterRoutes adds the Microsoft.Resources routes.
func (s *Service) RegisterRoutes(rt *arm.Router) {
	sub := "Microsoft.Resources/subscriptions"
	rg := "Microsoft.Resources/resourceGroups"
	rt.Handle(arm.Route{Method: http.MethodGet, Pattern: "/subscriptions", ResourceType: sub, APIVersions: SubscriptionAPIVersions, Handler: s.listSubscriptions})
	rt.Handle(arm.Route{Method: http.MethodGet, Pattern: "/subscriptions/{subscriptionId}", ResourceType: sub, APIVersions: SubscriptionAPIVersions, Handler: s.getSubscription})
	rt.Handle(arm.Route{Method: http.MethodGet, Pattern: "/subscriptions/{subscriptionId}/locations", ResourceType: "Microsoft.Resources/locations", APIVersions: SubscriptionAPIVersions, Handler: s.listLocations})
	rt.Handle(arm.Route{Method: http.MethodGet, Pattern: "/subscriptions/{subscriptionId}/resourcegroups", ResourceType: rg, APIVersions: GroupAPIVersions, Handler: s.listGroups})
	s.registerGenericRoutes(rt)
	base := "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}"
	rt.Handle(arm.Route{Method: http.MethodPut, Pattern: base, ResourceType: rg, APIVersions: GroupAPIVersions, Handler: s.putGroup})
	rt.Handle(arm.Route{Method: http.MethodGet, Pattern: base, ResourceType: rg, APIVersions: GroupAPIVersions, Handler: s.getGroup})
	rt.Handle(arm.Route{Method: http.MethodHead, Pattern: base, ResourceType: rg, APIVersions: GroupAPIVersions, Handler: s.headGroup})
	rt.Handle(arm.Route{Method: http.MethodPatch, Pattern: base, ResourceType: rg, APIVersions: GroupAPIVersions, Handler: s.patchGroup})
	rt.Handle(arm.Route{Method: http.MethodDelete, Pattern: base, ResourceType: rg, APIVersions: GroupAPIVersions, Handler: s.deleteGroup})
}

// ValidateGroupName applies Azure's resource group naming rules.
func ValidateGroupName(name string) error {
	bad := func() error {
		return arm.Errorf(http.StatusBadRequest, "InvalidResourceGroup",
			"The provided resource group name '%s' is invalid. Resource group names can be 1 to 90 characters long, may contain only letters, digits, underscores, parentheses, hyphens and periods, and cannot end in a period.", name)
	}
	if n := len([]rune(name)); n < 1 || n > 90 || strings.HasSuffix(name, ".") {
		return bad()
	}
	for _, c := range name {
		if !(unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("_-.()", c)) {
			return bad()
		}
	}
	return nil
}

// GroupNotFound is ARM's answer for a group that does not exist.
func GroupNotFound(name string) *arm.Error {
	return arm.Errorf(http.StatusNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", name)
}

// Group reads a group; ARM's 404 if it (or its subscription) does not exist.
func (s *Service) Group(ctx context.Context, sub, name string) (*Group, error) {
	if _, err := s.Subscription(ctx, sub); err != nil {
		return nil, err
	}
	var g Group
	err := s.st.View(ctx, func(tx store.Tx) error { return store.GetJSON(tx, groupKey(sub, name), &g) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, GroupNotFound(name)
	}
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// CheckGroupInTx is what a provider calls inside its create transaction: the group must exist
// and not be being deleted, so that no resource is created into a group a delete is emptying.
func CheckGroupInTx(tx store.Tx, sub, name string) (*Group, error) {
	var g Group
	err := store.GetJSON(tx, groupKey(sub, name), &g)
	if errors.Is(err, store.ErrNotFound) {
		return nil, GroupNotFound(name)
	}
	if err != nil {
		return nil, err
	}
	if g.ProvisioningState == StateDeleting {
		return nil, arm.Conflict("ResourceGroupBeingDeleted",
			"The resource group '%s' is in deprovisioning state and cannot perform this operation.", g.Name)
	}
	return &g, nil
}

type groupBody struct {
	Location  *string           `json:"location"`
	Tags      map[string]string `json:"tags"`
	ManagedBy string            `json:"managedBy"`
}

// ValidateTags applies Azure's tag limits.
func ValidateTags(tags map[string]string) error {
	if len(tags) > 50 {
		return arm.BadRequest("InvalidTag", "A resource can have at most 50 tags; %d were given.", len(tags))
	}
	for k, v := range tags {
		if k == "" || len(k) > 512 || strings.ContainsAny(k, "<>%&\\?/") {
			return arm.BadRequest("InvalidTagNameCharacters",
				"The tag name '%s' is invalid: names are 1 to 512 characters and cannot contain '<', '>', '%%', '&', '\\', '?' or '/'.", k)
		}
		if len(v) > 256 {
			return arm.BadRequest("InvalidTag", "The value of tag '%s' is longer than 256 characters.", k)
		}
	}
	return nil
}

func (s *Service) putGroup(w http.ResponseWriter, r *arm.Request) {
	sub, name := r.Param("subscriptionId"), r.Param("resourceGroupName")
	if _, err := s.Subscription(r.Context(), sub); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if err := ValidateGroupName(name); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var body groupBody
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Location == nil || *body.Location == "" {
		arm.WriteError(w, r, arm.BadRequest("LocationRequired", "The location property is required for this definition."))
		return
	}
	reg, ok := regions.Lookup(*body.Location)
	if !ok {
		arm.WriteError(w, r, arm.BadRequest("LocationNotAvailableForResourceGroup",
			"The provided location '%s' is not available for resource group. List of available regions is '%s'.",
			*body.Location, strings.Join(regions.Names(), ",")))
		return
	}
	if err := ValidateTags(body.Tags); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	status := http.StatusOK
	var g Group
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		err := store.GetJSON(tx, groupKey(sub, name), &g)
		switch {
		case errors.Is(err, store.ErrNotFound):
			status = http.StatusCreated
			g = Group{SubscriptionID: sub, Name: name, Location: reg.Name, Created: time.Now().UTC()}
		case err != nil:
			return err
		case g.ProvisioningState == StateDeleting:
			return arm.Conflict("ResourceGroupBeingDeleted",
				"The resource group '%s' is in deprovisioning state and cannot perform this operation.", g.Name)
		case g.Location != reg.Name:
			return arm.Conflict("InvalidResourceGroupLocation",
				"Invalid resource group location '%s'. The Resource group already exists in location '%s'.", reg.Name, g.Location)
		}
		g.Tags = body.Tags
		g.ManagedBy = body.ManagedBy
		g.ProvisioningState = StateSucceeded
		return store.PutJSON(tx, groupKey(sub, name), &g)
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("resource group written", "group", g.Name, "created", status == http.StatusCreated)
	arm.WriteJSON(w, status, g.view())
}

func (s *Service) patchGroup(w http.ResponseWriter, r *arm.Request) {
	sub, name := r.Param("subscriptionId"), r.Param("resourceGroupName")
	var body groupBody
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if err := ValidateTags(body.Tags); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var g *Group
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		if g, err = CheckGroupInTx(tx, sub, name); err != nil {
			return err
		}
		if body.Tags != nil {
			g.Tags = body.Tags
		}
		return store.PutJSON(tx, groupKey(sub, name), g)
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, g.view())
}

func (s *Service) getGroup(w http.ResponseWriter, r *arm.Request) {
	g, err := s.Group(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, g.view())
}

func (s *Service) headGroup(w http.ResponseWriter, r *arm.Request) {
	if _, err := s.Group(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName")); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) listGroups(w http.ResponseWriter, r *arm.Request) {
	sub := r.Param("subscriptionId")
	if _, err := s.Subscription(r.Context(), sub); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var groups []Group
	if err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		groups, err = store.ListJSON[Group](tx, "rg/"+strings.ToLower(sub)+"/")
		return err
	}); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	views := make([]map[string]any, 0, len(groups))
	for i := range groups {
		views = append(views, groups[i].view())
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}

const kindDeleteGroup = "resources/deleteGroup"

// deleteGroup marks the group Deleting (so nothing new lands in it), then, as a long-running
// operation, deletes every member provider's resources in it and finally the group: Azure's
// behaviour, since a resource group is a lifecycle container.
func (s *Service) deleteGroup(w http.ResponseWriter, r *arm.Request) {
	sub, name := r.Param("subscriptionId"), r.Param("resourceGroupName")
	if _, err := s.Subscription(r.Context(), sub); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	s.deleting.Lock()
	defer s.deleting.Unlock()
	var g Group
	err := s.st.View(r.Context(), func(tx store.Tx) error { return store.GetJSON(tx, groupKey(sub, name), &g) })
	if err == nil && g.ProvisioningState == StateDeleting && g.DeleteOperation != "" {
		// A delete already runs: answer with it rather than start a second one.
		if running, err := s.ops.Get(r.Context(), g.DeleteOperation); err == nil && !running.Done() {
			arm.Accepted(w, r, running, http.StatusAccepted, nil)
			return
		}
	}
	op := &arm.Operation{Name: arm.NewGUID(), Kind: kindDeleteGroup, SubscriptionID: sub, Namespace: "Microsoft.Resources"}
	err = s.st.Update(r.Context(), func(tx store.Tx) error {
		if err := store.GetJSON(tx, groupKey(sub, name), &g); err != nil {
			return err
		}
		g.ProvisioningState, g.DeleteOperation = StateDeleting, op.Name
		return store.PutJSON(tx, groupKey(sub, name), &g)
	})
	if errors.Is(err, store.ErrNotFound) {
		arm.WriteError(w, r, GroupNotFound(name))
		return
	}
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	op.ResourceID, op.Location = g.ID().String(), g.Location
	if err := s.ops.Start(r.Context(), op, s.runDelete); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("resource group delete started", "group", g.Name, "operation", op.Name)
	arm.Accepted(w, r, op, http.StatusAccepted, nil)
}

func (s *Service) runDelete(ctx context.Context, op *arm.Operation) error {
	id, err := arm.ParseResourceID(op.ResourceID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	members := append([]Member(nil), s.members...)
	s.mu.Unlock()
	for _, m := range members {
		if err := m.DeleteAllInGroup(ctx, id.SubscriptionID, id.ResourceGroup); err != nil {
			// The group stays Deleting, so that a retried delete finishes the work.
			return fmt.Errorf("delete %s resources of group %s: %w", m.Name, id.ResourceGroup, err)
		}
	}
	err = s.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(groupKey(id.SubscriptionID, id.ResourceGroup)) })
	if err == nil {
		s.log.Info("resource group deleted", "group", id.ResourceGroup)
	}
	return err
}
