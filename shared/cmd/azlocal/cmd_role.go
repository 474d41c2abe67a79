package main

import (
	"cmp"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const authz = "/providers/Microsoft.Authorization"

var roleDefinitionIDPattern = regexp.MustCompile(`(?i)^/subscriptions/.+/providers/Microsoft.Authorization/roleDefinitions/`)

// resolveRoleID turns a role name, GUID or role definition ID into the ID, as az does.
func (a *app) resolveRoleID(c *cloud, role, scope string) (string, error) {
	if roleDefinitionIDPattern.MatchString(role) {
		return role, nil
	}
	if isGUID(role) {
		return c.subscriptionPath() + authz + "/roleDefinitions/" + role, nil
	}
	v, err := c.arm(a.ctx, http.MethodGet, scope+authz+"/roleDefinitions"+filter("roleName eq "+odataQuote(role)), apiAuthorization, nil)
	if err != nil {
		return "", err
	}
	defs := list(v, "value")
	switch len(defs) {
	case 0:
		return "", failure("Role '%s' doesn't exist.", role)
	case 1:
		return get(defs[0], "id"), nil
	}
	ids := make([]string, len(defs))
	for i, d := range defs {
		ids[i] = get(d, "id")
	}
	return "", failure("More than one role matches the given name '%s'. Please pick a value from '%s'", role, strings.Join(ids, ", "))
}

// buildScope is az's scope: --scope, else the resource group's, else the subscription's.
func (a *app) buildScope(c *cloud, group, scope string) (string, error) {
	switch {
	case scope != "" && group != "":
		return "", failure("Resource group \"%s\" is redundant because scope is supplied", group)
	case scope != "":
		return scope, nil
	case group != "":
		return c.groupPath(group), nil
	}
	return c.subscriptionPath(), nil
}

// createRoleAssignment assigns role to a principal at scope and returns az's view of the
// assignment. A conflict (RoleAssignmentExists) is returned as the service error.
func (a *app) createRoleAssignment(c *cloud, role, principalID, principalType, scope, name, description string) (map[string]any, error) {
	roleID, err := a.resolveRoleID(c, role, scope)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = uuid.NewString()
	}
	props := map[string]any{"roleDefinitionId": roleID, "principalId": principalID}
	if principalType != "" {
		props["principalType"] = principalType
	}
	if description != "" {
		props["description"] = description
	}
	v, err := c.arm(a.ctx, http.MethodPut, scope+authz+"/roleAssignments/"+name, apiAuthorization, map[string]any{"properties": props})
	if err != nil {
		return nil, err
	}
	return assignmentView(v), nil
}

// assignmentView is az's flattened role assignment, with the fields its SDK model always has.
func assignmentView(v any) map[string]any {
	m, _ := flatten(v).(map[string]any)
	for _, k := range []string{"condition", "conditionVersion", "createdBy", "createdOn", "delegatedManagedIdentityResourceId", "description", "updatedBy", "updatedOn"} {
		if _, ok := m[k]; !ok {
			m[k] = nil
		}
	}
	return m
}

// resolveAssignee finds the object id and principal type for --assignee: a service
// principal's appId or object id (the local directory has no users or groups).
func (a *app) resolveAssignee(c *cloud, assignee string) (string, string, error) {
	if isGUID(assignee) {
		v, err := c.graphCall(a.ctx, http.MethodGet, "/servicePrincipals"+filter("appId eq "+odataQuote(assignee)), nil)
		if err != nil {
			return "", "", err
		}
		if sps := list(v, "value"); len(sps) > 0 {
			return get(sps[0], "id"), "ServicePrincipal", nil
		}
		if sp, err := c.graphCall(a.ctx, http.MethodGet, "/servicePrincipals/"+assignee, nil); err == nil {
			return get(sp, "id"), "ServicePrincipal", nil
		} else if !isCode(err, http.StatusNotFound, "") {
			return "", "", err
		}
	}
	return "", "", failure("Cannot find user or service principal in graph database for '%s'. If the assignee is an appId, make sure the corresponding service principal is created with 'az ad sp create --id %s'.", assignee, assignee)
}

// searchAssignments is az's _search_role_assignments: the assignments at scope (or, with no
// scope, in the whole subscription), for an assignee and a role when given.
func (a *app) searchAssignments(c *cloud, scope, assignee, role string, includeInherited bool) ([]any, error) {
	var principalID string
	if assignee != "" {
		id, _, err := a.resolveAssignee(c, assignee)
		if err != nil {
			if !isGUID(assignee) {
				return nil, err
			}
			id = assignee // az falls back to the object id
		}
		principalID = id
	}
	var path string
	switch {
	case scope != "":
		path = scope + authz + "/roleAssignments" + filter("atScope()")
	case principalID != "":
		path = c.subscriptionPath() + authz + "/roleAssignments" + filter("principalId eq "+odataQuote(principalID))
	default:
		path = c.subscriptionPath() + authz + "/roleAssignments"
	}
	var all []any
	v, err := c.arm(a.ctx, http.MethodGet, path, apiAuthorization, nil)
	for err == nil {
		all = append(all, list(v, "value")...)
		next := get(v, "nextLink")
		if next == "" {
			break
		}
		v, err = c.call(a.ctx, request{method: http.MethodGet, url: next, scope: armScope})
	}
	if err != nil {
		return nil, err
	}
	var roleID string
	if role != "" {
		if roleID, err = a.resolveRoleID(c, role, cmp.Or(scope, c.subscriptionPath())); err != nil {
			return nil, err
		}
	}
	var out []any
	for _, x := range all {
		ra := assignmentView(x)
		s := get(ra, "scope")
		switch {
		case scope == "":
		case strings.EqualFold(s, scope):
		case includeInherited && strings.HasPrefix(strings.ToLower(scope), strings.ToLower(s)):
		default:
			continue
		}
		if roleID != "" && !strings.EqualFold(get(ra, "roleDefinitionId"), roleID) {
			continue
		}
		if principalID != "" && get(ra, "principalId") != principalID {
			continue
		}
		out = append(out, ra)
	}
	return out, nil
}

// fillNames adds roleDefinitionName and principalName, as az role assignment list does.
func (a *app) fillNames(c *cloud, assignments []any) {
	roleNames := map[string]any{}
	principalNames := map[string]string{}
	for _, x := range assignments {
		ra := x.(map[string]any)
		roleID := get(ra, "roleDefinitionId")
		if _, done := roleNames[roleID]; !done {
			roleNames[roleID] = nil // the role definition might have been deleted
			guid := roleID[strings.LastIndex(roleID, "/")+1:]
			if def, err := c.arm(a.ctx, http.MethodGet, c.subscriptionPath()+authz+"/roleDefinitions/"+guid, apiAuthorization, nil); err == nil {
				roleNames[roleID] = get(def, "properties", "roleName")
			}
		}
		ra["roleDefinitionName"] = roleNames[roleID]
		pid := get(ra, "principalId")
		name, done := principalNames[pid]
		if !done {
			if sp, err := c.graphCall(a.ctx, http.MethodGet, "/servicePrincipals/"+pid, nil); err == nil {
				name = get(sp, "appId")
				if spns, _ := sp.(map[string]any)["servicePrincipalNames"].([]any); len(spns) > 0 {
					name, _ = spns[0].(string)
				}
			}
			principalNames[pid] = name
		}
		ra["principalName"] = name
	}
}

func addRole(a *app, root *cobra.Command) {
	role := group(root, "role", "Manage Azure role-based access control (Azure RBAC).")
	assignment := group(role, "assignment", "Manage role assignments.")
	var roleName, assignee, objectID, principalType, scope, rg, description, name string
	a.add(assignment, command{
		use: "create", short: "Create a new role assignment for a user, group, or service principal.",
		required: []string{"role"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&roleName, "role", "", "Role name or id.")
			fs.StringVar(&assignee, "assignee", "", "Represent a user, group, or service principal (appId or object id here).")
			fs.StringVar(&objectID, "assignee-object-id", "", "Use this parameter instead of '--assignee' to bypass Graph API invocation.")
			fs.StringVar(&principalType, "assignee-principal-type", "", "Use with --assignee-object-id: User, Group, ServicePrincipal, ForeignGroup, Device.")
			fs.StringVar(&scope, "scope", "", "Scope at which the role assignment or definition applies to.")
			fs.StringVarP(&rg, "resource-group", "g", "", "Use it only if the role or assignment was added at the level of a resource group.")
			fs.StringVar(&description, "description", "", "Description of role assignment.")
			fs.StringVar(&name, "name", "", "A GUID for the role assignment. It must be unique and different for each role assignment.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			if (assignee == "") == (objectID == "") {
				return nil, failure("usage error: --assignee STRING | --assignee-object-id GUID")
			}
			if principalType != "" && objectID == "" {
				return nil, failure("usage error: --assignee-object-id GUID --assignee-principal-type TYPE")
			}
			if scope == "" {
				a.warn("--scope argument will become required for creating a role assignment in the breaking change release of the fall of 2023. Please explicitly specify --scope.")
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			s, err := a.buildScope(c, rg, scope)
			if err != nil {
				return nil, err
			}
			pid, ptype := objectID, principalType
			if assignee != "" {
				if pid, ptype, err = a.resolveAssignee(c, assignee); err != nil {
					return nil, err
				}
			} else if ptype == "" {
				a.warn("RBAC service might reject creating role assignment without --assignee-principal-type in the future. Better to specify --assignee-principal-type manually.")
				if _, err := c.graphCall(a.ctx, http.MethodGet, "/servicePrincipals/"+pid, nil); err == nil {
					ptype = "ServicePrincipal"
				}
			}
			ra, err := a.createRoleAssignment(c, roleName, pid, ptype, s, name, description)
			if isCode(err, http.StatusConflict, "") {
				// az is idempotent: it answers with the existing assignment.
				existing, serr := a.searchAssignments(c, s, cmp.Or(assignee, objectID), roleName, false)
				if serr == nil && len(existing) > 0 {
					return existing[0], nil
				}
			}
			if err != nil {
				return nil, err
			}
			return ra, nil
		},
	})
	var all, includeInherited, includeGroups, yes bool
	var ids []string
	a.add(assignment, command{
		use: "list", short: "List role assignments.",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&assignee, "assignee", "", "Represent a user, group, or service principal (appId or object id here).")
			fs.StringVar(&roleName, "role", "", "Role name or id.")
			fs.StringVar(&scope, "scope", "", "Scope at which the role assignment or definition applies to.")
			fs.StringVarP(&rg, "resource-group", "g", "", "Use it only if the role or assignment was added at the level of a resource group.")
			fs.BoolVar(&all, "all", false, "Show all assignments under the current subscription.")
			fs.BoolVar(&includeInherited, "include-inherited", false, "Include assignments applied on parent scopes.")
			fs.BoolVar(&includeGroups, "include-groups", false, "Include extra assignments to the groups of which the user is a member (there are none here).")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			s := ""
			var err error
			if all {
				if rg != "" || scope != "" {
					return nil, failure("group or scope are not required when --all is used")
				}
			} else if s, err = a.buildScope(c, rg, scope); err != nil {
				return nil, err
			}
			found, err := a.searchAssignments(c, s, assignee, roleName, includeInherited)
			if err != nil {
				return nil, err
			}
			a.fillNames(c, found)
			return orEmpty(found), nil
		}),
		table: func(v any) (any, []string) {
			rows := []any{}
			for _, r := range v.([]any) {
				m, _ := r.(map[string]any)
				rows = append(rows, map[string]any{"Principal": m["principalName"], "Role": m["roleDefinitionName"], "Scope": m["scope"]})
			}
			return rows, []string{"Principal", "Role", "Scope"}
		},
	})
	a.add(assignment, command{
		use: "delete", short: "Delete role assignments.",
		flags: func(fs *pflag.FlagSet) {
			fs.StringArrayVar(&ids, "ids", nil, "Space-separated role assignment ids.")
			fs.StringVar(&assignee, "assignee", "", "Represent a user, group, or service principal (appId or object id here).")
			fs.StringVar(&roleName, "role", "", "Role name or id.")
			fs.StringVar(&scope, "scope", "", "Scope at which the role assignment or definition applies to.")
			fs.StringVarP(&rg, "resource-group", "g", "", "Use it only if the role or assignment was added at the level of a resource group.")
			fs.BoolVar(&includeInherited, "include-inherited", false, "Include assignments applied on parent scopes.")
			fs.BoolVarP(&yes, "yes", "y", false, "Currently no-op.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			if len(ids) > 0 {
				for _, id := range ids {
					if _, err := c.arm(a.ctx, http.MethodDelete, id, apiAuthorization, nil); err != nil {
						return nil, err
					}
				}
				return nil, nil
			}
			if assignee == "" && roleName == "" && rg == "" && scope == "" && !yes {
				ok, err := a.confirm("This will delete all role assignments under the subscription. Are you sure?")
				if err != nil || !ok {
					return nil, err
				}
			}
			s, err := a.buildScope(c, rg, scope)
			if err != nil {
				return nil, err
			}
			found, err := a.searchAssignments(c, s, assignee, roleName, includeInherited)
			if err != nil {
				return nil, err
			}
			if len(found) == 0 {
				return nil, failure("No matched assignments were found to delete")
			}
			for _, ra := range found {
				if _, err := c.arm(a.ctx, http.MethodDelete, get(ra, "id"), apiAuthorization, nil); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}),
	})
}
