// Package identity stands in for App Service's managed identity token service: the small REST
// endpoint the platform runs beside each app, reached through IDENTITY_ENDPOINT and guarded by
// the IDENTITY_HEADER secret that the platform injects into the app's environment when it
// starts. The app asks this endpoint, not Entra ID, for tokens; the endpoint gets them from the
// local Entra for the app's managed identity.
//
// Left out on purpose: the Azure VM instance metadata service (IMDS), Azure Arc, Service Fabric,
// Cloud Shell and the older MSI_ENDPOINT/MSI_SECRET protocol (api-version 2017-09-01).
package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
)

// APIVersion is the App Service managed identity protocol version the Azure SDKs speak.
const APIVersion = "2019-08-01"

// Path is where the endpoint listens, as on App Service.
const Path = "/msi/token"

// TokenIssuer mints access tokens for a principal; *entra.Service is one.
type TokenIssuer interface {
	IssueAccessToken(sp directory.ServicePrincipal, resource, appidacr string) (entra.AccessToken, error)
}

// Options configure the service.
type Options struct {
	Directory *directory.Directory
	Issuer    TokenIssuer
	Logger    *slog.Logger // nil = discard
}

// Service starts one endpoint per running app.
type Service struct {
	dir    *directory.Directory
	issuer TokenIssuer
	log    *slog.Logger
}

// New makes the service.
func New(opts Options) *Service {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{dir: opts.Directory, issuer: opts.Issuer, log: log.With("service", "identity")}
}

// Endpoint is one app's token service. It lives as long as the app process: the platform
// starts a new one, with a new header, every time the app starts.
type Endpoint struct {
	// URL is the value of IDENTITY_ENDPOINT.
	URL string
	// Header is the value of IDENTITY_HEADER: the secret the app must present.
	Header string
	// ResourceID is the Azure resource (the web app) whose identities this endpoint serves.
	ResourceID string

	svc      *Service
	srv      *http.Server
	ln       net.Listener
	served   chan struct{}
	requests atomic.Int64
	issued   atomic.Int64
	once     sync.Once
}

// Start listens on a free loopback port for the resource's identities.
func (s *Service) Start(resourceID string) (*Endpoint, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("managed identity endpoint: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		ln.Close()
		return nil, err
	}
	e := &Endpoint{
		URL:        "http://" + ln.Addr().String() + Path,
		Header:     hex.EncodeToString(secret),
		ResourceID: resourceID,
		svc:        s,
		ln:         ln,
		served:     make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc(Path, e.serveToken)
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	go func() {
		defer close(e.served)
		_ = e.srv.Serve(ln)
	}()
	return e, nil
}

// Env is what the platform adds to the app's environment.
func (e *Endpoint) Env() []string {
	return []string{"IDENTITY_ENDPOINT=" + e.URL, "IDENTITY_HEADER=" + e.Header}
}

// Requests counts every request the endpoint received; Issued counts the tokens it gave out.
func (e *Endpoint) Requests() int64 { return e.requests.Load() }

// Issued counts the tokens the endpoint gave out.
func (e *Endpoint) Issued() int64 { return e.issued.Load() }

// Close stops the endpoint; the header dies with it.
func (e *Endpoint) Close() error {
	var err error
	e.once.Do(func() {
		err = e.srv.Close()
		<-e.served
	})
	return err
}

// tokenResponse is the App Service protocol's reply (expires_on is Unix seconds as a string).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"`
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

func (e *Endpoint) serveToken(w http.ResponseWriter, r *http.Request) {
	e.requests.Add(1)
	status, appid := e.answer(w, r)
	e.svc.log.Info("managed identity token request", "method", r.Method, "status", status, "resource_id", e.ResourceID, "appid", appid)
}

func (e *Endpoint) answer(w http.ResponseWriter, r *http.Request) (status int, appid string) {
	if r.Method != http.MethodGet {
		return fail(w, http.StatusMethodNotAllowed, "The managed identity endpoint only answers GET.")
	}
	// Compare in constant time: the header is the one secret that guards this endpoint.
	got := r.Header.Get("X-IDENTITY-HEADER")
	if got == "" {
		return fail(w, http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing. Only the app that the platform started, with IDENTITY_HEADER in its environment, can use this endpoint.")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(e.Header)) != 1 {
		return fail(w, http.StatusUnauthorized, "The X-IDENTITY-HEADER header is not this app's. The header changes every time the app starts: read IDENTITY_HEADER from the environment, never store it.")
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != APIVersion {
		return fail(w, http.StatusBadRequest, fmt.Sprintf("The api-version %q is not supported; use %s.", v, APIVersion))
	}
	resource := q.Get("resource")
	if resource == "" {
		return fail(w, http.StatusBadRequest, "The resource query parameter is missing: name the resource the token is for, for example https://vault.azure.net.")
	}
	if strings.HasSuffix(resource, "/.default") {
		return fail(w, http.StatusBadRequest, "The resource parameter takes a resource URI (https://vault.azure.net), not a scope ending in /.default.")
	}
	sp, err := e.pick(q.Get("client_id"), q.Get("principal_id"), q.Get("object_id"), q.Get("mi_res_id"))
	if err != nil {
		return fail(w, http.StatusBadRequest, err.Error())
	}
	tok, err := e.svc.issuer.IssueAccessToken(sp, resource, entra.ACRCertificate)
	if err != nil {
		return fail(w, http.StatusBadRequest, "Entra ID refused to issue a token: "+err.Error())
	}
	e.issued.Add(1)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(tokenResponse{
		AccessToken: tok.Token,
		ExpiresOn:   strconv.FormatInt(tok.ExpiresOn.Unix(), 10),
		Resource:    resource,
		TokenType:   "Bearer",
		ClientID:    sp.AppID,
	})
	return http.StatusOK, sp.AppID
}

var errNoIdentity = errors.New("no managed identity is enabled for this app. Enable one (az webapp identity assign) and restart the app")

// pick chooses the identity the request names: a user-assigned identity by client ID,
// principal (object) ID or resource ID, else the system-assigned one.
func (e *Endpoint) pick(clientID, principalID, objectID, resourceID string) (directory.ServicePrincipal, error) {
	id := e.svc.dir.IdentityOf(e.ResourceID)
	if principalID == "" {
		principalID = objectID
	}
	if clientID == "" && principalID == "" && resourceID == "" {
		if id.SystemAssigned == nil {
			if len(id.UserAssigned) > 0 {
				return directory.ServicePrincipal{}, errors.New("this app has no system-assigned identity; name one of its user-assigned identities with client_id, principal_id or mi_res_id (in the SDK: ManagedIdentityCredentialOptions.ID)")
			}
			return directory.ServicePrincipal{}, errNoIdentity
		}
		return *id.SystemAssigned, nil
	}
	for _, sp := range id.UserAssigned {
		if (clientID != "" && strings.EqualFold(sp.AppID, clientID)) ||
			(principalID != "" && strings.EqualFold(sp.ObjectID, principalID)) ||
			(resourceID != "" && strings.EqualFold(sp.ManagedIdentityResourceID, resourceID)) {
			return sp, nil
		}
	}
	return directory.ServicePrincipal{}, fmt.Errorf("no user-assigned identity matching client_id=%q principal_id=%q mi_res_id=%q is assigned to this app", clientID, principalID, resourceID)
}

// fail answers with the JSON shape App Service uses for errors.
func fail(w http.ResponseWriter, status int, msg string) (int, string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": status, "message": msg})
	return status, ""
}
