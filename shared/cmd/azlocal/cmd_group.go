package main

import (
	"net/http"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// get walks a JSON value by object keys and returns the string there ("" if absent).
func get(v any, path ...string) string {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// obj returns the object at key (nil if absent).
func obj(v any, key string) map[string]any {
	m, _ := v.(map[string]any)
	o, _ := m[key].(map[string]any)
	return o
}

// list returns the array at key: a Graph or ARM collection's "value".
func list(v any, key string) []any {
	m, _ := v.(map[string]any)
	l, _ := m[key].([]any)
	return l
}

// flatten lifts an ARM resource's "properties" to the top level, as az's SDK models show them
// (sites, plans, registries, role assignments, runs).
func flatten(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	props, _ := m["properties"].(map[string]any)
	delete(m, "properties")
	for k, x := range props {
		if _, taken := m[k]; !taken {
			m[k] = x
		}
	}
	return m
}

func addAccount(a *app, root *cobra.Command) {
	account := group(root, "account", "Manage Azure subscription information.")
	a.add(account, command{
		use:   "show",
		short: "Get the details of a subscription: the local cloud's, signed in as the local developer.",
		run: connected(func(a *app, c *cloud) (any, error) {
			// az reads this from its profile, without a request: so does azlocal.
			return map[string]any{
				"environmentName":  "AzureCloud",
				"homeTenantId":     c.tenantID,
				"id":               c.subscriptionID,
				"isDefault":        true,
				"managedByTenants": []any{},
				"name":             subscriptionName,
				"state":            "Enabled",
				"tenantId":         c.tenantID,
				"user":             map[string]any{"name": c.clientID, "type": "servicePrincipal"},
			}, nil
		}),
	})
}

func addGroup(a *app, root *cobra.Command) {
	g := group(root, "group", "Manage resource groups and template deployments.")
	var name, location string
	var tags []string
	nameFlags := func(fs *pflag.FlagSet) {
		fs.StringVarP(&name, "name", "n", "", "Name of the resource group.")
		fs.StringVarP(&name, "resource-group", "g", "", "Name of the resource group.")
	}
	a.add(g, command{
		use: "create", short: "Create a new resource group.",
		required: []string{"name|resource-group", "location"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.StringVarP(&location, "location", "l", "", "Location.")
			fs.StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value].")
			fs.String("managed-by", "", "The ID of the resource that manages this resource group.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			body := map[string]any{"location": location}
			if len(tags) > 0 {
				body["tags"] = parseTags(tags)
			}
			v, err := c.arm(a.ctx, http.MethodPut, c.groupPath(name), apiResources, body)
			return groupView(v), err
		}),
	})
	a.add(g, command{
		use: "show", short: "Gets a resource group.",
		required: []string{"name|resource-group"},
		flags:    nameFlags,
		run: connected(func(a *app, c *cloud) (any, error) {
			v, err := c.arm(a.ctx, http.MethodGet, c.groupPath(name), apiResources, nil)
			return groupView(v), err
		}),
	})
	a.add(g, command{
		use: "exists", short: "Check if a resource group exists.",
		required: []string{"name|resource-group"},
		flags:    nameFlags,
		run: connected(func(a *app, c *cloud) (any, error) {
			_, err := c.do(a.ctx, request{method: http.MethodHead, url: armURL(c.groupPath(name), apiResources), scope: armScope})
			switch {
			case err == nil:
				return true, nil
			case isCode(err, http.StatusNotFound, ""):
				return false, nil
			}
			return nil, err
		}),
	})
	var yes, noWait bool
	a.add(g, command{
		use: "delete", short: "Delete a resource group.",
		required: []string{"name|resource-group"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.BoolVarP(&yes, "yes", "y", false, "Do not prompt for confirmation.")
			fs.BoolVar(&noWait, "no-wait", false, "Do not wait for the long-running operation to finish (deletes are synchronous here).")
			fs.String("force-deletion-types", "", "Accepted; the local cloud deletes every resource anyway.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			if !yes {
				ok, err := a.confirm("Are you sure you want to perform this operation?")
				if err != nil || !ok {
					return nil, err
				}
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			_, err = c.arm(a.ctx, http.MethodDelete, c.groupPath(name), apiResources, nil)
			return nil, err
		},
	})
	a.add(g, command{
		use: "list", short: "List resource groups.",
		run: connected(func(a *app, c *cloud) (any, error) {
			v, err := c.arm(a.ctx, http.MethodGet, c.subscriptionPath()+"/resourcegroups", apiResources, nil)
			if err != nil {
				return nil, err
			}
			groups := orEmpty(list(v, "value"))
			for _, g := range groups {
				groupView(g)
			}
			return groups, nil
		}),
	})
}

// listResources lists the resources of a type in a resource group, or in every group, with
// their full properties, as az's list commands show them.
func (a *app) listResources(c *cloud, rg, provider, apiVersion string) (any, error) {
	groups := []string{rg}
	if rg == "" {
		v, err := c.arm(a.ctx, http.MethodGet, c.subscriptionPath()+"/resourcegroups", apiResources, nil)
		if err != nil {
			return nil, err
		}
		groups = groups[:0]
		for _, g := range list(v, "value") {
			groups = append(groups, get(g, "name"))
		}
	}
	out := []any{}
	for _, g := range groups {
		v, err := c.arm(a.ctx, http.MethodGet, c.groupPath(g)+"/resources", apiResources, nil)
		if err != nil {
			return nil, err
		}
		for _, r := range list(v, "value") {
			if !strings.EqualFold(get(r, "type"), provider) {
				continue
			}
			full, err := c.arm(a.ctx, http.MethodGet, c.resourcePath(g, provider, get(r, "name")), apiVersion, nil)
			if err != nil {
				return nil, err
			}
			out = append(out, full)
		}
	}
	return out, nil
}

// groupView is az's resource group, with the fields its SDK model always has.
func groupView(v any) any {
	if m, ok := v.(map[string]any); ok {
		for _, k := range []string{"managedBy", "tags"} {
			if _, set := m[k]; !set {
				m[k] = nil
			}
		}
	}
	return v
}

// orEmpty makes a missing list an empty one: az prints [] for an empty collection.
func orEmpty(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

// parseTags parses az's "key[=value]" tags.
func parseTags(tags []string) map[string]any {
	out := map[string]any{}
	for _, t := range tags {
		if t == "" {
			continue
		}
		k, v, _ := strings.Cut(t, "=")
		out[k] = v
	}
	return out
}

// groupLocation is a resource group's location: az's default for the resources created in it.
func (a *app) groupLocation(c *cloud, group string) (string, error) {
	v, err := c.arm(a.ctx, http.MethodGet, c.groupPath(group), apiResources, nil)
	if err != nil {
		return "", err
	}
	return get(v, "location"), nil
}

// findResource finds a resource by name when no resource group is given, as az does for
// keyvault show and acr show: it looks in each resource group of the subscription.
func (a *app) findResource(c *cloud, provider, name, apiVersion, kind string) (any, error) {
	groups, err := c.arm(a.ctx, http.MethodGet, c.subscriptionPath()+"/resourcegroups", apiResources, nil)
	if err != nil {
		return nil, err
	}
	for _, g := range list(groups, "value") {
		v, err := c.arm(a.ctx, http.MethodGet, c.resourcePath(get(g, "name"), provider, name), apiVersion, nil)
		if err == nil {
			return v, nil
		}
		if !isCode(err, http.StatusNotFound, "") {
			return nil, err
		}
	}
	return nil, notFound("The %s '%s' not found within subscription.", kind, name)
}
