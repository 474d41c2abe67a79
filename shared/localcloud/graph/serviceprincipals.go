package graph

import (
	"errors"
	"net/http"
	"strings"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

type servicePrincipalJSON struct {
	Context                string   `json:"@odata.context,omitempty"`
	ID                     string   `json:"id"`
	AccountEnabled         bool     `json:"accountEnabled"`
	AlternativeNames       []string `json:"alternativeNames"`
	AppDisplayName         string   `json:"appDisplayName"`
	AppID                  string   `json:"appId"`
	AppOwnerOrganizationID string   `json:"appOwnerOrganizationId"`
	CreatedDateTime        string   `json:"createdDateTime"`
	DisplayName            string   `json:"displayName"`
	ServicePrincipalNames  []string `json:"servicePrincipalNames"`
	ServicePrincipalType   string   `json:"servicePrincipalType"`
	Tags                   []string `json:"tags"`
}

// servicePrincipalNames are the names az ad sp show --id accepts: the appId, and for a managed
// identity its resource ID too.
func servicePrincipalNames(sp directory.ServicePrincipal) []string {
	names := []string{sp.AppID}
	if sp.ManagedIdentityResourceID != "" {
		names = append(names, sp.ManagedIdentityResourceID)
	}
	return names
}

func spJSON(sp directory.ServicePrincipal) servicePrincipalJSON {
	alt := sp.AlternativeNames
	if alt == nil {
		alt = []string{}
	}
	return servicePrincipalJSON{
		ID: sp.ObjectID, AccountEnabled: true, AlternativeNames: alt, AppDisplayName: sp.DisplayName, AppID: sp.AppID,
		AppOwnerOrganizationID: sp.TenantID, CreatedDateTime: graphTime(sp.CreatedDateTime), DisplayName: sp.DisplayName,
		ServicePrincipalNames: servicePrincipalNames(sp), ServicePrincipalType: sp.ServicePrincipalType, Tags: []string{},
	}
}

// servicePrincipals serves /servicePrincipals, /servicePrincipals/{id} and /servicePrincipals(appId='…').
func (s *Service) servicePrincipals(c *call, appID string, rest []string) *graphError {
	var sp directory.ServicePrincipal
	var ok bool
	switch {
	case appID != "" && len(rest) == 0:
		sp, ok = s.dir.ServicePrincipalByAppID(c.tenant, appID)
		if !ok {
			return notFound(appID)
		}
	case appID == "" && len(rest) == 0:
		return s.servicePrincipalCollection(c)
	case appID == "" && len(rest) == 1:
		sp, ok = s.dir.ServicePrincipal(rest[0])
		if !ok || !strings.EqualFold(sp.TenantID, c.tenant) {
			return notFound(rest[0])
		}
	default:
		return badRequest("BadRequest", "Resource not found for the segment '%s'.", reqlog.Limit(rest[len(rest)-1]))
	}
	if err := only(c, http.MethodGet); err != nil {
		return err
	}
	out := spJSON(sp)
	out.Context = baseURL + "/$metadata#servicePrincipals/$entity"
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (s *Service) servicePrincipalCollection(c *call) *graphError {
	if err := only(c, http.MethodGet, http.MethodPost); err != nil {
		return err
	}
	if c.r.Method == http.MethodPost {
		return s.createServicePrincipal(c)
	}
	f, err := parseFilter(c.query.Get("$filter"), true)
	if err != nil {
		return err
	}
	out := []servicePrincipalJSON{}
	for _, sp := range s.dir.ServicePrincipals(c.tenant) {
		if f.match(sp.ObjectID, sp.AppID, sp.DisplayName, servicePrincipalNames(sp)) {
			out = append(out, spJSON(sp))
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"@odata.context": baseURL + "/$metadata#servicePrincipals", "value": out})
	return nil
}

// createServicePrincipal creates an app's principal in the caller's tenant (az ad sp create).
func (s *Service) createServicePrincipal(c *call) *graphError {
	var b struct {
		AppID string `json:"appId"`
	}
	if err := decodeBody(c, &b, false); err != nil {
		return err
	}
	if b.AppID == "" {
		return badRequest("Request_BadRequest", "Property 'appId' is required.")
	}
	if _, ok := s.dir.ServicePrincipalByAppID(c.tenant, b.AppID); ok {
		return &graphError{status: http.StatusConflict, code: "Request_MultipleObjectsWithSameKeyValue",
			message: "The service principal cannot be created, updated, or restored because the service principal name " + reqlog.Limit(b.AppID) + " is already in use."}
	}
	sp, err := s.dir.CreateServicePrincipal(c.tenant, b.AppID)
	if errors.Is(err, directory.ErrApplicationNotFound) {
		return badRequest("Request_BadRequest", "The appId '%s' of the service principal does not reference a valid application object.", reqlog.Limit(b.AppID))
	}
	if err != nil {
		return dirError(err, b.AppID)
	}
	out := spJSON(sp)
	out.Context = baseURL + "/$metadata#servicePrincipals/$entity"
	c.w.Header().Set("Location", baseURL+"/servicePrincipals/"+sp.ObjectID)
	writeJSON(c.w, http.StatusCreated, out)
	return nil
}
