package arm

import (
	"net/http"
	"strings"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

// The resource types emulated, as ARM spells them.
const (
	typeVaults      = "Microsoft.KeyVault/vaults"
	typeRegistries  = "Microsoft.ContainerRegistry/registries"
	typeServerFarms = "Microsoft.Web/serverfarms"
	typeSites       = "Microsoft.Web/sites"
)

var resourceTypes = []string{typeVaults, typeRegistries, typeServerFarms, typeSites}

// canonicalType spells a provider/type pair from a path the way ARM answers with it.
func canonicalType(t string) (string, bool) {
	for _, known := range resourceTypes {
		if strings.EqualFold(t, known) {
			return known, true
		}
	}
	return "", false
}

// deleteOrder sorts a group's resources for deletion: what depends on others goes first.
func deleteOrder(typ string) int {
	switch typ {
	case typeSites:
		return 0
	case typeServerFarms:
		return 1
	default:
		return 2
	}
}

// target is the resource a request names: its group (which exists) and, if it exists, the resource.
type target struct {
	g    *group
	r    *resource // nil: no such resource in the group
	typ  string
	name string
	rest []string // segments after the name: a child resource or an action
}

// resourceRequest dispatches .../resourceGroups/{rg}/providers/{namespace}/{type}/{name}/...
func (s *Service) resourceRequest(c *call, groupName, typ, name string, rest []string) *apiError {
	canonical, ok := canonicalType(typ)
	if !ok {
		return badRequest("InvalidResourceType", "The resource type '%s' is not emulated by the local cloud, which serves %s.",
			reqlog.Limit(typ), strings.Join(resourceTypes, ", "))
	}
	t := target{typ: canonical, name: name, rest: rest}
	switch canonical {
	case typeVaults:
		return s.vaultRequest(c, groupName, t)
	default:
		return s.appServiceRequest(c, groupName, t)
	}
}

// lookup finds the group and the resource for a read; callers hold s.mu.
func (s *Service) lookup(groupName string, t *target) *apiError {
	g, ok := s.st.Groups[strings.ToLower(groupName)]
	if !ok {
		return groupNotFound(groupName)
	}
	t.g = g
	t.r = g.Resources[resourceKey(t.typ, t.name)]
	return nil
}

// requireResource is lookup for an operation on an existing resource.
func (s *Service) requireResource(groupName string, t *target) *apiError {
	if err := s.lookup(groupName, t); err != nil {
		return err
	}
	if t.r == nil {
		return resourceNotFound(t.typ, t.name, t.g.Name)
	}
	return nil
}

// resourceCRUD answers GET, PUT and DELETE on a resource itself: PUT goes to put, DELETE to
// deleteResourceRequest, and GET, under the read lock, to show once the resource is found.
func (s *Service) resourceCRUD(c *call, groupName string, t target, put func(*call, string, target) *apiError,
	show func(target) (any, *apiError)) *apiError {
	if err := only(c, http.MethodGet, http.MethodPut, http.MethodDelete); err != nil {
		return err
	}
	switch c.r.Method {
	case http.MethodPut:
		return put(c, groupName, t)
	case http.MethodDelete:
		return s.deleteResourceRequest(c, groupName, t)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.requireResource(groupName, &t); err != nil {
		return err
	}
	out, err := show(t)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

// deleteResourceRequest answers DELETE on a vault, registry, plan or site: the resource goes in
// its service and from its group, with the role assignments on it or under it.
func (s *Service) deleteResourceRequest(c *call, groupName string, t target) *apiError {
	existed := false
	err := s.mutate(func() error {
		if err := s.lookup(groupName, &t); err != nil {
			return err
		}
		if t.r == nil {
			return nil
		}
		existed = true
		if err := s.deleteResourceLocked(t.g, t.r); err != nil {
			return err
		}
		s.pruneAssignmentsLocked()
		return nil
	})
	if err != nil {
		return asAPIError(err)
	}
	deleted(c, existed)
	return nil
}

// deleted answers a DELETE: 200 when something was deleted, 204 when there was nothing to
// delete, as ARM does.
func deleted(c *call, existed bool) {
	if existed {
		c.w.WriteHeader(http.StatusOK)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

func noSuchOperation(c *call, t target) *apiError {
	return notFound("InvalidRequestUri", "There is no operation '%s' on %s; the local cloud does not emulate it.",
		reqlog.Limit(strings.Join(t.rest, "/")), t.typ)
}
