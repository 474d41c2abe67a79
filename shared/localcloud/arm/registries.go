package arm

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/appservice"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

type registryBody struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	SKU        *sku              `json:"sku"`
	Properties *struct {
		AdminUserEnabled bool `json:"adminUserEnabled"`
	} `json:"properties"`
}

type registryJSON struct {
	ID         string             `json:"id"`
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Location   string             `json:"location"`
	Tags       map[string]string  `json:"tags"`
	SKU        sku                `json:"sku"`
	Properties registryProperties `json:"properties"`
}

type registryProperties struct {
	LoginServer          string `json:"loginServer"`
	CreationDate         string `json:"creationDate"`
	ProvisioningState    string `json:"provisioningState"`
	AdminUserEnabled     bool   `json:"adminUserEnabled"`
	PublicNetworkAccess  string `json:"publicNetworkAccess"`
	AnonymousPullEnabled bool   `json:"anonymousPullEnabled"`
	ZoneRedundancy       string `json:"zoneRedundancy"`
}

var registrySKUs = []string{"Basic", "Standard", "Premium"}

func (s *Service) registryJSON(g *group, r *resource, reg appservice.Registry) registryJSON {
	tags := r.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return registryJSON{
		ID: s.resourceID(g, r), Name: r.Name, Type: typeRegistries, Location: r.Location, Tags: tags, SKU: *r.SKU,
		Properties: registryProperties{
			LoginServer: reg.LoginServer, CreationDate: armTime(reg.CreatedAt), ProvisioningState: "Succeeded",
			PublicNetworkAccess: "Enabled", ZoneRedundancy: "Disabled",
		},
	}
}

// registryRequest serves .../Microsoft.ContainerRegistry/registries/{name}[/...].
func (s *Service) registryRequest(c *call, groupName string, t target) *apiError {
	switch {
	case len(t.rest) == 0:
		return s.resourceCRUD(c, groupName, t, s.putRegistry, func(t target) (any, *apiError) {
			reg, ok := s.apps.Registry(t.r.Name)
			if !ok {
				return nil, resourceNotFound(t.typ, t.name, t.g.Name)
			}
			return s.registryJSON(t.g, t.r, reg), nil
		})
	case len(t.rest) == 1 && is(t.rest[0], "listBuildSourceUploadUrl"):
		return s.listBuildSourceUploadURL(c, groupName, t)
	case len(t.rest) == 1 && is(t.rest[0], "scheduleRun"):
		return s.scheduleRun(c, groupName, t)
	case len(t.rest) == 2 && is(t.rest[0], "runs"):
		return s.getRun(c, groupName, t, t.rest[1])
	case len(t.rest) == 3 && is(t.rest[0], "runs") && is(t.rest[2], "listLogSasUrl"):
		return s.listLogSASURL(c, groupName, t, t.rest[1])
	}
	return noSuchOperation(c, t)
}

// validRegistryName applies ACR's rule: 5–50 letters and digits.
func validRegistryName(name string) bool {
	if len(name) < 5 || len(name) > 50 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (s *Service) putRegistry(c *call, groupName string, t target) *apiError {
	if !validRegistryName(t.name) {
		return badRequest("InvalidResourceName", "Resource name '%s' is invalid: a registry name must be 5-50 letters and digits.", reqlog.Limit(t.name))
	}
	var b registryBody
	if err := decodeBody(c.w, c.r, &b, false); err != nil {
		return err
	}
	switch {
	case b.Location == nil || strings.TrimSpace(*b.Location) == "":
		return badRequest("LocationRequired", "The location property is required for this definition.")
	case b.SKU == nil:
		return badRequest("BadRequest", "The registry needs a sku: {\"name\":\"Basic\"}, Standard or Premium.")
	case b.Properties != nil && b.Properties.AdminUserEnabled:
		return badRequest("BadRequest", "The local cloud does not emulate registry admin users: keep adminUserEnabled false and let web apps pull with their managed identity (AcrPull).")
	}
	tier := ""
	for _, k := range registrySKUs {
		if strings.EqualFold(b.SKU.Name, k) {
			tier = k
		}
	}
	if tier == "" {
		return badRequest("BadRequest", "The sku name '%s' is not valid: use Basic, Standard or Premium.", reqlog.Limit(b.SKU.Name))
	}
	status := http.StatusOK
	var out registryJSON
	err := s.mutate(func() error {
		if err := s.lookup(groupName, &t); err != nil {
			return err
		}
		r := t.r
		if r == nil {
			if g, _, taken := s.findResource(typeRegistries, t.name); taken {
				return conflict("Conflict", "The registry name '%s' is already in use (in resource group '%s'); registry names are global.", t.name, g.Name)
			}
			r = &resource{Type: typeRegistries, Name: t.name, Location: normalizeLocation(*b.Location), CreatedAt: s.now().UTC()}
			status = http.StatusCreated
		}
		reg, err := s.apps.CreateRegistry(t.name, s.resourceID(t.g, r))
		if err != nil {
			return appServiceError(err)
		}
		r.SKU = &sku{Name: tier, Tier: tier}
		if b.Tags != nil {
			r.Tags = b.Tags
		}
		t.g.Resources[resourceKey(typeRegistries, t.name)] = r
		out = s.registryJSON(t.g, r, reg)
		return nil
	})
	if err != nil {
		return asAPIError(err)
	}
	writeJSON(c.w, status, out)
	return nil
}

// existingRegistry finds the registry a build operation names.
func (s *Service) existingRegistry(groupName string, t *target) *apiError {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.requireResource(groupName, t)
}

// listBuildSourceUploadURL hands out a writable SAS URL on the build blob host, as ACR does for
// az acr build's upload of the build context.
func (s *Service) listBuildSourceUploadURL(c *call, groupName string, t target) *apiError {
	if err := only(c, http.MethodPost); err != nil {
		return err
	}
	if err := s.existingRegistry(groupName, &t); err != nil {
		return err
	}
	rel := "source/" + strings.ReplaceAll(uuid.NewString(), "-", "") + ".tar.gz"
	writeJSON(c.w, http.StatusOK, map[string]string{"uploadUrl": s.blobURL(rel, "w"), "relativePath": rel})
	return nil
}

type scheduleRunBody struct {
	Type           string   `json:"type"`
	ImageNames     []string `json:"imageNames"`
	IsPushEnabled  *bool    `json:"isPushEnabled"`
	SourceLocation string   `json:"sourceLocation"`
	DockerFilePath string   `json:"dockerFilePath"`
	Platform       *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

// scheduleRun runs a DockerBuildRequest to its end before answering (ACR queues it; a client
// that polls the run finds it finished).
func (s *Service) scheduleRun(c *call, groupName string, t target) *apiError {
	if err := only(c, http.MethodPost); err != nil {
		return err
	}
	if err := s.existingRegistry(groupName, &t); err != nil {
		return err
	}
	var b scheduleRunBody
	if err := decodeBody(c.w, c.r, &b, false); err != nil {
		return err
	}
	switch {
	case b.Type != "DockerBuildRequest":
		return badRequest("BadRequest", "The run request type '%s' is not emulated: the local registry runs DockerBuildRequest (az acr build) only.", reqlog.Limit(b.Type))
	case b.IsPushEnabled != nil && !*b.IsPushEnabled:
		return badRequest("BadRequest", "The local registry builds only to push: isPushEnabled must be true.")
	case len(b.ImageNames) == 0:
		return badRequest("BadRequest", "imageNames must name at least one image, such as app:v1.")
	case b.DockerFilePath == "":
		return badRequest("BadRequest", "dockerFilePath is required.")
	case b.Platform != nil && (!strings.EqualFold(b.Platform.OS, "linux") || (b.Platform.Architecture != "" && !strings.EqualFold(b.Platform.Architecture, "amd64"))):
		return badRequest("BadRequest", "The platform %s/%s is not emulated: the local registry builds linux/amd64.", reqlog.Limit(b.Platform.OS), reqlog.Limit(b.Platform.Architecture))
	}
	rel := b.SourceLocation
	if u, err := url.Parse(rel); err == nil && strings.EqualFold(u.Host, BlobHost) {
		rel = strings.TrimPrefix(u.Path, "/")
	}
	src, err := s.apps.OpenSource(rel)
	if err != nil {
		if errors.Is(err, appservice.ErrNotFound) || errors.Is(err, appservice.ErrInvalidArgument) {
			return badRequest("BadRequest", "The source location '%s' has no uploaded build context: upload it to the URL listBuildSourceUploadUrl gives first.", reqlog.Limit(b.SourceLocation))
		}
		return internal(err)
	}
	defer src.Close()
	run, err := s.apps.Build(c.r.Context(), t.r.Name, b.ImageNames, src, b.DockerFilePath)
	if err != nil {
		return asAPIError(appServiceError(err))
	}
	writeJSON(c.w, http.StatusOK, s.runJSON(t, run))
	return nil
}

type runJSON struct {
	Type       string        `json:"type"`
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Properties runProperties `json:"properties"`
}

type runProperties struct {
	RunID             string            `json:"runId"`
	Status            string            `json:"status"`
	LastUpdatedTime   string            `json:"lastUpdatedTime"`
	RunType           string            `json:"runType"`
	CreateTime        string            `json:"createTime"`
	StartTime         string            `json:"startTime"`
	FinishTime        string            `json:"finishTime"`
	OutputImages      []imageDescriptor `json:"outputImages"`
	Platform          map[string]string `json:"platform"`
	ProvisioningState string            `json:"provisioningState"`
	IsArchiveEnabled  bool              `json:"isArchiveEnabled"`
}

type imageDescriptor struct {
	Registry   string `json:"registry"`
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
}

func (s *Service) runJSON(t target, run appservice.Run) runJSON {
	images := []imageDescriptor{}
	for _, ref := range run.Images {
		if img, err := appservice.ParseImage(ref); err == nil {
			images = append(images, imageDescriptor{Registry: img.Registry, Repository: img.Repository, Tag: img.Tag})
		}
	}
	return runJSON{
		Type: typeRegistries + "/runs", ID: s.resourceID(t.g, t.r) + "/runs/" + run.RunID, Name: run.RunID,
		Properties: runProperties{
			RunID: run.RunID, Status: run.Status, LastUpdatedTime: armTime(run.Finish), RunType: "QuickRun",
			CreateTime: armTime(run.Start), StartTime: armTime(run.Start), FinishTime: armTime(run.Finish),
			OutputImages: images, Platform: map[string]string{"os": "linux", "architecture": "amd64"},
			ProvisioningState: "Succeeded",
		},
	}
}

// registryRun finds a build run of the registry an operation names.
func (s *Service) registryRun(groupName string, t *target, runID string) (appservice.Run, *apiError) {
	if err := s.existingRegistry(groupName, t); err != nil {
		return appservice.Run{}, err
	}
	run, ok := s.apps.Run(t.r.Name, runID)
	if !ok {
		return appservice.Run{}, notFound("ResourceNotFound", "The run '%s' of registry '%s' was not found.", reqlog.Limit(runID), t.r.Name)
	}
	return run, nil
}

func (s *Service) getRun(c *call, groupName string, t target, runID string) *apiError {
	if err := only(c, http.MethodGet); err != nil {
		return err
	}
	run, err := s.registryRun(groupName, &t, runID)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, s.runJSON(t, run))
	return nil
}

// listLogSASURL hands out a readable SAS URL of the run's log on the build blob host.
func (s *Service) listLogSASURL(c *call, groupName string, t target, runID string) *apiError {
	if err := only(c, http.MethodPost); err != nil {
		return err
	}
	run, err := s.registryRun(groupName, &t, runID)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"logLink": s.blobURL(logBlobPath(t.r.Name, run.RunID), "r")})
	return nil
}
