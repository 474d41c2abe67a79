package graph

import (
	"regexp"
	"strings"
)

// filter is the one $filter clause the local Graph understands on a collection.
type filter struct {
	field string // "appId", "displayName", "id", "startswith", "servicePrincipalNames"; "" = none
	value string
}

var (
	eqFilter         = regexp.MustCompile(`(?i)^(appId|displayName|id)\s+eq\s+'((?:[^']|'')*)'$`)
	startsWithFilter = regexp.MustCompile(`(?i)^startswith\(\s*displayName\s*,\s*'((?:[^']|'')*)'\s*\)$`)
	spnFilter        = regexp.MustCompile(`(?i)^servicePrincipalNames/any\(\s*(\w+)\s*:\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*\)$`)
)

// parseFilter reads $filter: "appId eq '…'", "displayName eq '…'", "id eq '…'",
// "startswith(displayName,'…')" and, on service principals, "servicePrincipalNames/any(c:c eq '…')".
func parseFilter(raw string, servicePrincipals bool) (filter, *graphError) {
	raw = strings.TrimSpace(raw)
	unquote := func(s string) string { return strings.ReplaceAll(s, "''", "'") }
	switch m := eqFilter.FindStringSubmatch(raw); {
	case raw == "":
		return filter{}, nil
	case m != nil:
		field := m[1]
		for _, f := range []string{"appId", "displayName", "id"} {
			if strings.EqualFold(field, f) {
				field = f
			}
		}
		return filter{field: field, value: unquote(m[2])}, nil
	}
	if m := startsWithFilter.FindStringSubmatch(raw); m != nil {
		return filter{field: "startswith", value: unquote(m[1])}, nil
	}
	if m := spnFilter.FindStringSubmatch(raw); m != nil && servicePrincipals && m[1] == m[2] {
		return filter{field: "servicePrincipalNames", value: unquote(m[3])}, nil
	}
	return filter{}, badRequest("Request_UnsupportedQuery", "Unsupported Query. The local Graph filters on appId, displayName or id eq '…', startswith(displayName,'…') and, for service principals, servicePrincipalNames/any(c:c eq '…').")
}

// match applies the filter to an object's fields.
func (f filter) match(id, appID, displayName string, spns []string) bool {
	switch f.field {
	case "":
		return true
	case "appId":
		return strings.EqualFold(appID, f.value)
	case "id":
		return strings.EqualFold(id, f.value)
	case "displayName":
		return displayName == f.value
	case "startswith":
		return strings.HasPrefix(strings.ToLower(displayName), strings.ToLower(f.value))
	case "servicePrincipalNames":
		for _, n := range spns {
			if strings.EqualFold(n, f.value) {
				return true
			}
		}
	}
	return false
}
