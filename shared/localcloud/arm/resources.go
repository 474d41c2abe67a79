package arm

import (
	"net/http"
	"strings"
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
			limit(typ), strings.Join(resourceTypes, ", "))
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
		limit(strings.Join(t.rest, "/")), t.typ)
}
