package entra

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
)

const (
	// maxTokenRequestBody caps the form a client may post; real requests are a few KiB.
	maxTokenRequestBody = 64 << 10
	jwtBearer           = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// clockSkew is the leeway for time checks, as Entra ID allows between machines.
	clockSkew = 5 * time.Minute
	// maxAssertionLifetime refuses assertions that stay usable long after they were made
	// (MSAL makes them valid for 10 minutes).
	maxAssertionLifetime = 24 * time.Hour
	certCredsDoc         = "Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
)

type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

// token is the v2.0 token endpoint, client credentials grant only. Checks run in the order
// Entra ID reports them: the request's shape, then the tenant, the client and its credential.
func (s *Service) token(w http.ResponseWriter, r *http.Request, tenant string, e *logEntry) *aadError {
	if r.Method != http.MethodPost {
		return onlyMethod(http.MethodPost, r.Method)
	}
	s.tokenRequests.Add(1)
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBody)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return newAADError(http.StatusRequestEntityTooLarge, "invalid_request", 90004,
				"The request is not properly formatted: its body is larger than %d KiB.", maxTokenRequestBody>>10)
		}
		return newAADError(http.StatusBadRequest, "invalid_request", 90004,
			"The request is not properly formatted: the body must be application/x-www-form-urlencoded.")
	}
	form := r.PostForm
	if metaTenant(tenant) {
		return newAADError(http.StatusBadRequest, "invalid_request", 50059,
			"No tenant-identifying information found in either the request or implied by any provided credentials. "+
				"The client credentials grant needs the tenant ID in the URL: /{tenant}/oauth2/v2.0/token, not /%s/.", tenant)
	}
	t, ok := s.dir.Tenant(tenant)
	if !ok {
		return tenantNotFound(tenant)
	}
	switch gt := form.Get("grant_type"); gt {
	case "":
		return missingParameter("grant_type")
	case "client_credentials":
	default:
		return newAADError(http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '%s'. The local Entra ID serves only client_credentials: "+
				"an app signing in as itself.", limit(gt))
	}

	clientID := form.Get("client_id")
	basicID, basicSecret, hasBasic := r.BasicAuth()
	if hasBasic {
		// RFC 6749 2.3.1: client_secret_basic form-encodes both parts before base64.
		id, err1 := url.QueryUnescape(basicID)
		secret, err2 := url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return newAADError(http.StatusBadRequest, "invalid_request", 90004,
				"The request is not properly formatted: the Authorization header's client ID and secret must be form-encoded.")
		}
		if clientID != "" && !strings.EqualFold(clientID, id) {
			return newAADError(http.StatusBadRequest, "invalid_request", 90100,
				"The client_id in the body ('%s') and in the Authorization header ('%s') differ.", limit(clientID), limit(id))
		}
		clientID, basicSecret = id, secret
	}
	if clientID == "" {
		return missingParameter("client_id")
	}
	e.appID = guidOrEmpty(clientID)

	resource, aerr := resourceFromScope(form.Get("scope"))
	if aerr != nil {
		return aerr
	}

	secret := form.Get("client_secret")
	assertionType, assertion := form.Get("client_assertion_type"), form.Get("client_assertion")
	methods := 0
	for _, used := range []bool{secret != "", hasBasic, assertionType != "" || assertion != ""} {
		if used {
			methods++
		}
	}
	var (
		sp  directory.ServicePrincipal
		acr string
	)
	switch {
	case methods > 1:
		return newAADError(http.StatusBadRequest, "invalid_request", 90100,
			"The client authenticated in more than one way: send exactly one of client_secret, an HTTP Basic Authorization header, or client_assertion.")
	case methods == 0:
		if _, ok := s.dir.Application(tenant, clientID); !ok {
			return appNotFound(clientID, t)
		}
		return newAADError(http.StatusUnauthorized, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
	case secret != "" || hasBasic:
		if hasBasic {
			secret = basicSecret
		}
		var err error
		if sp, err = s.dir.VerifyClientSecret(tenant, clientID, secret); err != nil {
			return signInError(err, clientID, t)
		}
		acr = ACRSecret
	default:
		if assertionType == "" {
			return missingParameter("client_assertion_type")
		}
		if assertionType != jwtBearer {
			return newAADError(http.StatusBadRequest, "invalid_request", 90100,
				"client_assertion_type '%s' is not supported; it must be '%s'.", limit(assertionType), jwtBearer)
		}
		if assertion == "" {
			return missingParameter("client_assertion")
		}
		if sp, aerr = s.verifyAssertion(tenant, clientID, assertion, t); aerr != nil {
			return aerr
		}
		acr = ACRCertificate
	}

	at, err := s.IssueAccessToken(sp, resource, acr)
	if err != nil {
		return newAADError(http.StatusInternalServerError, "server_error", 50000, "There was an error issuing a token: %v", err)
	}
	// Entra ID says 3599 for an hour's token: a second short, so clients refresh in time.
	expiresIn := max(int64(s.lifetime/time.Second)-1, 0)
	writeJSON(w, http.StatusOK, tokenResponse{TokenType: "Bearer", ExpiresIn: expiresIn, ExtExpiresIn: expiresIn, AccessToken: at.Token})
	return nil
}

func missingParameter(name string) *aadError {
	return newAADError(http.StatusBadRequest, "invalid_request", 900144,
		"The request body must contain the following parameter: '%s'.", name)
}

// ignoredScopes are the OpenID scopes MSAL adds to every request; they mean nothing to the
// client credentials grant.
var ignoredScopes = map[string]bool{"openid": true, "offline_access": true, "profile": true, "email": true}

// resourceFromScope finds the one resource a client credentials request is for: the scope is
// "<resource>/.default" ("https://vault.azure.net/.default" asks for a Key Vault token).
func resourceFromScope(scope string) (string, *aadError) {
	var named []string
	for f := range strings.FieldsSeq(scope) {
		if !ignoredScopes[strings.ToLower(f)] {
			named = append(named, f)
		}
	}
	switch {
	case strings.TrimSpace(scope) == "":
		return "", newAADError(http.StatusBadRequest, "invalid_scope", 70011,
			"The provided request must include a 'scope' input parameter.")
	case len(named) > 1:
		return "", newAADError(http.StatusBadRequest, "invalid_scope", 70011,
			"The provided value for the input parameter 'scope' is not valid. The scope '%s' is not valid: "+
				"a client credentials request asks for one resource, as '<resource>/.default'.", limit(strings.Join(named, " ")))
	case len(named) == 0 || !strings.HasSuffix(named[0], "/.default"):
		return "", newAADError(http.StatusBadRequest, "invalid_scope", 1002012,
			"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default "+
				"suffixed to the resource identifier (application ID URI).", limit(scope))
	}
	resource := strings.TrimSuffix(strings.TrimSuffix(named[0], "/.default"), "/")
	if _, err := uuid.Parse(resource); err == nil {
		return resource, nil
	}
	if u, err := url.Parse(resource); err != nil || u.Scheme == "" || u.Host == "" {
		return "", newAADError(http.StatusBadRequest, "invalid_scope", 70011,
			"The provided value for the input parameter 'scope' is not valid. The scope %s is not valid: "+
				"the resource must be an application ID URI such as https://vault.azure.net, or a client ID.", limit(named[0]))
	}
	return resource, nil
}

func tenantName(t directory.Tenant) string {
	if t.DisplayName != "" {
		return t.DisplayName
	}
	return t.ID
}

func appNotFound(appID string, t directory.Tenant) *aadError {
	return newAADError(http.StatusBadRequest, "unauthorized_client", 700016,
		"Application with identifier '%s' was not found in the directory '%s' (tenant %s). This can happen if the application "+
			"has not been installed by the administrator of the tenant or consented to by any user in the tenant. "+
			"You may have sent your authentication request to the wrong tenant.", limit(appID), tenantName(t), t.ID)
}

// signInError turns the directory's verdict on a client into Entra ID's error.
func signInError(err error, appID string, t directory.Tenant) *aadError {
	switch {
	case errors.Is(err, directory.ErrTenantNotFound):
		return tenantNotFound(t.ID)
	case errors.Is(err, directory.ErrApplicationNotFound):
		return appNotFound(appID, t)
	case errors.Is(err, directory.ErrServicePrincipalNotFound):
		return newAADError(http.StatusUnauthorized, "invalid_client", 7000229,
			"The client application %s is missing service principal in the tenant %s. An app registration signs in through "+
				"its service principal: create it with 'az ad sp create --id %s'. See instructions here: "+
				"https://go.microsoft.com/fwlink/?linkid=2225119", appID, t.ID, appID)
	case errors.Is(err, directory.ErrInvalidClientSecret):
		return newAADError(http.StatusUnauthorized, "invalid_client", 7000215,
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "+
				"not the client secret ID, for a secret added to app '%s'.", appID)
	case errors.Is(err, directory.ErrClientSecretExpired):
		return newAADError(http.StatusUnauthorized, "invalid_client", 7000222,
			"The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: "+
				"https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", appID)
	}
	return newAADError(http.StatusInternalServerError, "server_error", 50000, "There was an error issuing a token: %v", err)
}

// verifyAssertion checks a certificate-signed client assertion (private_key_jwt) the way
// Entra ID does: the certificate named by its thumbprint must be registered on the app, the
// signature must verify with it, and the claims must name this client, this token endpoint, a
// current time window and a jti not seen before.
func (s *Service) verifyAssertion(tenant, clientID, raw string, t directory.Tenant) (directory.ServicePrincipal, *aadError) {
	var none directory.ServicePrincipal
	var claims jwt.RegisteredClaims
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &claims)
	if err != nil {
		return none, newAADError(http.StatusBadRequest, "invalid_request", 50027,
			"JWT token is invalid or malformed: the client_assertion could not be read (%v).", err)
	}
	if alg := tok.Method.Alg(); alg != jwt.SigningMethodPS256.Alg() && alg != jwt.SigningMethodRS256.Alg() {
		return none, newAADError(http.StatusUnauthorized, "invalid_client", 700027,
			"Client assertion contains an invalid signature. [Reason - The signing algorithm '%s' is not accepted: sign with PS256 (or RS256).]", limit(alg))
	}
	thumb, ok := headerThumbprint(tok.Header)
	if !ok {
		return none, newAADError(http.StatusUnauthorized, "invalid_client", 700027,
			"Client assertion contains an invalid signature. [Reason - The key was not found: the assertion's header carries "+
				"no x5t#S256 (SHA-256) or x5t (SHA-1) certificate thumbprint.]")
	}
	thumbHex := strings.ToUpper(hex.EncodeToString(thumb))
	kc, sp, err := s.dir.CertificateByThumbprint(tenant, clientID, thumb)
	if errors.Is(err, directory.ErrCertificateNotFound) {
		return none, newAADError(http.StatusUnauthorized, "invalid_client", 700027,
			"Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '%s', "+
				"Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s' "+
				"(az ad app credential list --id %s --cert). A certificate counts only between its start and end dates.]",
			thumbHex, clientID, clientID)
	}
	if err != nil {
		return none, signInError(err, clientID, t)
	}
	pub, err := kc.PublicKey()
	if err != nil {
		return none, newAADError(http.StatusUnauthorized, "invalid_client", 700027,
			"Client assertion contains an invalid signature. [Reason - The registered certificate's key is unusable: %v]", err)
	}
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"PS256", "RS256"}), jwt.WithoutClaimsValidation()).
		ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return pub, nil })
	if err != nil {
		return none, newAADError(http.StatusUnauthorized, "invalid_client", 700027,
			"Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value., "+
				"Thumbprint of key used by client: '%s', Found key 'Start=%s, End=%s']",
			thumbHex, kc.StartDateTime.UTC().Format("01/02/2006 15:04:05"), kc.EndDateTime.UTC().Format("01/02/2006 15:04:05"))
	}

	if claims.Issuer != claims.Subject {
		return none, newAADError(http.StatusUnauthorized, "invalid_client", 50048,
			"Subject mismatches Issuer claim in the client assertion. Both must be the client ID, '%s'.", clientID)
	}
	if !strings.EqualFold(claims.Issuer, clientID) {
		return none, newAADError(http.StatusUnauthorized, "invalid_client", 700021,
			"Client assertion application identifier doesn't match 'client_id' parameter. The assertion names '%s', the request '%s'. %s",
			limit(claims.Issuer), clientID, certCredsDoc)
	}
	if !audienceIsTokenEndpoint(claims.Audience, tenant) {
		return none, newAADError(http.StatusUnauthorized, "invalid_client", 50012,
			"Client assertion audience claim does not match Realm issuer. The aud claim is '%s'; it must be the token endpoint, '%s'.",
			limit(strings.Join(claims.Audience, " ")), tokenEndpoint(Host, tenant))
	}
	if claims.ExpiresAt == nil || claims.ID == "" {
		return none, newAADError(http.StatusBadRequest, "invalid_request", 50027,
			"JWT token is invalid or malformed: a client assertion must carry the 'exp' and 'jti' claims.")
	}
	now := s.now()
	exp := claims.ExpiresAt.Time
	nbf := time.Unix(0, 0)
	if claims.NotBefore != nil {
		nbf = claims.NotBefore.Time
	}
	if now.After(exp.Add(clockSkew)) || nbf.After(now.Add(clockSkew)) || exp.After(now.Add(maxAssertionLifetime)) {
		return none, newAADError(http.StatusUnauthorized, "invalid_client", 700024,
			"Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. "+
				"(An assertion may be valid for at most a day.) %s", assertionTime(now), assertionTime(nbf), assertionTime(exp), certCredsDoc)
	}
	if !s.replay.firstUse(t.ID+"|"+strings.ToLower(clientID)+"|"+claims.ID, exp.Add(clockSkew), now) {
		return none, newAADError(http.StatusUnauthorized, "invalid_client", 50013,
			"Assertion is invalid: the client assertion with jti '%s' was already used. An assertion is good for one request: "+
				"make a new one, with a new jti, for every token request (MSAL does).", limit(claims.ID))
	}
	return sp, nil
}

// headerThumbprint reads the certificate thumbprint from an assertion's header: x5t#S256 as
// MSAL sends it (standard base64, though base64url is accepted too) or the older SHA-1 x5t.
func headerThumbprint(h map[string]any) ([]byte, bool) {
	for _, k := range []struct {
		name string
		size int
	}{{"x5t#S256", 32}, {"x5t", 20}} {
		v, ok := h[k.name].(string)
		if !ok {
			continue
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(v); err == nil && len(b) == k.size {
				return b, true
			}
		}
	}
	return nil, false
}

func tokenEndpoint(host, tenant string) string {
	return "https://" + host + "/" + tenant + "/oauth2/v2.0/token"
}

// audienceIsTokenEndpoint accepts the token endpoint on any of Entra's hosts, v2.0 or v1.
func audienceIsTokenEndpoint(aud []string, tenant string) bool {
	for _, a := range aud {
		for _, h := range aliases {
			if strings.EqualFold(a, tokenEndpoint(h, tenant)) || strings.EqualFold(a, "https://"+h+"/"+tenant+"/oauth2/token") {
				return true
			}
		}
	}
	return false
}

// replayCache remembers the jti of every accepted client assertion until it expires, so a
// captured assertion cannot be replayed. It holds only assertions that verified, each for at
// most a day, and forgets expired ones at most a minute after they expire.
type replayCache struct {
	mu        sync.Mutex
	seen      map[string]time.Time // key → until when it counts as used
	nextSweep time.Time
}

// firstUse records key as used until the given time and reports whether it was unused.
func (c *replayCache) firstUse(key string, until, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	if !now.Before(c.nextSweep) {
		maps.DeleteFunc(c.seen, func(_ string, t time.Time) bool { return now.After(t) })
		c.nextSweep = now.Add(time.Minute)
	}
	if t, ok := c.seen[key]; ok && !now.After(t) {
		return false
	}
	c.seen[key] = until
	return true
}
