package arm

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/appservice"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

// appServiceRequest dispatches the resource types the appservice package runs.
func (s *Service) appServiceRequest(c *call, groupName string, t target) *apiError {
	switch t.typ {
	case typeRegistries:
		return s.registryRequest(c, groupName, t)
	case typeServerFarms:
		return s.planRequest(c, groupName, t)
	default:
		return s.siteRequest(c, groupName, t)
	}
}

// appServiceError words an appservice error in ARM's terms.
func appServiceError(err error) error {
	switch {
	case errors.Is(err, appservice.ErrInvalidArgument):
		return badRequest("BadRequest", "%v", err)
	case errors.Is(err, appservice.ErrNotFound):
		return notFound("NotFound", "%v", err)
	case errors.Is(err, appservice.ErrAlreadyExists), errors.Is(err, appservice.ErrConflict):
		return conflict("Conflict", "%v", err)
	}
	return err
}

// deleteAppServiceResource deletes a registry, plan or site in the appservice package; one that
// is already gone there is not an error.
func (s *Service) deleteAppServiceResource(r *resource) error {
	var err error
	switch r.Type {
	case typeRegistries:
		err = s.apps.DeleteRegistry(r.Name)
	case typeServerFarms:
		err = s.apps.DeletePlan(r.Name)
	case typeSites:
		err = s.apps.DeleteSite(r.Name)
	}
	if errors.Is(err, appservice.ErrNotFound) {
		return nil
	}
	return appServiceError(err)
}

// ---- App Service plans (serverfarms)

type planBody struct {
	Location   *string           `json:"location"`
	Kind       string            `json:"kind"`
	Tags       map[string]string `json:"tags"`
	SKU        *sku              `json:"sku"`
	Properties *struct {
		Reserved bool `json:"reserved"`
	} `json:"properties"`
}

type planJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Kind       string            `json:"kind"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	SKU        sku               `json:"sku"`
	Properties map[string]any    `json:"properties"`
}

// planTiers are the tiers of the SKU names az appservice plan create accepts.
var planTiers = map[string]string{
	"F1": "Free", "B1": "Basic", "B2": "Basic", "B3": "Basic", "S1": "Standard", "S2": "Standard", "S3": "Standard",
	"P0V3": "PremiumV3", "P1V2": "PremiumV2", "P2V2": "PremiumV2", "P3V2": "PremiumV2", "P1V3": "PremiumV3", "P2V3": "PremiumV3", "P3V3": "PremiumV3",
}

func (s *Service) planJSON(g *group, r *resource) planJSON {
	id := s.resourceID(g, r)
	sites := 0
	for _, site := range s.apps.Sites() {
		if strings.EqualFold(site.PlanID, id) || strings.EqualFold(site.PlanID, r.Name) {
			sites++
		}
	}
	tags := r.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return planJSON{
		ID: id, Name: r.Name, Type: typeServerFarms, Kind: r.Kind, Location: r.Location, Tags: tags, SKU: *r.SKU,
		Properties: map[string]any{
			"status": "Ready", "reserved": r.Reserved, "numberOfSites": sites, "numberOfWorkers": 1,
			"maximumNumberOfWorkers": 3, "resourceGroup": g.Name, "provisioningState": "Succeeded",
		},
	}
}

func (s *Service) planRequest(c *call, groupName string, t target) *apiError {
	if len(t.rest) > 0 {
		return noSuchOperation(c, t)
	}
	return s.resourceCRUD(c, groupName, t, s.putPlan, func(t target) (any, *apiError) {
		return s.planJSON(t.g, t.r), nil
	})
}

func (s *Service) putPlan(c *call, groupName string, t target) *apiError {
	var b planBody
	if err := decodeBody(c.w, c.r, &b, false); err != nil {
		return err
	}
	switch {
	case b.Location == nil || strings.TrimSpace(*b.Location) == "":
		return badRequest("LocationRequired", "The location property is required for this definition.")
	case b.SKU == nil || b.SKU.Name == "":
		return badRequest("BadRequest", "The plan needs a sku, such as {\"name\":\"B1\",\"tier\":\"Basic\"}.")
	case b.Properties == nil || !b.Properties.Reserved:
		return badRequest("BadRequest", "The local App Service runs Linux plans only: set properties.reserved to true (az appservice plan create --is-linux).")
	}
	name := strings.ToUpper(b.SKU.Name)
	tier, ok := planTiers[name]
	if !ok {
		return badRequest("BadRequest", "The sku name '%s' is not a known App Service plan SKU (B1, S1, P1v3, ...).", reqlog.Limit(b.SKU.Name))
	}
	if name[len(name)-2] == 'V' {
		name = name[:len(name)-2] + "v" + name[len(name)-1:]
	}
	kind := b.Kind
	if kind == "" {
		kind = "linux"
	}
	status := http.StatusOK
	var out planJSON
	err := s.mutate(func() error {
		if err := s.lookup(groupName, &t); err != nil {
			return err
		}
		r := t.r
		if r == nil {
			r = &resource{Type: typeServerFarms, Name: t.name, Location: normalizeLocation(*b.Location), CreatedAt: s.now().UTC()}
			status = http.StatusCreated
		}
		if _, err := s.apps.CreatePlan(t.name, s.resourceID(t.g, r), name); err != nil {
			return appServiceError(err)
		}
		r.Kind, r.Reserved = kind, true
		r.SKU = &sku{Name: name, Tier: tier, Size: name, Family: name[:1], Capacity: 1}
		if b.Tags != nil {
			r.Tags = b.Tags
		}
		t.g.Resources[resourceKey(typeServerFarms, t.name)] = r
		out = s.planJSON(t.g, r)
		return nil
	})
	if err != nil {
		return asAPIError(err)
	}
	writeJSON(c.w, status, out)
	return nil
}

// ---- web apps (sites)

type nameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type siteConfigBody struct {
	LinuxFxVersion             *string      `json:"linuxFxVersion"`
	ACRUseManagedIdentityCreds *bool        `json:"acrUseManagedIdentityCreds"`
	AppSettings                *[]nameValue `json:"appSettings"`
}

type siteBody struct {
	Location *string           `json:"location"`
	Kind     string            `json:"kind"`
	Tags     map[string]string `json:"tags"`
	Identity *struct {
		Type string `json:"type"`
	} `json:"identity"`
	Properties *struct {
		ServerFarmID *string        `json:"serverFarmId"`
		HTTPSOnly    *bool          `json:"httpsOnly"`
		SiteConfig   siteConfigBody `json:"siteConfig"`
	} `json:"properties"`
}

// image reads linuxFxVersion: "DOCKER|{image}" or "" (nothing deployed).
func image(linuxFxVersion string) (string, *apiError) {
	if linuxFxVersion == "" {
		return "", nil
	}
	kind, img, ok := strings.Cut(linuxFxVersion, "|")
	if !ok || !strings.EqualFold(kind, "DOCKER") || img == "" {
		return "", badRequest("BadRequest", "linuxFxVersion '%s' is not emulated: the local App Service runs containers, DOCKER|{registry}.azurecr.io/{repository}:{tag}.", reqlog.Limit(linuxFxVersion))
	}
	return img, nil
}

func fxVersion(img string) string {
	if img == "" {
		return ""
	}
	return "DOCKER|" + img
}

// systemAssigned reads identity.type.
func systemAssigned(typ string) (bool, *apiError) {
	switch strings.ToLower(strings.ReplaceAll(typ, " ", "")) {
	case "systemassigned":
		return true, nil
	case "none", "":
		return false, nil
	}
	return false, badRequest("BadRequest", "Identity type '%s' is not emulated: use SystemAssigned or None.", reqlog.Limit(typ))
}

type siteJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Kind       string            `json:"kind"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Identity   map[string]string `json:"identity"`
	Properties map[string]any    `json:"properties"`
}

func siteConfigJSON(site appservice.Site) map[string]any {
	return map[string]any{
		"linuxFxVersion": fxVersion(site.Image), "acrUseManagedIdentityCreds": site.ACRUseManagedIdentityCreds,
		"appSettings": nil, "numberOfWorkers": 1, "alwaysOn": false, "http20Enabled": true, "minTlsVersion": "1.2", "ftpsState": "FtpsOnly",
	}
}

func (s *Service) siteJSON(g *group, r *resource, site appservice.Site) siteJSON {
	identity := map[string]string{"type": "None"}
	if site.PrincipalID != "" {
		identity = map[string]string{"type": "SystemAssigned", "principalId": site.PrincipalID, "tenantId": s.tenant}
	}
	tags := r.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	scm := strings.TrimSuffix(site.DefaultHostName, "."+appservice.DNSSuffix) + ".scm." + appservice.DNSSuffix
	return siteJSON{
		ID: s.resourceID(g, r), Name: r.Name, Type: typeSites, Kind: r.Kind, Location: r.Location, Tags: tags, Identity: identity,
		Properties: map[string]any{
			"name": r.Name, "state": site.State, "hostNames": []string{site.DefaultHostName},
			"enabledHostNames": []string{site.DefaultHostName, scm}, "defaultHostName": site.DefaultHostName,
			"serverFarmId": site.PlanID, "reserved": true, "httpsOnly": r.HTTPSOnly, "resourceGroup": g.Name,
			"siteConfig": siteConfigJSON(site), "usageState": "Normal", "availabilityState": "Normal",
			"clientAffinityEnabled": false, "provisioningState": "Succeeded",
		},
	}
}

// siteRequest serves .../Microsoft.Web/sites/{name}[/...].
func (s *Service) siteRequest(c *call, groupName string, t target) *apiError {
	rest := t.rest
	switch {
	case len(rest) == 0:
		if err := only(c, http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete); err != nil {
			return err
		}
		switch c.r.Method {
		case http.MethodPut, http.MethodPatch:
			return s.putSite(c, groupName, t)
		case http.MethodDelete:
			return s.deleteResourceRequest(c, groupName, t)
		}
		return s.readSite(groupName, &t, func(site appservice.Site) { writeJSON(c.w, http.StatusOK, s.siteJSON(t.g, t.r, site)) })
	case len(rest) == 1 && (is(rest[0], "restart") || is(rest[0], "start") || is(rest[0], "stop")):
		return s.siteAction(c, groupName, t, strings.ToLower(rest[0]))
	case len(rest) == 1 && is(rest[0], "containerlogs"):
		if err := only(c, http.MethodPost); err != nil {
			return err
		}
		return s.readSite(groupName, &t, func(site appservice.Site) {
			c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			c.w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(c.w, s.apps.Logs(site.Name))
		})
	case len(rest) == 2 && is(rest[0], "config") && is(rest[1], "appsettings"):
		if err := only(c, http.MethodPut); err != nil {
			return err
		}
		return s.putAppSettings(c, groupName, t)
	case len(rest) == 3 && is(rest[0], "config") && is(rest[1], "appsettings") && is(rest[2], "list"):
		if err := only(c, http.MethodPost); err != nil {
			return err
		}
		return s.readSite(groupName, &t, func(site appservice.Site) { writeJSON(c.w, http.StatusOK, s.appSettingsJSON(t, site)) })
	case len(rest) == 2 && is(rest[0], "config") && is(rest[1], "web"):
		if err := only(c, http.MethodGet, http.MethodPut, http.MethodPatch); err != nil {
			return err
		}
		if c.r.Method == http.MethodGet {
			return s.readSite(groupName, &t, func(site appservice.Site) { writeJSON(c.w, http.StatusOK, s.webConfigJSON(t, site)) })
		}
		return s.putWebConfig(c, groupName, t)
	}
	return noSuchOperation(c, t)
}

// readSite finds an existing site and answers with what write makes of it.
func (s *Service) readSite(groupName string, t *target, write func(appservice.Site)) *apiError {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.requireResource(groupName, t); err != nil {
		return err
	}
	site, ok := s.apps.Site(t.r.Name)
	if !ok {
		return resourceNotFound(t.typ, t.name, t.g.Name)
	}
	write(site)
	return nil
}

// changeSite applies change to an existing site's spec with UpdateSite (which restarts the app
// as Azure does) and answers with what write makes of the result.
func (s *Service) changeSite(groupName string, t *target, change func(*appservice.SiteSpec) *apiError) (appservice.Site, error) {
	var out appservice.Site
	err := s.mutate(func() error {
		if err := s.requireResource(groupName, t); err != nil {
			return err
		}
		site, ok := s.apps.Site(t.r.Name)
		if !ok {
			return resourceNotFound(t.typ, t.name, t.g.Name)
		}
		spec := site.SiteSpec
		if err := change(&spec); err != nil {
			return err
		}
		var err error
		if out, err = s.apps.UpdateSite(spec); err != nil {
			return appServiceError(err)
		}
		return nil
	})
	return out, err
}

// putSite creates a web app (201) or changes one (200). Properties a PUT or PATCH leaves out
// keep their values.
func (s *Service) putSite(c *call, groupName string, t target) *apiError {
	var b siteBody
	if err := decodeBody(c.w, c.r, &b, false); err != nil {
		return err
	}
	var cfg siteConfigBody
	var farm *string
	var httpsOnly *bool
	if b.Properties != nil {
		cfg, farm, httpsOnly = b.Properties.SiteConfig, b.Properties.ServerFarmID, b.Properties.HTTPSOnly
	}
	var img *string
	if cfg.LinuxFxVersion != nil {
		i, err := image(*cfg.LinuxFxVersion)
		if err != nil {
			return err
		}
		img = &i
	}
	var identity *bool
	if b.Identity != nil {
		on, err := systemAssigned(b.Identity.Type)
		if err != nil {
			return err
		}
		identity = &on
	}
	apply := func(spec *appservice.SiteSpec) {
		if farm != nil {
			spec.PlanID = *farm
		}
		if img != nil {
			spec.Image = *img
		}
		if cfg.ACRUseManagedIdentityCreds != nil {
			spec.ACRUseManagedIdentityCreds = *cfg.ACRUseManagedIdentityCreds
		}
		if cfg.AppSettings != nil {
			spec.AppSettings = map[string]string{}
			for _, nv := range *cfg.AppSettings {
				spec.AppSettings[nv.Name] = nv.Value
			}
		}
		if identity != nil {
			spec.SystemAssignedIdentity = *identity
		}
	}
	status := http.StatusOK
	var out siteJSON
	err := s.mutate(func() error {
		if err := s.lookup(groupName, &t); err != nil {
			return err
		}
		r := t.r
		var site appservice.Site
		var err error
		if r == nil {
			if c.r.Method == http.MethodPatch {
				return resourceNotFound(t.typ, t.name, t.g.Name)
			}
			if b.Location == nil || strings.TrimSpace(*b.Location) == "" {
				return badRequest("LocationRequired", "The location property is required for this definition.")
			}
			if farm == nil || *farm == "" {
				return badRequest("BadRequest", "properties.serverFarmId is required: the resource ID of the App Service plan the app runs on.")
			}
			if g, _, taken := s.findResource(typeSites, t.name); taken {
				return conflict("Conflict", "Website with given name %s already exists (in resource group '%s'); web app names are global.", t.name, g.Name)
			}
			r = &resource{Type: typeSites, Name: t.name, Location: normalizeLocation(*b.Location), Kind: "app,linux,container", CreatedAt: s.now().UTC()}
			spec := appservice.SiteSpec{Name: t.name, ResourceID: s.resourceID(t.g, r)}
			apply(&spec)
			if site, err = s.apps.CreateSite(spec); err != nil {
				return appServiceError(err)
			}
			status = http.StatusCreated
		} else {
			old, ok := s.apps.Site(r.Name)
			if !ok {
				return resourceNotFound(t.typ, t.name, t.g.Name)
			}
			spec := old.SiteSpec
			apply(&spec)
			if site, err = s.apps.UpdateSite(spec); err != nil {
				return appServiceError(err)
			}
		}
		if b.Kind != "" {
			r.Kind = b.Kind
		}
		if httpsOnly != nil {
			r.HTTPSOnly = *httpsOnly
		}
		if b.Tags != nil {
			r.Tags = b.Tags
		}
		t.g.Resources[resourceKey(typeSites, t.name)] = r
		t.r = r
		out = s.siteJSON(t.g, r, site)
		return nil
	})
	if err != nil {
		return asAPIError(err)
	}
	writeJSON(c.w, status, out)
	return nil
}

func (s *Service) siteAction(c *call, groupName string, t target, action string) *apiError {
	if err := only(c, http.MethodPost); err != nil {
		return err
	}
	s.mu.RLock()
	err := s.requireResource(groupName, &t)
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	var aerr error
	switch action {
	case "restart":
		aerr = s.apps.Restart(t.r.Name)
	case "start":
		aerr = s.apps.Start(t.r.Name)
	default:
		aerr = s.apps.Stop(t.r.Name)
	}
	if aerr != nil {
		return asAPIError(appServiceError(aerr))
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Service) configJSON(t target, name string, properties any) map[string]any {
	return map[string]any{
		"id": s.resourceID(t.g, t.r) + "/config/" + name, "name": name, "type": typeSites + "/config",
		"location": t.r.Location, "properties": properties,
	}
}

func (s *Service) appSettingsJSON(t target, site appservice.Site) map[string]any {
	settings := site.AppSettings
	if settings == nil {
		settings = map[string]string{}
	}
	return s.configJSON(t, "appsettings", settings)
}

func (s *Service) webConfigJSON(t target, site appservice.Site) map[string]any {
	return s.configJSON(t, "web", siteConfigJSON(site))
}

// putAppSettings replaces every app setting (az webapp config appsettings set reads them, adds
// its own and PUTs the lot); the app restarts.
func (s *Service) putAppSettings(c *call, groupName string, t target) *apiError {
	var b struct {
		Properties map[string]string `json:"properties"`
	}
	if err := decodeBody(c.w, c.r, &b, false); err != nil {
		return err
	}
	site, err := s.changeSite(groupName, &t, func(spec *appservice.SiteSpec) *apiError {
		spec.AppSettings = b.Properties
		return nil
	})
	if err != nil {
		return asAPIError(err)
	}
	writeJSON(c.w, http.StatusOK, s.appSettingsJSON(t, site))
	return nil
}

func (s *Service) putWebConfig(c *call, groupName string, t target) *apiError {
	var b struct {
		Properties *siteConfigBody `json:"properties"`
	}
	if err := decodeBody(c.w, c.r, &b, false); err != nil {
		return err
	}
	if b.Properties == nil {
		return badRequest("BadRequest", "The web config needs properties, such as {\"linuxFxVersion\":\"DOCKER|...\"}.")
	}
	cfg := *b.Properties
	site, err := s.changeSite(groupName, &t, func(spec *appservice.SiteSpec) *apiError {
		if cfg.LinuxFxVersion != nil {
			img, err := image(*cfg.LinuxFxVersion)
			if err != nil {
				return err
			}
			spec.Image = img
		}
		if cfg.ACRUseManagedIdentityCreds != nil {
			spec.ACRUseManagedIdentityCreds = *cfg.ACRUseManagedIdentityCreds
		}
		if cfg.AppSettings != nil {
			spec.AppSettings = map[string]string{}
			for _, nv := range *cfg.AppSettings {
				spec.AppSettings[nv.Name] = nv.Value
			}
		}
		return nil
	})
	if err != nil {
		return asAPIError(err)
	}
	writeJSON(c.w, http.StatusOK, s.webConfigJSON(t, site))
	return nil
}
