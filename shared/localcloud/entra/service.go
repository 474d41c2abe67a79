package entra

import (
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

// Options configure a Service.
type Options struct {
	Directory     *directory.Directory // required: who exists and how they prove it
	Signer        *Signer              // required: the token signing key
	Now           func() time.Time     // nil = time.Now
	Logger        *slog.Logger         // nil = discard
	TokenLifetime time.Duration        // 0 = 1h (expires_in 3599)
}

// Service is the local Entra ID. It is safe for concurrent use.
type Service struct {
	dir           *directory.Directory
	signer        *Signer
	now           func() time.Time
	log           *slog.Logger
	lifetime      time.Duration
	tokenRequests atomic.Int64
	replay        replayCache

	verifiedMu sync.Mutex
	verified   map[[32]byte]accessTokenClaims // see verifiedClaims
}

// New makes the service. Directory and Signer are required: New panics without them, since
// that is a wiring mistake, not a runtime condition.
func New(opts Options) *Service {
	if opts.Directory == nil || opts.Signer == nil {
		panic("entra: Options.Directory and Options.Signer are required")
	}
	s := &Service{dir: opts.Directory, signer: opts.Signer, now: opts.Now, log: opts.Logger, lifetime: opts.TokenLifetime,
		verified: map[[32]byte]accessTokenClaims{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.lifetime <= 0 {
		s.lifetime = time.Hour
	}
	return s
}

// TokenRequests counts POSTs to the token endpoint, answered or refused. Tests use it to show
// that a managed identity gets its tokens without the app ever calling Entra ID.
func (s *Service) TokenRequests() int64 { return s.tokenRequests.Load() }

// Handler serves login.microsoftonline.com (and its aliases login.windows.net and
// login.microsoft.com, which answer the same on Azure).
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// logEntry collects what the request log line says beyond method, path and status.
type logEntry struct {
	appID string
	code  int
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	rec := reqlog.NewStatusRecorder(w)
	var e logEntry
	if aerr := s.route(rec, r, &e); aerr != nil {
		e.code = aerr.code
		s.writeError(rec, r, aerr)
	}
	attrs := []any{"service", "entra", "method", r.Method, "path", r.URL.Path, "status", rec.Status}
	if e.appID != "" {
		attrs = append(attrs, "appid", e.appID)
	}
	if e.code != 0 {
		attrs = append(attrs, "error", "AADSTS"+strconv.Itoa(e.code))
	}
	s.log.Info("request", attrs...)
}

// route dispatches on the path, whose first segment is always the tenant (or common).
func (s *Service) route(w http.ResponseWriter, r *http.Request, e *logEntry) *aadError {
	tenant, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	tenant = strings.ToLower(tenant)
	var get func() *aadError
	switch rest {
	case "oauth2/v2.0/token":
		return s.token(w, r, tenant, e)
	case "discovery/instance":
		get = func() *aadError { return s.instanceDiscovery(w, r) }
	case "v2.0/.well-known/openid-configuration":
		get = func() *aadError { return s.openIDConfiguration(w, tenant) }
	case "discovery/v2.0/keys":
		get = func() *aadError { return s.keys(w, tenant, true) }
	case "discovery/keys":
		get = func() *aadError { return s.keys(w, tenant, false) }
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{
			"error": "not_found",
			"error_description": "The local Entra ID has no endpoint at " + r.URL.Path + ". It serves /common/discovery/instance, " +
				"/{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/discovery/v2.0/keys and POST /{tenant}/oauth2/v2.0/token.",
		})
		return nil
	}
	if r.Method != http.MethodGet {
		return onlyMethod(http.MethodGet, r.Method)
	}
	return get()
}

func onlyMethod(want, got string) *aadError {
	return newAADError(http.StatusBadRequest, "invalid_request", 900561,
		"The endpoint only accepts %s requests. Received a %s request.", want, limit(got))
}

// metaTenant reports the tenant-independent authorities, valid for discovery but not for the
// client credentials grant, which must name the tenant whose token it wants.
func metaTenant(t string) bool { return t == "common" || t == "organizations" || t == "consumers" }

func tenantNotFound(tenant string) *aadError {
	return newAADError(http.StatusBadRequest, "invalid_request", 90002,
		"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. "+
			"Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", limit(tenant))
}

// checkTenant accepts common/organizations/consumers and existing tenants.
func (s *Service) checkTenant(tenant string) *aadError {
	if metaTenant(tenant) {
		return nil
	}
	if _, ok := s.dir.Tenant(tenant); !ok {
		e := tenantNotFound(tenant)
		e.oauth = "invalid_tenant"
		return e
	}
	return nil
}

// aliases are the hosts Entra ID answers on; MSAL treats them as one authority.
var aliases = []string{Host, "login.windows.net", "login.microsoft.com", "sts.windows.net"}

type instanceMetadata struct {
	PreferredNetwork string   `json:"preferred_network"`
	PreferredCache   string   `json:"preferred_cache"`
	Aliases          []string `json:"aliases"`
}

// instanceDiscovery tells MSAL which hosts are one cloud and where the tenant's OpenID
// configuration is. The tenant comes from the authorization endpoint MSAL asks about.
func (s *Service) instanceDiscovery(w http.ResponseWriter, r *http.Request) *aadError {
	raw := r.URL.Query().Get("authorization_endpoint")
	if raw == "" {
		return newAADError(http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'authorization_endpoint'.")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || !isAlias(u.Hostname()) {
		return newAADError(http.StatusBadRequest, "invalid_instance", 50049,
			"Unknown or invalid instance '%s'. The local cloud emulates only the public cloud's %s.", limit(raw), Host)
	}
	tenant, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if tenant == "" {
		tenant = "common"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://" + Host + "/" + url.PathEscape(tenant) + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []instanceMetadata{{
			PreferredNetwork: Host,
			PreferredCache:   "login.windows.net",
			Aliases:          aliases,
		}},
	})
	return nil
}

func isAlias(host string) bool {
	for _, a := range aliases {
		if strings.EqualFold(host, a) {
			return true
		}
	}
	return false
}

// openIDConfiguration is the v2.0 discovery document. MSAL requires the issuer to be on the
// authority's host and reads the token endpoint from here.
func (s *Service) openIDConfiguration(w http.ResponseWriter, tenant string) *aadError {
	if aerr := s.checkTenant(tenant); aerr != nil {
		return aerr
	}
	base := "https://" + Host + "/" + tenant
	issuer := base + "/v2.0"
	if metaTenant(tenant) {
		// As on Azure: the issuer of a multi-tenant authority is a template.
		issuer = "https://" + Host + "/{tenantid}/v2.0"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                issuer,
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"grant_types_supported":                 []string{"client_credentials"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
			"msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
			"at_hash", "c_hash", "email"},
		"request_uri_parameter_supported": false,
		"tenant_region_scope":             "WW",
		"cloud_instance_name":             "microsoftonline.com",
		"cloud_graph_host_name":           "graph.windows.net",
		"msgraph_host":                    "graph.microsoft.com",
	})
	return nil
}

// keys publishes the signing key. The v2.0 document names the issuer each key signs for.
func (s *Service) keys(w http.ResponseWriter, tenant string, v2 bool) *aadError {
	if aerr := s.checkTenant(tenant); aerr != nil {
		return aerr
	}
	issuer := ""
	if v2 {
		issuer = "https://" + Host + "/" + tenant + "/v2.0"
		if metaTenant(tenant) {
			issuer = "https://" + Host + "/{tenantid}/v2.0"
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": []jwk{s.signer.jwk(issuer)}})
	return nil
}

// limit shortens a caller-supplied value before it is echoed in an error message.
func limit(s string) string {
	const maxLen = 200
	if len(s) <= maxLen {
		return s
	}
	return strings.ToValidUTF8(s[:maxLen], "") + "…"
}

// guidOrEmpty returns s if it is a GUID: only such client IDs are logged, so a secret pasted
// into the wrong field never reaches the log.
func guidOrEmpty(s string) string {
	id, err := uuid.Parse(s)
	if err != nil {
		return ""
	}
	return id.String()
}
