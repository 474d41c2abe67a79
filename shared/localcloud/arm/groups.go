package arm

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

// ---- subscriptions

type subscriptionJSON struct {
	ID                   string         `json:"id"`
	AuthorizationSource  string         `json:"authorizationSource"`
	ManagedByTenants     []any          `json:"managedByTenants"`
	SubscriptionID       string         `json:"subscriptionId"`
	TenantID             string         `json:"tenantId"`
	DisplayName          string         `json:"displayName"`
	State                string         `json:"state"`
	SubscriptionPolicies map[string]any `json:"subscriptionPolicies"`
}

// SubscriptionDisplayName is the local subscription's name, as az account show prints it.
const SubscriptionDisplayName = "Local Cloud"

func (s *Service) subscription() subscriptionJSON {
	return subscriptionJSON{
		ID: s.subscriptionID(), AuthorizationSource: "RoleBased", ManagedByTenants: []any{},
		SubscriptionID: s.sub, TenantID: s.tenant, DisplayName: SubscriptionDisplayName, State: "Enabled",
		SubscriptionPolicies: map[string]any{"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
	}
}

func (s *Service) getSubscription(c *call) *apiError {
	if err := only(c, http.MethodGet); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, s.subscription())
	return nil
}

func (s *Service) listSubscriptions(c *call) *apiError {
	if err := only(c, http.MethodGet); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]any{
		"value": []subscriptionJSON{s.subscription()},
		"count": map[string]any{"type": "Total", "value": 1},
	})
	return nil
}

// ---- resource groups

type groupJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties map[string]string `json:"properties"`
}

func (s *Service) groupJSON(g *group) groupJSON {
	return groupJSON{ID: s.groupID(g), Name: g.Name, Type: "Microsoft.Resources/resourceGroups", Location: g.Location,
		Tags: g.Tags, Properties: map[string]string{"provisioningState": "Succeeded"}}
}

func (s *Service) listGroups(c *call) *apiError {
	if err := only(c, http.MethodGet); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []groupJSON{}
	for _, k := range slices.Sorted(maps.Keys(s.st.Groups)) {
		out = append(out, s.groupJSON(s.st.Groups[k]))
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Service) resourceGroup(c *call, name string) *apiError {
	if err := only(c, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete); err != nil {
		return err
	}
	switch c.r.Method {
	case http.MethodPut, http.MethodPatch:
		return s.putGroup(c, name)
	case http.MethodDelete:
		return s.deleteGroup(c, name)
	}
	s.mu.RLock()
	g, ok := s.st.Groups[strings.ToLower(name)]
	var body groupJSON
	if ok {
		body = s.groupJSON(g)
	}
	s.mu.RUnlock()
	switch {
	case c.r.Method == http.MethodHead && ok:
		c.w.WriteHeader(http.StatusNoContent)
	case c.r.Method == http.MethodHead:
		c.w.WriteHeader(http.StatusNotFound)
	case !ok:
		return groupNotFound(name)
	default:
		writeJSON(c.w, http.StatusOK, body)
	}
	return nil
}

type groupBody struct {
	Location *string            `json:"location"`
	Tags     *map[string]string `json:"tags"`
}

// putGroup creates a group (201) or updates its tags (200); PATCH changes only what it names.
func (s *Service) putGroup(c *call, name string) *apiError {
	if err := validGroupName(name); err != nil {
		return err
	}
	var b groupBody
	if err := decodeBody(c.w, c.r, &b, c.r.Method == http.MethodPatch); err != nil {
		return err
	}
	status := http.StatusOK
	var out groupJSON
	err := s.mutate(func() error {
		g, exists := s.st.Groups[strings.ToLower(name)]
		switch {
		case !exists && c.r.Method == http.MethodPatch:
			return groupNotFound(name)
		case !exists && (b.Location == nil || strings.TrimSpace(*b.Location) == ""):
			return badRequest("LocationRequired", "The location property is required for this definition.")
		case exists && b.Location != nil && normalizeLocation(*b.Location) != g.Location:
			return conflict("InvalidResourceGroupLocation", "Invalid resource group location '%s'. The Resource group already exists in location '%s'.",
				reqlog.Limit(*b.Location), g.Location)
		case !exists:
			g = &group{Name: name, Location: normalizeLocation(*b.Location), CreatedAt: s.now().UTC(), Resources: map[string]*resource{}}
			s.st.Groups[strings.ToLower(name)] = g
			status = http.StatusCreated
		}
		if b.Tags != nil {
			g.Tags = *b.Tags
		}
		out = s.groupJSON(g)
		return nil
	})
	if err != nil {
		return asAPIError(err)
	}
	writeJSON(c.w, status, out)
	return nil
}

// deleteGroup deletes a group with everything in it, as ARM does: every resource (sites are
// stopped and their identities' principals deleted), then every role assignment at or below it.
func (s *Service) deleteGroup(c *call, name string) *apiError {
	err := s.mutate(func() error {
		g, ok := s.st.Groups[strings.ToLower(name)]
		if !ok {
			return groupNotFound(name)
		}
		var errs []error
		// Sites go before their plans, as ARM orders a group's deletion by dependency.
		rs := slices.SortedFunc(maps.Values(g.Resources), func(a, b *resource) int { return deleteOrder(a.Type) - deleteOrder(b.Type) })
		for _, r := range rs {
			if err := s.deleteResourceLocked(g, r); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err := s.dir.DeleteRoleAssignmentsUnder(s.groupID(g)); err != nil {
			return err
		}
		delete(s.st.Groups, strings.ToLower(name))
		s.pruneAssignmentsLocked()
		return nil
	})
	if err != nil {
		return asAPIError(err)
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// deleteResourceLocked deletes one resource in its service and from its group; callers hold s.mu.
func (s *Service) deleteResourceLocked(g *group, r *resource) error {
	id := s.resourceID(g, r)
	var err error
	switch r.Type {
	case typeVaults:
		err = s.kv.DeleteVault(r.Name)
		if err == nil || isVaultNotFound(err) {
			err = s.dir.DeleteRoleAssignmentsUnder(id)
		}
	default:
		err = s.deleteAppServiceResource(r)
		if err == nil {
			err = s.dir.DeleteRoleAssignmentsUnder(id)
		}
	}
	if err != nil {
		return err
	}
	delete(g.Resources, resourceKey(r.Type, r.Name))
	return nil
}

// ---- the resources of a group

type genericResourceJSON struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Kind     string            `json:"kind,omitempty"`
	Location string            `json:"location"`
	SKU      *sku              `json:"sku,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
}

func (s *Service) listGroupResources(c *call, name string) *apiError {
	if err := only(c, http.MethodGet); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.st.Groups[strings.ToLower(name)]
	if !ok {
		return groupNotFound(name)
	}
	out := []genericResourceJSON{}
	for _, k := range slices.Sorted(maps.Keys(g.Resources)) {
		r := g.Resources[k]
		out = append(out, genericResourceJSON{ID: s.resourceID(g, r), Name: r.Name, Type: r.Type, Kind: r.Kind, Location: r.Location, SKU: r.SKU, Tags: r.Tags})
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"value": out})
	return nil
}
