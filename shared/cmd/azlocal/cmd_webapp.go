package main

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const (
	planProvider = "Microsoft.Web/serverfarms"
	siteProvider = "Microsoft.Web/sites"
	systemID     = "[system]"
)

// skuTier is App Service's tier for a SKU name.
func skuTier(sku string) string {
	s := strings.ToUpper(sku)
	switch {
	case strings.HasPrefix(s, "F"):
		return "Free"
	case strings.HasPrefix(s, "D"):
		return "Shared"
	case strings.HasPrefix(s, "B"):
		return "Basic"
	case strings.HasPrefix(s, "S"):
		return "Standard"
	case strings.HasPrefix(s, "P") && strings.HasSuffix(s, "MV3"):
		return "PremiumMV3"
	case strings.HasPrefix(s, "P") && strings.HasSuffix(s, "V3"):
		return "PremiumV3"
	case strings.HasPrefix(s, "P") && strings.HasSuffix(s, "V2"):
		return "PremiumV2"
	case strings.HasPrefix(s, "I") && strings.HasSuffix(s, "V2"):
		return "IsolatedV2"
	case strings.HasPrefix(s, "P"):
		return "Premium"
	}
	return ""
}

func addAppService(a *app, root *cobra.Command) {
	appservice := group(root, "appservice", "Manage App Service plans.")
	plan := group(appservice, "plan", "Manage app service plans.")
	var name, rg, sku, location string
	var isLinux bool
	var workers int
	a.add(plan, command{
		use: "create", short: "Create an app service plan.",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&name, "name", "n", "", "Name of the new app service plan.")
			fs.StringVarP(&rg, "resource-group", "g", "", "Name of resource group.")
			fs.StringVar(&sku, "sku", "B1", "The pricing tiers, e.g., F1(Free), D1(Shared), B1(Small Basic), S1(Small Standard), P1V3(Premium V3 Small).")
			fs.BoolVar(&isLinux, "is-linux", false, "Host web app on Linux worker.")
			fs.StringVarP(&location, "location", "l", "", "Location. Defaults to the resource group's.")
			fs.IntVar(&workers, "number-of-workers", 0, "Number of workers to be allocated.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			tier := skuTier(sku)
			if tier == "" {
				return nil, usageError("argument --sku: invalid value: '%s'", sku)
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			if location == "" {
				if location, err = a.groupLocation(c, rg); err != nil {
					return nil, err
				}
			}
			kind := "app"
			if isLinux {
				kind = "linux"
			}
			skuBody := map[string]any{"name": strings.ToUpper(sku), "tier": tier}
			if workers > 0 {
				skuBody["capacity"] = workers
			}
			body := map[string]any{"location": location, "kind": kind, "sku": skuBody, "properties": map[string]any{"reserved": isLinux}}
			v, err := c.arm(a.ctx, http.MethodPut, c.resourcePath(rg, planProvider, name), apiWeb, body)
			return flatten(v), err
		},
	})
	a.add(plan, command{
		use: "show", short: "Get the app service plans for a resource group or a set of resource groups.",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&name, "name", "n", "", "The name of the app service plan.")
			fs.StringVarP(&rg, "resource-group", "g", "", "Name of resource group.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			v, err := c.arm(a.ctx, http.MethodGet, c.resourcePath(rg, planProvider, name), apiWeb, nil)
			return flatten(v), err
		}),
	})
}

// site is a web app's ARM path.
func (c *cloud) site(rg, name string) string { return c.resourcePath(rg, siteProvider, name) }

// identityView is az's view of a site's managed identity.
func identityView(v any) map[string]any {
	id := obj(v, "identity")
	out := map[string]any{"principalId": nil, "tenantId": nil, "type": "None", "userAssignedIdentities": nil}
	for k, x := range id {
		out[k] = x
	}
	return out
}

// warnACRCredentials is what az prints when it looks for a registry's admin credentials to pull
// an image from it: the local registry, like a registry with the admin user off, has none.
func (a *app) warnACRCredentials(registryURL string) {
	host := registryURL
	if u, err := url.Parse(registryURL); err == nil && u.Host != "" {
		host = u.Host
	}
	host, _, _ = strings.Cut(host, "/")
	if !strings.HasSuffix(strings.ToLower(host), ".azurecr.io") {
		return
	}
	name, _, _ := strings.Cut(host, ".")
	a.warn("No credential was provided to access Azure Container Registry. Trying to look up...")
	a.warn("Retrieving credentials failed with an exception:'Failed to retrieve container registry credentials. Please either provide the credentials or run 'az acr update -n %s --admin-enabled true' to enable admin first.'", name)
}

// siteView is az's flattened site.
func siteView(v any) any { return flatten(v) }

func addWebApp(a *app, root *cobra.Command) {
	webapp := group(root, "webapp", "Manage web apps.")
	var name, rg, plan, image, role, scope, acrIdentity, startupFile string
	var assignIdentities, tags []string
	var acrUseIdentity, httpsOnly bool
	nameFlags := func(fs *pflag.FlagSet) {
		fs.StringVarP(&name, "name", "n", "", "Name of the web app.")
		fs.StringVarP(&rg, "resource-group", "g", "", "Name of resource group.")
	}
	a.add(webapp, command{
		use: "create", short: "Create a web app.",
		required: []string{"name", "resource-group", "plan"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.StringVarP(&plan, "plan", "p", "", "Name or resource id of the app service plan.")
			fs.StringVarP(&image, "container-image-name", "c", "", "The container custom image name and optionally the tag name (e.g., `<registry-name>/<image-name>:<tag>`).")
			fs.StringVarP(&image, "deployment-container-image-name", "i", "", "Deprecated: use --container-image-name.")
			fs.StringArrayVar(&assignIdentities, "assign-identity", nil, "Accept system or user assigned identities separated by spaces. Use '[system]' to refer system assigned identity.")
			fs.StringVar(&role, "role", "Contributor", "Role name or id the system assigned identity will have.")
			fs.StringVar(&scope, "scope", "", "Scope the system assigned identity can access.")
			fs.BoolVar(&acrUseIdentity, "acr-use-identity", false, "Enable or disable pull image from acr use managed identity.")
			fs.StringVar(&acrIdentity, "acr-identity", "", "Accept system or user assigned identity which will be set for acr image pull. Use '[system]' to refer system assigned identity.")
			fs.BoolVar(&httpsOnly, "https-only", false, "Redirect all traffic made to an app using HTTP to HTTPS.")
			fs.StringVar(&startupFile, "startup-file", "", "Linux only. The web's startup file.")
			fs.StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value].")
			fs.StringP("runtime", "r", "", "Not emulated: the local cloud runs containers (Go binaries) only.")
		},
		run: func(a *app, cmd *cobra.Command, _ []string) (any, error) {
			if cmd.Flags().Changed("runtime") {
				return nil, failure("the local cloud's App Service runs container images only: use --container-image-name instead of --runtime")
			}
			for _, id := range assignIdentities {
				if id != systemID {
					return nil, failure("the local cloud emulates only the system assigned identity ('[system]'), not '%s'", id)
				}
			}
			if acrIdentity != "" && acrIdentity != systemID {
				return nil, failure("the local cloud emulates only the system assigned identity for --acr-identity ('[system]')")
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			planPath := plan
			if !strings.HasPrefix(plan, "/") {
				planPath = c.resourcePath(rg, planProvider, plan)
			}
			planInfo, err := c.arm(a.ctx, http.MethodGet, planPath, apiWeb, nil)
			if isCode(err, http.StatusNotFound, "") {
				return nil, notFound("The plan '%s' doesn't exist in the resource group '%s'", plan, rg)
			}
			if err != nil {
				return nil, err
			}
			isLinux, _ := obj(planInfo, "properties")["reserved"].(bool)
			siteConfig := map[string]any{"appSettings": []any{}}
			kind := "app"
			if isLinux {
				kind = "app,linux"
			}
			if image != "" {
				siteConfig["linuxFxVersion"] = "DOCKER|" + image
				siteConfig["appSettings"] = []any{map[string]any{"name": "WEBSITES_ENABLE_APP_SERVICE_STORAGE", "value": "false"}}
				kind += ",container"
			}
			if startupFile != "" {
				siteConfig["appCommandLine"] = startupFile
			}
			body := map[string]any{
				"location": get(planInfo, "location"),
				"kind":     kind,
				"properties": map[string]any{
					"serverFarmId": get(planInfo, "id"),
					"httpsOnly":    httpsOnly,
					"siteConfig":   siteConfig,
				},
			}
			if len(tags) > 0 {
				body["tags"] = parseTags(tags)
			}
			site, err := c.arm(a.ctx, http.MethodPut, c.site(rg, name), apiWeb, body)
			if err != nil {
				return nil, err
			}
			if image != "" && !acrUseIdentity && acrIdentity == "" {
				a.warnACRCredentials(image)
			}
			if len(assignIdentities) > 0 {
				if _, err := a.assignIdentity(c, rg, name, role, scope); err != nil {
					return nil, err
				}
			}
			if acrUseIdentity || acrIdentity != "" {
				if _, err := c.arm(a.ctx, http.MethodPatch, c.site(rg, name)+"/config/web", apiWeb,
					map[string]any{"properties": map[string]any{"acrUseManagedIdentityCreds": true}}); err != nil {
					return nil, err
				}
			}
			if len(assignIdentities) > 0 || acrUseIdentity || acrIdentity != "" {
				if site, err = c.arm(a.ctx, http.MethodGet, c.site(rg, name), apiWeb, nil); err != nil {
					return nil, err
				}
			}
			return siteView(site), nil
		},
	})
	a.add(webapp, command{
		use: "show", short: "Get the details of a web app.",
		required: []string{"name", "resource-group"},
		flags:    nameFlags,
		run: connected(func(a *app, c *cloud) (any, error) {
			v, err := c.arm(a.ctx, http.MethodGet, c.site(rg, name), apiWeb, nil)
			if err != nil {
				return nil, err
			}
			// az webapp show names the plan appServicePlanId.
			m, _ := siteView(v).(map[string]any)
			if id, ok := m["serverFarmId"]; ok {
				m["appServicePlanId"] = id
				delete(m, "serverFarmId")
			}
			return m, nil
		}),
	})
	a.add(webapp, command{
		use: "delete", short: "Delete a web app.",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.Bool("keep-empty-plan", false, "Keep empty app service plan (the local cloud always keeps it).")
			fs.Bool("keep-metrics", false, "Keep app metrics.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			_, err := c.arm(a.ctx, http.MethodDelete, c.site(rg, name), apiWeb, nil)
			return nil, err
		}),
	})
	a.add(webapp, command{
		use: "restart", short: "Restart a web app.",
		required: []string{"name", "resource-group"},
		flags:    nameFlags,
		run: connected(func(a *app, c *cloud) (any, error) {
			_, err := c.arm(a.ctx, http.MethodPost, c.site(rg, name)+"/restart", apiWeb, nil)
			return nil, err
		}),
	})
	a.add(webapp, command{
		use: "deploy", short: "Not emulated: deploy a container image instead.",
		args: cobra.ArbitraryArgs,
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.String("src-path", "", "Path of the artifact to be deployed.")
			fs.String("src-url", "", "URL of the artifact.")
			fs.String("type", "", "Used to override the type of artifact being deployed.")
		},
		run: func(*app, *cobra.Command, []string) (any, error) {
			return nil, failure("'webapp deploy' uploads a package to the app's Kudu (SCM) site, which the local cloud does not emulate. " +
				"The local cloud's App Service runs container images: build one with 'azlocal acr build' and point the app at it with " +
				"'azlocal webapp config container set --container-image-name <registry>.azurecr.io/<image>:<tag>'.")
		},
	})
	addIdentity(a, webapp, nameFlags, &name, &rg)
	addWebAppConfig(a, webapp, nameFlags, &name, &rg)
	addWebAppLog(a, webapp, nameFlags, &name, &rg)
}

// assignIdentity turns on a site's system assigned identity and, with a scope, gives it role
// there, as az webapp identity assign does.
func (a *app) assignIdentity(c *cloud, rg, name, role, scope string) (map[string]any, error) {
	v, err := c.arm(a.ctx, http.MethodPatch, c.site(rg, name), apiWeb, map[string]any{"identity": map[string]any{"type": "SystemAssigned"}})
	if err != nil {
		return nil, err
	}
	identity := identityView(v)
	if principal, _ := identity["principalId"].(string); scope != "" && principal != "" {
		a.info("Creating an assignment with a role '%s' on the scope of '%s'", role, scope)
		_, err := a.createRoleAssignment(c, role, principal, "ServicePrincipal", scope, "", "")
		if isCode(err, http.StatusConflict, "") {
			a.info("Role assignment already exists")
		} else if err != nil {
			return nil, err
		}
	}
	return identity, nil
}

func addIdentity(a *app, webapp *cobra.Command, nameFlags func(*pflag.FlagSet), name, rg *string) {
	identity := group(webapp, "identity", "Manage web app's managed identity.")
	var role, scope string
	var identities []string
	a.add(identity, command{
		use: "assign", short: "Assign managed identity to the web app.",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.StringVar(&role, "role", "Contributor", "Role name or id the managed identity will be assigned.")
			fs.StringVar(&scope, "scope", "", "The scope the managed identity has access to.")
			fs.StringArrayVar(&identities, "identities", nil, "Space-separated identities to assign. Use '[system]' to refer to the system assigned identity.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			for _, id := range identities {
				if id != systemID {
					return nil, failure("the local cloud emulates only the system assigned identity ('[system]'), not '%s'", id)
				}
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			return a.assignIdentity(c, *rg, *name, role, scope)
		},
	})
	a.add(identity, command{
		use: "remove", short: "Disable web app's managed identity.",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.StringArrayVar(&identities, "identities", nil, "Space-separated identities to remove. Use '[system]' to refer to the system assigned identity.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			v, err := c.arm(a.ctx, http.MethodPatch, c.site(*rg, *name), apiWeb, map[string]any{"identity": map[string]any{"type": "None"}})
			if err != nil {
				return nil, err
			}
			return identityView(v), nil
		}),
	})
	a.add(identity, command{
		use: "show", short: "Display web app's managed identity.",
		required: []string{"name", "resource-group"},
		flags:    nameFlags,
		run: connected(func(a *app, c *cloud) (any, error) {
			v, err := c.arm(a.ctx, http.MethodGet, c.site(*rg, *name), apiWeb, nil)
			if err != nil || obj(v, "identity") == nil {
				return nil, err
			}
			return identityView(v), nil
		}),
	})
}

// appSettings reads a site's app settings.
func (a *app) appSettings(c *cloud, rg, name string) (map[string]any, error) {
	v, err := c.arm(a.ctx, http.MethodPost, c.site(rg, name)+"/config/appsettings/list", apiWeb, nil)
	if err != nil {
		return nil, err
	}
	props := obj(v, "properties")
	if props == nil {
		props = map[string]any{}
	}
	return props, nil
}

// maskedSettings are app settings az never prints.
var maskedSettings = []string{"DOCKER_REGISTRY_SERVER_PASSWORD"}

// settingsView is az's list of app settings, sorted by name; redact hides every value, as az
// does after setting them.
func settingsView(settings map[string]any, redact bool) []any {
	names := make([]string, 0, len(settings))
	for k := range settings {
		names = append(names, k)
	}
	slices.Sort(names)
	out := []any{}
	for _, k := range names {
		var v any = settings[k]
		if redact || slices.Contains(maskedSettings, k) {
			v = nil
		}
		out = append(out, map[string]any{"name": k, "slotSetting": false, "value": v})
	}
	return out
}

func addWebAppConfig(a *app, webapp *cobra.Command, nameFlags func(*pflag.FlagSet), name, rg *string) {
	config := group(webapp, "config", "Configure a web app.")
	appsettings := group(config, "appsettings", "Configure web app settings.")
	var settings, settingNames, generic []string
	a.add(appsettings, command{
		use: "set", short: "Set a web app's settings.",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.StringArrayVar(&settings, "settings", nil, "Space-separated app settings in KEY=VALUE format, or a JSON file with @.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			if len(settings) == 0 {
				return nil, usageError("usage error: --settings |--slot-settings")
			}
			updates, err := parseSettings(settings)
			if err != nil {
				return nil, err
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			current, err := a.appSettings(c, *rg, *name)
			if err != nil {
				return nil, err
			}
			for k, v := range updates {
				current[k] = v
			}
			v, err := c.arm(a.ctx, http.MethodPut, c.site(*rg, *name)+"/config/appsettings", apiWeb, map[string]any{"properties": current})
			if err != nil {
				return nil, err
			}
			result := obj(v, "properties")
			if result == nil {
				result = current
			}
			a.warn("App settings have been redacted. Use `az webapp/logicapp/functionapp config appsettings list` to view.")
			return settingsView(result, true), nil
		},
	})
	a.add(appsettings, command{
		use: "list", short: "Get the details of a web app's settings.",
		required: []string{"name", "resource-group"},
		flags:    nameFlags,
		run: connected(func(a *app, c *cloud) (any, error) {
			current, err := a.appSettings(c, *rg, *name)
			if err != nil {
				return nil, err
			}
			return settingsView(current, false), nil
		}),
	})
	a.add(appsettings, command{
		use: "delete", short: "Delete web app settings.",
		required: []string{"name", "resource-group", "setting-names"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.StringArrayVar(&settingNames, "setting-names", nil, "Space-separated app setting names.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			current, err := a.appSettings(c, *rg, *name)
			if err != nil {
				return nil, err
			}
			for _, k := range settingNames {
				delete(current, k)
			}
			v, err := c.arm(a.ctx, http.MethodPut, c.site(*rg, *name)+"/config/appsettings", apiWeb, map[string]any{"properties": current})
			if err != nil {
				return nil, err
			}
			result := obj(v, "properties")
			if result == nil {
				result = current
			}
			return settingsView(result, false), nil
		}),
	})
	var linuxFx, startupFile string
	a.add(config, command{
		use: "set", short: "Set a web app's configuration.",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.StringArrayVar(&generic, "generic-configurations", nil, "Provide site configuration list in a format of either 'key=value' pair or '@<json_file>' or a JSON object.")
			fs.StringVar(&linuxFx, "linux-fx-version", "", "The runtime stack used for your linux-based webapp, e.g., \"DOCKER|<image>\".")
			fs.StringVar(&startupFile, "startup-file", "", "Linux only. The web's startup file.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			changes := map[string]any{}
			for _, g := range generic {
				if err := parseGeneric(g, changes); err != nil {
					return nil, err
				}
			}
			if linuxFx != "" {
				changes["linuxFxVersion"] = linuxFx
			}
			if startupFile != "" {
				changes["appCommandLine"] = startupFile
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			v, err := c.arm(a.ctx, http.MethodPatch, c.site(*rg, *name)+"/config/web", apiWeb, map[string]any{"properties": changes})
			return flatten(v), err
		},
	})
	container := group(config, "container", "Manage an existing web app's container settings.")
	var image, registryURL, registryUser, registryPassword string
	a.add(container, command{
		use: "set", short: "Set an existing web app's container settings.",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.StringVarP(&image, "container-image-name", "c", "", "The container custom image name and optionally the tag name (e.g., `<registry-name>/<image-name>:<tag>`).")
			fs.StringVarP(&image, "docker-custom-image-name", "i", "", "Deprecated: use --container-image-name.")
			fs.StringVarP(&registryURL, "container-registry-url", "r", "", "The container registry server url.")
			fs.StringVar(&registryURL, "docker-registry-server-url", "", "Deprecated: use --container-registry-url.")
			fs.StringVarP(&registryUser, "container-registry-user", "u", "", "The container registry server username.")
			fs.StringVar(&registryUser, "docker-registry-server-user", "", "Deprecated: use --container-registry-user.")
			fs.StringVarP(&registryPassword, "container-registry-password", "p", "", "The container registry server password.")
			fs.StringVar(&registryPassword, "docker-registry-server-password", "", "Deprecated: use --container-registry-password.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			settings, err := a.appSettings(c, *rg, *name)
			if err != nil {
				return nil, err
			}
			if registryURL != "" && registryUser == "" && registryPassword == "" {
				a.warnACRCredentials(registryURL)
			}
			changed := false
			for k, v := range map[string]string{"DOCKER_REGISTRY_SERVER_URL": registryURL, "DOCKER_REGISTRY_SERVER_USERNAME": registryUser, "DOCKER_REGISTRY_SERVER_PASSWORD": registryPassword} {
				if v != "" {
					settings[k], changed = v, true
				}
			}
			if changed {
				if _, err := c.arm(a.ctx, http.MethodPut, c.site(*rg, *name)+"/config/appsettings", apiWeb, map[string]any{"properties": settings}); err != nil {
					return nil, err
				}
			}
			if image != "" {
				if _, err := c.arm(a.ctx, http.MethodPatch, c.site(*rg, *name)+"/config/web", apiWeb,
					map[string]any{"properties": map[string]any{"linuxFxVersion": "DOCKER|" + image}}); err != nil {
					return nil, err
				}
			}
			web, err := c.arm(a.ctx, http.MethodGet, c.site(*rg, *name)+"/config/web", apiWeb, nil)
			if err != nil {
				return nil, err
			}
			containerSettings := map[string]any{}
			for _, k := range []string{"DOCKER_REGISTRY_SERVER_URL", "DOCKER_REGISTRY_SERVER_USERNAME", "DOCKER_REGISTRY_SERVER_PASSWORD", "WEBSITES_ENABLE_APP_SERVICE_STORAGE"} {
				if v, ok := settings[k]; ok {
					containerSettings[k] = v
				}
			}
			out := settingsView(containerSettings, false)
			if fx := get(web, "properties", "linuxFxVersion"); fx != "" {
				out = append(out, map[string]any{"name": "DOCKER_CUSTOM_IMAGE_NAME", "value": fx})
			}
			return out, nil
		}),
	})
}

// parseSettings reads --settings: KEY=VALUE words, or JSON (@file or inline) as az accepts it.
func parseSettings(args []string) (map[string]any, error) {
	out := map[string]any{}
	for _, s := range args {
		text := s
		if path, ok := strings.CutPrefix(s, "@"); ok {
			raw, err := os.ReadFile(path)
			if err != nil {
				return nil, failure("%v", err)
			}
			text = string(raw)
		}
		var parsed any
		if json.Unmarshal([]byte(text), &parsed) == nil {
			switch p := parsed.(type) {
			case map[string]any:
				for k, v := range p {
					out[k] = fmt.Sprint(v)
				}
				continue
			case []any: // az appsettings list output: [{"name","value","slotSetting"}]
				for _, item := range p {
					m, _ := item.(map[string]any)
					out[get(m, "name")] = fmt.Sprint(m["value"])
				}
				continue
			}
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, usageError("usage error: --settings KEY=VALUE [KEY=VALUE ...]: '%s' has no '='", s)
		}
		out[k] = v
	}
	return out, nil
}

// parseGeneric reads one --generic-configurations value into changes.
func parseGeneric(s string, changes map[string]any) error {
	text := s
	if path, ok := strings.CutPrefix(s, "@"); ok {
		raw, err := os.ReadFile(path)
		if err != nil {
			return failure("%v", err)
		}
		text = string(raw)
	}
	var parsed map[string]any
	if json.Unmarshal([]byte(text), &parsed) == nil {
		for k, v := range parsed {
			changes[k] = v
		}
		return nil
	}
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return usageError("usage error: --generic-configurations: '%s' is neither JSON nor key=value", s)
	}
	changes[k] = v
	return nil
}

func addWebAppLog(a *app, webapp *cobra.Command, nameFlags func(*pflag.FlagSet), name, rg *string) {
	logs := group(webapp, "log", "Manage web app logs.")
	containerLogs := func(a *app) ([]byte, error) {
		c, err := a.connect()
		if err != nil {
			return nil, err
		}
		return c.do(a.ctx, request{
			method: http.MethodPost, url: armURL(c.site(*rg, *name)+"/containerlogs", apiWeb), scope: armScope,
			header: http.Header{"Accept": {"text/plain, application/octet-stream, */*"}},
		})
	}
	a.add(logs, command{
		use: "tail", short: "Print the web app's container log (the local cloud prints what it kept and returns).",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.String("provider", "", "By default all live traces configured by 'az webapp log config' will be shown.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			text, err := containerLogs(a)
			if err != nil {
				return nil, err
			}
			_, err = a.io.out.Write(text)
			return nil, err
		},
	})
	var logFile string
	a.add(logs, command{
		use: "download", short: "Download a web app's log history as a zip file.",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			nameFlags(fs)
			fs.StringVar(&logFile, "log-file", "webapp_logs.zip", "The downloaded zipped log file path.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			text, err := containerLogs(a)
			if err != nil {
				return nil, err
			}
			f, err := os.Create(logFile)
			if err != nil {
				return nil, failure("%v", err)
			}
			defer f.Close()
			zw := zip.NewWriter(f)
			w, err := zw.CreateHeader(&zip.FileHeader{
				Name: "LogFiles/" + time.Now().UTC().Format("2006_01_02") + "_default_docker.log", Method: zip.Deflate, Modified: time.Now(),
			})
			if err == nil {
				_, err = w.Write(text)
			}
			if err == nil {
				err = zw.Close()
			}
			if err == nil {
				err = f.Close()
			}
			if err != nil {
				return nil, failure("writing %s: %v", logFile, err)
			}
			return nil, nil
		},
	})
}
