package arm

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

// authorization serves {scope}/providers/Microsoft.Authorization/{roleDefinitions|roleAssignments}[/{name}].
// scope is "" for the root scope "/".
func (s *Service) authorization(c *call, scope string, rest []string) *apiError {
	switch {
	case len(rest) == 1 && is(rest[0], "roleDefinitions"):
		return s.listRoleDefinitions(c, scope)
	case len(rest) == 2 && is(rest[0], "roleDefinitions"):
		return s.getRoleDefinition(c, scope, rest[1])
	case len(rest) == 1 && is(rest[0], "roleAssignments"):
		return s.listRoleAssignments(c, scope)
	case len(rest) == 2 && is(rest[0], "roleAssignments"):
		return s.roleAssignment(c, scope, rest[1])
	}
	return badRequest("InvalidResourceType", "The local cloud emulates only roleDefinitions and roleAssignments of Microsoft.Authorization.")
}

// ---- scopes

// canonicalScope checks that a scope exists (the subscription, a group, or a resource and
// anything below it, such as a vault's secret) and spells it the way ARM answers with it.
func (s *Service) canonicalScope(scope string) (string, *apiError) {
	if scope == "" {
		return "/", nil
	}
	seg := strings.Split(strings.Trim(scope, "/"), "/")
	// route has checked seg[0:2]: subscriptions/{our subscription}.
	out := s.subscriptionID()
	if len(seg) == 2 {
		return out, nil
	}
	if len(seg) < 4 || !is(seg[2], "resourceGroups") {
		return "", badRequest("InvalidScope", "The scope '%s' is not valid: use the subscription, a resource group or a resource.", reqlog.Limit(scope))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.st.Groups[strings.ToLower(seg[3])]
	if !ok {
		return "", groupNotFound(seg[3])
	}
	if len(seg) == 4 {
		return s.groupID(g), nil
	}
	if len(seg) < 8 || !is(seg[4], "providers") {
		return "", badRequest("InvalidScope", "The scope '%s' is not valid: use the subscription, a resource group or a resource.", reqlog.Limit(scope))
	}
	typ, ok := canonicalType(seg[5] + "/" + seg[6])
	if !ok {
		return "", resourceNotFound(seg[5]+"/"+seg[6], seg[7], g.Name)
	}
	r, ok := g.Resources[resourceKey(typ, seg[7])]
	if !ok {
		return "", resourceNotFound(typ, seg[7], g.Name)
	}
	out = s.resourceID(g, r)
	if len(seg) > 8 {
		out += "/" + strings.Join(seg[8:], "/")
	}
	return out, nil
}

// ---- role definitions

type roleDefinitionJSON struct {
	Properties roleDefinitionProperties `json:"properties"`
	ID         string                   `json:"id"`
	Type       string                   `json:"type"`
	Name       string                   `json:"name"`
}

type roleDefinitionProperties struct {
	RoleName         string        `json:"roleName"`
	Type             string        `json:"type"`
	Description      string        `json:"description"`
	AssignableScopes []string      `json:"assignableScopes"`
	Permissions      []permissions `json:"permissions"`
	CreatedOn        *string       `json:"createdOn"`
	UpdatedOn        *string       `json:"updatedOn"`
	CreatedBy        *string       `json:"createdBy"`
	UpdatedBy        *string       `json:"updatedBy"`
}

type permissions struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// roleDefinitionID is a built-in role's ID as seen from a scope: under the subscription for any
// scope in it, as ARM answers.
func (s *Service) roleDefinitionID(scope, guid string) string {
	if scope == "" {
		return "/providers/Microsoft.Authorization/roleDefinitions/" + guid
	}
	return s.subscriptionID() + "/providers/Microsoft.Authorization/roleDefinitions/" + guid
}

func (s *Service) roleDefinitionJSON(scope string, r directory.RoleDefinition) roleDefinitionJSON {
	return roleDefinitionJSON{
		Properties: roleDefinitionProperties{
			RoleName: r.RoleName, Type: "BuiltInRole", Description: r.Description, AssignableScopes: []string{"/"},
			Permissions: []permissions{{Actions: nonNil(r.Actions), NotActions: nonNil(r.NotActions),
				DataActions: nonNil(r.DataActions), NotDataActions: nonNil(r.NotDataActions)}},
		},
		ID: s.roleDefinitionID(scope, r.ID), Type: "Microsoft.Authorization/roleDefinitions", Name: r.ID,
	}
}

var roleNameFilter = regexp.MustCompile(`(?i)^\s*roleName\s+eq\s+'([^']*)'\s*$`)

func (s *Service) listRoleDefinitions(c *call, scope string) *apiError {
	if err := only(c, http.MethodGet); err != nil {
		return err
	}
	name, filtered := "", false
	if f := c.query.Get("$filter"); f != "" {
		m := roleNameFilter.FindStringSubmatch(f)
		if m == nil {
			return badRequest("BadRequest", "The $filter '%s' is not supported: the local cloud filters role definitions by roleName eq '{name}' only.", reqlog.Limit(f))
		}
		name, filtered = m[1], true
	}
	out := []roleDefinitionJSON{}
	for _, r := range directory.BuiltInRoles {
		if !filtered || strings.EqualFold(r.RoleName, name) {
			out = append(out, s.roleDefinitionJSON(scope, r))
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Service) getRoleDefinition(c *call, scope, guid string) *apiError {
	if err := only(c, http.MethodGet); err != nil {
		return err
	}
	r, ok := directory.LookupRole(guid)
	if !ok || !strings.EqualFold(r.ID, guid) {
		return notFound("RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", reqlog.Limit(guid))
	}
	writeJSON(c.w, http.StatusOK, s.roleDefinitionJSON(scope, r))
	return nil
}

// ---- role assignments

type roleAssignmentJSON struct {
	Properties roleAssignmentProperties `json:"properties"`
	ID         string                   `json:"id"`
	Type       string                   `json:"type"`
	Name       string                   `json:"name"`
}

type roleAssignmentProperties struct {
	RoleDefinitionID                   string  `json:"roleDefinitionId"`
	PrincipalID                        string  `json:"principalId"`
	PrincipalType                      string  `json:"principalType"`
	Scope                              string  `json:"scope"`
	Condition                          *string `json:"condition"`
	ConditionVersion                   *string `json:"conditionVersion"`
	CreatedOn                          string  `json:"createdOn"`
	UpdatedOn                          string  `json:"updatedOn"`
	CreatedBy                          *string `json:"createdBy"`
	UpdatedBy                          *string `json:"updatedBy"`
	DelegatedManagedIdentityResourceID *string `json:"delegatedManagedIdentityResourceId"`
	Description                        *string `json:"description"`
}

// armName is the name ARM shows for an assignment: the one its creator chose, or, for an
// assignment made directly in the directory (the seed, a test), the directory's own.
func (s *Service) armName(ra directory.RoleAssignment) (string, *assignmentMeta) {
	if m, ok := s.st.Assignments[strings.ToLower(ra.Name)]; ok {
		return m.Name, m
	}
	return ra.Name, nil
}

func (s *Service) roleAssignmentJSON(ra directory.RoleAssignment) roleAssignmentJSON {
	name, meta := s.armName(ra)
	scope := ra.Scope
	id := strings.TrimSuffix(scope, "/") + "/providers/Microsoft.Authorization/roleAssignments/" + name
	var by *string
	if meta != nil && meta.CreatedBy != "" {
		by = &meta.CreatedBy
	}
	return roleAssignmentJSON{
		Properties: roleAssignmentProperties{
			RoleDefinitionID: ra.RoleDefinitionID, PrincipalID: ra.PrincipalID, PrincipalType: ra.PrincipalType, Scope: scope,
			CreatedOn: armTime(ra.CreatedOn), UpdatedOn: armTime(ra.CreatedOn), CreatedBy: by, UpdatedBy: by,
		},
		ID: id, Type: "Microsoft.Authorization/roleAssignments", Name: name,
	}
}

// findAssignment finds an assignment by the name ARM shows for it; callers hold s.mu.
func (s *Service) findAssignment(name string) (directory.RoleAssignment, bool) {
	for _, ra := range s.dir.RoleAssignments(directory.RoleAssignmentFilter{}) {
		if n, _ := s.armName(ra); strings.EqualFold(n, name) {
			return ra, true
		}
	}
	return directory.RoleAssignment{}, false
}

// pruneAssignmentsLocked forgets the ARM names of assignments the directory no longer has
// (deleted with their scope); callers hold s.mu for writing.
func (s *Service) pruneAssignmentsLocked() {
	live := map[string]bool{}
	for _, ra := range s.dir.RoleAssignments(directory.RoleAssignmentFilter{}) {
		live[strings.ToLower(ra.Name)] = true
	}
	for k := range s.st.Assignments {
		if !live[k] {
			delete(s.st.Assignments, k)
		}
	}
}

func sameScope(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "/"), strings.TrimSuffix(b, "/"))
}

var (
	principalIDFilter = regexp.MustCompile(`(?i)^principalId\s+eq\s+'([^']*)'$`)
	assignedToFilter  = regexp.MustCompile(`(?i)^assignedTo\('([^']*)'\)$`)
	andSplit          = regexp.MustCompile(`(?i)\s+and\s+`)
)

// listRoleAssignments answers as ARM does: with no filter, the assignments at, above and below
// the scope; atScope() keeps those at or above it; principalId eq / assignedTo keep one principal's.
func (s *Service) listRoleAssignments(c *call, scope string) *apiError {
	if err := only(c, http.MethodGet); err != nil {
		return err
	}
	canonical, aerr := s.canonicalScope(scope)
	if aerr != nil {
		return aerr
	}
	if canonical == "/" {
		canonical = ""
	}
	atScope, principal := false, ""
	if f := strings.TrimSpace(c.query.Get("$filter")); f != "" {
		for _, term := range andSplit.Split(f, -1) {
			term = strings.TrimSpace(term)
			if strings.EqualFold(term, "atScope()") {
				atScope = true
			} else if m := principalIDFilter.FindStringSubmatch(term); m != nil {
				principal = m[1]
			} else if m := assignedToFilter.FindStringSubmatch(term); m != nil {
				principal = m[1]
			} else {
				return badRequest("UnsupportedQuery", "The $filter term '%s' is not supported: use atScope(), principalId eq '{id}' or assignedTo('{id}').", reqlog.Limit(term))
			}
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []roleAssignmentJSON{}
	for _, ra := range s.dir.RoleAssignments(directory.RoleAssignmentFilter{PrincipalID: principal}) {
		above := directory.ScopeCovers(ra.Scope, canonical)
		below := directory.ScopeCovers(canonical, ra.Scope)
		if above || (below && !atScope) {
			out = append(out, s.roleAssignmentJSON(ra))
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Service) roleAssignment(c *call, scope, name string) *apiError {
	if err := only(c, http.MethodGet, http.MethodPut, http.MethodDelete); err != nil {
		return err
	}
	if c.r.Method == http.MethodPut {
		return s.putRoleAssignment(c, scope, name)
	}
	if c.r.Method == http.MethodGet {
		s.mu.RLock()
		defer s.mu.RUnlock()
		ra, ok := s.findAssignment(name)
		if !ok || !sameScope(ra.Scope, orRoot(scope)) {
			return notFound("RoleAssignmentNotFound", "The role assignment '%s' is not found.", reqlog.Limit(name))
		}
		writeJSON(c.w, http.StatusOK, s.roleAssignmentJSON(ra))
		return nil
	}
	var out roleAssignmentJSON
	found := false
	err := s.mutate(func() error {
		ra, ok := s.findAssignment(name)
		if !ok || !sameScope(ra.Scope, orRoot(scope)) {
			return nil
		}
		found, out = true, s.roleAssignmentJSON(ra)
		if err := s.dir.DeleteRoleAssignment(ra.Name); err != nil {
			return err
		}
		delete(s.st.Assignments, strings.ToLower(ra.Name))
		return nil
	})
	switch {
	case err != nil:
		return asAPIError(err)
	case found:
		writeJSON(c.w, http.StatusOK, out)
	default:
		c.w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

func orRoot(scope string) string {
	if scope == "" {
		return "/"
	}
	return scope
}

type roleAssignmentBody struct {
	Properties *struct {
		RoleDefinitionID string `json:"roleDefinitionId"`
		PrincipalID      string `json:"principalId"`
		PrincipalType    string `json:"principalType"`
		Description      string `json:"description"`
	} `json:"properties"`
}

// putRoleAssignment creates an assignment under the name the client chose (201). The same name
// again with the same content answers 201 again; the same role, principal and scope under
// another name is 409 RoleAssignmentExists, as on Azure.
func (s *Service) putRoleAssignment(c *call, scope, name string) *apiError {
	if _, err := uuid.Parse(name); err != nil {
		return badRequest("InvalidRoleAssignmentId", "The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", reqlog.Limit(name))
	}
	if scope == "" {
		return badRequest("InvalidScope", "The local cloud assigns roles at %s or below it, not at the root scope.", s.subscriptionID())
	}
	var b roleAssignmentBody
	if err := decodeBody(c.w, c.r, &b, false); err != nil {
		return err
	}
	if b.Properties == nil || b.Properties.RoleDefinitionID == "" || b.Properties.PrincipalID == "" {
		return badRequest("InvalidRequestContent", "The role assignment's properties must include roleDefinitionId and principalId.")
	}
	p := b.Properties
	def, ok := directory.LookupRole(p.RoleDefinitionID)
	if !ok || !strings.Contains(p.RoleDefinitionID, "/") {
		return badRequest("RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", reqlog.Limit(lastSegment(p.RoleDefinitionID)))
	}
	sp, ok := s.dir.ServicePrincipal(p.PrincipalID)
	if !ok || !strings.EqualFold(sp.TenantID, s.tenant) {
		return badRequest("PrincipalNotFound", "Principal %s does not exist in the directory %s. Check that you have the correct principal ID. "+
			"If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. "+
			"In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group. See https://aka.ms/docs-principaltype",
			strings.ReplaceAll(reqlog.Limit(p.PrincipalID), "-", ""), s.tenant)
	}
	if p.PrincipalType != "" && !strings.EqualFold(p.PrincipalType, "ServicePrincipal") {
		return badRequest("UnmatchedPrincipalType", "The PrincipalId '%s' has type 'ServicePrincipal', which is different from specified PrincipalType '%s'.",
			strings.ReplaceAll(sp.ObjectID, "-", ""), reqlog.Limit(p.PrincipalType))
	}
	canonical, aerr := s.canonicalScope(scope)
	if aerr != nil {
		return aerr
	}
	var out roleAssignmentJSON
	err := s.mutate(func() error {
		same := func(ra directory.RoleAssignment) bool {
			return strings.EqualFold(ra.PrincipalID, sp.ObjectID) && strings.EqualFold(lastSegment(ra.RoleDefinitionID), def.ID) && sameScope(ra.Scope, canonical)
		}
		if ra, ok := s.findAssignment(name); ok {
			if !same(ra) {
				return conflict("RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
			}
			out = s.roleAssignmentJSON(ra)
			return nil
		}
		existing := s.dir.RoleAssignments(directory.RoleAssignmentFilter{PrincipalID: sp.ObjectID, Role: def.ID, Scope: canonical})
		if len(existing) > 0 {
			n, _ := s.armName(existing[0])
			return conflict("RoleAssignmentExists", "The role assignment already exists. The ID of the existing role assignment is %s.", strings.ReplaceAll(n, "-", ""))
		}
		ra, err := s.dir.AssignRole(sp.ObjectID, def.ID, canonical)
		if err != nil {
			return err
		}
		s.st.Assignments[strings.ToLower(ra.Name)] = &assignmentMeta{Name: strings.ToLower(name), CreatedBy: c.claims.ObjectID}
		out = s.roleAssignmentJSON(ra)
		return nil
	})
	if err != nil {
		return asAPIError(err)
	}
	writeJSON(c.w, http.StatusCreated, out)
	return nil
}

func lastSegment(id string) string {
	id = strings.TrimSuffix(id, "/")
	return id[strings.LastIndex(id, "/")+1:]
}
