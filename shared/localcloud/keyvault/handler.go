package keyvault

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

// apiVersions are the api-version values accepted, oldest first: every 7.x the SDKs have used,
// and the dated versions of the current SDKs (azsecrets 1.5 sends 2026-04-01, the JS SDK 2025-07-01).
var apiVersions = []string{
	"7.0", "7.1", "7.2", "7.3-preview", "7.3", "7.4-preview.1", "7.4", "7.5-preview.1", "7.5",
	"7.6-preview.1", "7.6-preview.2", "7.6", "2025-07-01", "2026-04-01",
}

const serviceVersion = "1.9.0.0"

// Handler serves the data plane of every vault: requests for <name>.vault.azure.net are routed
// by their Host header.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// logInfo is what a request's log line says about its caller: never a token or a value.
type logInfo struct{ op, appID, objectID string }

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now() // wall time, not the injected clock: this measures the request itself
	rec := reqlog.NewStatusRecorder(w)
	var li logInfo
	s.serve(rec, r, &li)
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("service", "keyvault"), slog.String("method", r.Method), slog.String("host", r.Host),
		slog.String("path", r.URL.Path), slog.String("op", li.op), slog.Int("status", rec.Status),
		slog.String("appid", li.appID), slog.String("oid", li.objectID),
		slog.Duration("duration", time.Since(start)))
}

// call is one authorized request, as an operation sees it.
type call struct {
	vault         Vault
	name, version string
	apiVersion    string
	query         url.Values
	body          []byte
	path          string
}

// operation is one REST operation: the RBAC data action it needs, and whether that action is
// checked on the vault (lists, restore) or on the secret it names (where a role assigned on just
// that secret also applies).
type operation struct {
	name       string
	action     string
	vaultScope bool
	hasBody    bool
	run        func(s *Service, c *call) (int, any, error)
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request, li *logInfo) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("x-ms-request-id", uuid.NewString())
	h.Set("x-ms-keyvault-service-version", serviceVersion)

	name, err := vaultNameFromHost(r.Host)
	if err != nil {
		writeError(w, err)
		return
	}
	v, ok := s.Vault(name)
	if !ok {
		writeError(w, vaultNotFound(name))
		return
	}
	// Authentication comes first, before even the api-version, so the SDK's first, token-less
	// request always gets the challenge it needs.
	claims, err := s.authenticate(r, v)
	if err != nil {
		// Name the step in the log, so a learner sees the challenge the SDK's first request gets.
		li.op = "Challenge"
		if r.Header.Get("Authorization") != "" {
			li.op = "RefusedToken"
		}
		h.Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s", resource="%s"`, entra.Authority(v.TenantID), Audience))
		writeError(w, err)
		return
	}
	li.appID, li.objectID = claims.AppID, claims.ObjectID
	query := r.URL.Query()
	apiVersion, err := checkAPIVersion(query)
	if err != nil {
		writeError(w, err)
		return
	}
	op, secretName, ver, err := route(r.Method, r.URL.EscapedPath())
	if err != nil {
		writeError(w, err)
		return
	}
	li.op = op.name
	resource := v.ResourceID
	if !op.vaultScope {
		if err := checkSecretName(secretName); err != nil {
			writeError(w, err)
			return
		}
		resource += "/secrets/" + secretName
	}
	if !s.dir.IsAllowed(claims.ObjectID, op.action, resource) {
		writeError(w, forbidden(claims, op.action, resource, v))
		return
	}
	c := &call{vault: v, name: secretName, version: ver, apiVersion: apiVersion, query: query,
		path: "/" + strings.TrimLeft(r.URL.EscapedPath(), "/")}
	if op.hasBody {
		if c.body, err = readBody(w, r); err != nil {
			writeError(w, err)
			return
		}
	}
	status, out, err := op.run(s, c)
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(status)
	if out != nil {
		b, _ := json.Marshal(out) // our own types always marshal
		w.Write(b)
	}
}

// vaultNameFromHost takes the vault's name from <name>.vault.azure.net[:port].
func vaultNameFromHost(hostport string) (string, error) {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	name, ok := strings.CutSuffix(host, "."+DNSSuffix)
	if !ok || name == "" || strings.Contains(name, ".") {
		return "", &apiError{status: http.StatusNotFound, code: "NotFound",
			message: fmt.Sprintf("%q is not a Key Vault host: vaults are served at <name>.%s.", host, DNSSuffix)}
	}
	return name, nil
}

func (s *Service) authenticate(r *http.Request, v Vault) (*entra.Claims, error) {
	scheme, raw, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	raw = strings.TrimSpace(raw)
	if !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return nil, unauthorized("AKV10000: Request is missing a Bearer or PoP token.")
	}
	claims, err := s.tokens.ValidateAccessToken(raw, Audience)
	if err != nil {
		return nil, unauthorized(tokenErrorMessage(err, v))
	}
	// A valid token of another tenant is still refused: the vault trusts only its own tenant.
	issuers := []string{entra.AccessTokenIssuer(v.TenantID), "https://" + entra.Host + "/" + v.TenantID + "/v2.0"}
	if !strings.EqualFold(claims.TenantID, v.TenantID) || (claims.Issuer != "" && !slices.Contains(issuers, claims.Issuer)) {
		found := claims.Issuer
		if found == "" {
			found = entra.AccessTokenIssuer(claims.TenantID)
		}
		return nil, unauthorized(fmt.Sprintf("AKV10032: Invalid issuer. Expected one of %s, found %s.", strings.Join(issuers, ", "), found))
	}
	return claims, nil
}

// tokenErrorMessage words a refused token the way Key Vault does where its wording is known
// (AKV10022, AKV10032, AKV10046, S2S12086), and names the reason in the same style otherwise.
func tokenErrorMessage(err error, v Vault) string {
	switch {
	case errors.Is(err, entra.ErrExpired):
		return "[TokenExpired] Error validating token: 'S2S12086'."
	case errors.Is(err, entra.ErrNotYetValid):
		return fmt.Sprintf("[TokenNotYetValid] Error validating token: the token is not valid yet (%v).", err)
	case errors.Is(err, entra.ErrWrongAudience):
		return fmt.Sprintf("AKV10022: Invalid audience. Expected %s (%v).", Audience, err)
	case errors.Is(err, entra.ErrWrongIssuer):
		return fmt.Sprintf("AKV10032: Invalid issuer. Expected one of %s, %s (%v).",
			entra.AccessTokenIssuer(v.TenantID), "https://"+entra.Host+"/"+v.TenantID+"/v2.0", err)
	case errors.Is(err, entra.ErrBadSignature):
		return fmt.Sprintf("AKV10046: Unable to resolve the key used for signature validation, or the signature does not verify (%v).", err)
	case errors.Is(err, entra.ErrMalformedToken):
		return fmt.Sprintf("[MalformedToken] Error validating token: the bearer token is not a well-formed JWT (%v).", err)
	case errors.Is(err, entra.ErrUnknownPrincipal):
		return fmt.Sprintf("[PrincipalNotFound] Error validating token: the token's principal no longer exists in the tenant (%v).", err)
	default:
		return fmt.Sprintf("[AggregatedAuthenticationFailure] Error validating token: 'S2S17001' (%v).", err)
	}
}

func unauthorized(message string) *apiError {
	return &apiError{status: http.StatusUnauthorized, code: "Unauthorized", message: message}
}

// forbidden is Key Vault's RBAC refusal, naming caller, action and resource as the service does.
func forbidden(c *entra.Claims, action, resource string, v Vault) *apiError {
	iss := c.Issuer
	if iss == "" {
		iss = entra.AccessTokenIssuer(c.TenantID)
	}
	return &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "ForbiddenByRbac", message: fmt.Sprintf(
		"Caller is not authorized to perform action on resource.\r\n"+
			"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n"+
			"Caller: appid=%s;oid=%s;iss=%s\r\nAction: '%s'\r\nResource: '%s'\r\nAssignment: (not found)\r\n"+
			"DenyAssignmentId: null\r\nDecisionReason: null \r\nVault: %s;location=local\r\n",
		c.AppID, c.ObjectID, iss, action, strings.ToLower(resource), v.Name)}
}

func checkAPIVersion(q url.Values) (string, error) {
	v := q.Get("api-version")
	if v == "" {
		return "", badParameter("The api-version query parameter is missing. Supported versions: " + strings.Join(apiVersions, ", ") + ".")
	}
	if !slices.Contains(apiVersions, v) {
		return "", badParameter(fmt.Sprintf("The specified version (%s) is not recognized. Consider using the latest supported version (%s). Supported versions: %s.",
			v, apiVersions[len(apiVersions)-1], strings.Join(apiVersions, ", ")))
	}
	return v, nil
}

// route maps a method and escaped path to an operation and the secret name and version in it.
// Segments are unescaped one by one, so an encoded "/" stays inside a name (and fails its check).
func route(method, escapedPath string) (op operation, name, ver string, err error) {
	seg := strings.Split(strings.TrimLeft(escapedPath, "/"), "/")
	if len(seg) > 1 && seg[len(seg)-1] == "" {
		seg = seg[:len(seg)-1] // "/secrets/{name}/" is the latest version, as the SDKs send it
	}
	for i, p := range seg {
		if seg[i], err = url.PathUnescape(p); err != nil {
			return op, "", "", badParameter("The request path is not validly escaped.")
		}
	}
	allowed := func(ops map[string]operation) (operation, error) {
		if o, ok := ops[method]; ok {
			return o, nil
		}
		return operation{}, methodNotAllowed(method, escapedPath, ops)
	}
	switch {
	case len(seg) == 1 && seg[0] == "secrets":
		op, err = allowed(map[string]operation{http.MethodGet: opListSecrets})
	case len(seg) == 1 && seg[0] == "deletedsecrets":
		op, err = allowed(map[string]operation{http.MethodGet: opListDeletedSecrets})
	case len(seg) == 2 && seg[0] == "secrets" && seg[1] == "restore" && method == http.MethodPost:
		op = opRestoreSecret
	case len(seg) == 2 && seg[0] == "secrets":
		name = seg[1]
		op, err = allowed(map[string]operation{http.MethodGet: opGetSecret, http.MethodPut: opSetSecret,
			http.MethodPatch: opUpdateSecret, http.MethodDelete: opDeleteSecret})
	case len(seg) == 2 && seg[0] == "deletedsecrets":
		name = seg[1]
		op, err = allowed(map[string]operation{http.MethodGet: opGetDeletedSecret, http.MethodDelete: opPurgeDeletedSecret})
	case len(seg) == 3 && seg[0] == "secrets" && seg[2] == "versions":
		name = seg[1]
		op, err = allowed(map[string]operation{http.MethodGet: opListVersions})
	case len(seg) == 3 && seg[0] == "secrets" && seg[2] == "backup" && method == http.MethodPost:
		name, op = seg[1], opBackupSecret
	case len(seg) == 3 && seg[0] == "secrets":
		name, ver = seg[1], seg[2]
		op, err = allowed(map[string]operation{http.MethodGet: opGetSecret, http.MethodPatch: opUpdateSecret})
	case len(seg) == 3 && seg[0] == "deletedsecrets" && seg[2] == "recover":
		name = seg[1]
		op, err = allowed(map[string]operation{http.MethodPost: opRecoverDeletedSecret})
	default:
		err = &apiError{status: http.StatusNotFound, code: "NotFound", message: fmt.Sprintf(
			"There is no operation at %s. The local cloud emulates the secrets API (/secrets, /deletedsecrets); keys and certificates are not emulated.", escapedPath)}
	}
	return op, name, ver, err
}

func methodNotAllowed(method, path string, ops map[string]operation) error {
	var methods []string
	for m := range ops {
		methods = append(methods, m)
	}
	slices.Sort(methods)
	return &apiError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed", message: fmt.Sprintf(
		"The HTTP method %s is not supported at %s; it supports %s.", method, path, strings.Join(methods, ", "))}
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "RequestEntityTooLarge",
			message: fmt.Sprintf("The request body is larger than %d bytes.", maxBodyBytes)}
	}
	if err != nil {
		return nil, badParameter("The request body could not be read.")
	}
	return b, nil
}

// decodeBody parses a JSON request body, wording errors without echoing the body: it may hold a
// secret value.
func decodeBody(b []byte, v any) error {
	err := json.Unmarshal(b, v)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return badParameter(fmt.Sprintf("Property '%s' has an invalid value: a JSON %s is not accepted there.", typeErr.Field, typeErr.Value))
	default:
		return badParameter("The request body is not valid JSON for this operation.")
	}
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, code: "InternalServerError", message: err.Error()}
	}
	b, _ := json.Marshal(ae.body())
	w.WriteHeader(ae.status)
	w.Write(b)
}

// ---- operations

var (
	opGetSecret = operation{name: "GetSecret", action: directory.ActionGetSecret,
		run: func(s *Service, c *call) (int, any, error) {
			b, err := s.getSecret(c.vault.Name, c.name, c.version)
			return http.StatusOK, b, err
		}}
	opSetSecret = operation{name: "SetSecret", action: directory.ActionSetSecret, hasBody: true,
		run: func(s *Service, c *call) (int, any, error) {
			var p setParams
			if err := decodeBody(c.body, &p); err != nil {
				return 0, nil, err
			}
			b, err := s.setSecret(c.vault.Name, c.name, p)
			return http.StatusOK, b, err
		}}
	opUpdateSecret = operation{name: "UpdateSecret", action: directory.ActionUpdateSecret, hasBody: true,
		run: func(s *Service, c *call) (int, any, error) {
			var p updateParams
			if err := decodeBody(c.body, &p); err != nil {
				return 0, nil, err
			}
			b, err := s.updateSecret(c.vault.Name, c.name, c.version, p)
			return http.StatusOK, b, err
		}}
	opDeleteSecret = operation{name: "DeleteSecret", action: directory.ActionDeleteSecret,
		run: func(s *Service, c *call) (int, any, error) {
			b, err := s.deleteSecret(c.vault.Name, c.name)
			return http.StatusOK, b, err
		}}
	opGetDeletedSecret = operation{name: "GetDeletedSecret", action: directory.ActionReadMetadata,
		run: func(s *Service, c *call) (int, any, error) {
			b, err := s.getDeletedSecret(c.vault.Name, c.name)
			return http.StatusOK, b, err
		}}
	opPurgeDeletedSecret = operation{name: "PurgeDeletedSecret", action: directory.ActionPurge,
		run: func(s *Service, c *call) (int, any, error) {
			return http.StatusNoContent, nil, s.purgeSecret(c.vault.Name, c.name)
		}}
	opRecoverDeletedSecret = operation{name: "RecoverDeletedSecret", action: directory.ActionRecover,
		run: func(s *Service, c *call) (int, any, error) {
			b, err := s.recoverSecret(c.vault.Name, c.name)
			return http.StatusOK, b, err
		}}
	opBackupSecret = operation{name: "BackupSecret", action: directory.ActionBackup,
		run: func(s *Service, c *call) (int, any, error) {
			blob, err := s.backupSecret(c.vault.Name, c.name)
			return http.StatusOK, map[string]string{"value": base64.RawURLEncoding.EncodeToString(blob)}, err
		}}
	opRestoreSecret = operation{name: "RestoreSecret", action: directory.ActionRestore, vaultScope: true, hasBody: true,
		run: func(s *Service, c *call) (int, any, error) {
			var p struct {
				Value *string `json:"value"`
			}
			if err := decodeBody(c.body, &p); err != nil {
				return 0, nil, err
			}
			if p.Value == nil {
				return 0, nil, badParameter("The request body must contain the backup blob: {\"value\": \"<base64url>\"}.")
			}
			blob, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(*p.Value, "="))
			if err != nil {
				return 0, nil, errCorruptBackup
			}
			b, err := s.restoreSecret(c.vault.Name, blob)
			return http.StatusOK, b, err
		}}
	opListSecrets = operation{name: "ListSecrets", action: directory.ActionReadMetadata, vaultScope: true,
		run: func(s *Service, c *call) (int, any, error) {
			return list(c, func(after string, n int) (page[SecretItem], error) { return s.listSecrets(c.vault.Name, after, n) })
		}}
	opListVersions = operation{name: "ListSecretVersions", action: directory.ActionReadMetadata,
		run: func(s *Service, c *call) (int, any, error) {
			return list(c, func(after string, n int) (page[SecretItem], error) {
				return s.listVersions(c.vault.Name, c.name, after, n)
			})
		}}
	opListDeletedSecrets = operation{name: "ListDeletedSecrets", action: directory.ActionReadMetadata, vaultScope: true,
		run: func(s *Service, c *call) (int, any, error) {
			return list(c, func(after string, n int) (page[DeletedSecretItem], error) {
				return s.listDeletedSecrets(c.vault.Name, after, n)
			})
		}}
)

// listResult is a page of a list; NextLink is null on the last page.
type listResult[T any] struct {
	Value    []T     `json:"value"`
	NextLink *string `json:"nextLink"`
}

// skipToken is the opaque continuation carried in nextLink's $skiptoken, shaped like Azure's.
type skipToken struct {
	NextMarker string `json:"NextMarker"`
}

// list serves one page: maxresults (1–25, default 25) entries after the $skiptoken's marker,
// and a nextLink on the same vault to the rest.
func list[T any](c *call, fetch func(after string, n int) (page[T], error)) (int, any, error) {
	size := maxPageSize
	if m := c.query.Get("maxresults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > maxPageSize {
			return 0, nil, badParameter(fmt.Sprintf("The value %q of maxresults is invalid: it must be an integer from 1 to %d.", m, maxPageSize))
		}
		size = n
	}
	var after string
	if t := c.query.Get("$skiptoken"); t != "" {
		raw, err := base64.RawURLEncoding.DecodeString(t)
		var st skipToken
		if err != nil || json.Unmarshal(raw, &st) != nil || st.NextMarker == "" {
			return 0, nil, badParameter("The $skiptoken is invalid: use the nextLink of the previous page as it is.")
		}
		after = st.NextMarker
	}
	p, err := fetch(after, size)
	if err != nil {
		return 0, nil, err
	}
	res := listResult[T]{Value: p.items}
	if res.Value == nil {
		res.Value = []T{}
	}
	if p.next != "" {
		tok, _ := json.Marshal(skipToken{NextMarker: p.next})
		q := url.Values{"api-version": {c.apiVersion}, "$skiptoken": {base64.RawURLEncoding.EncodeToString(tok)}}
		if c.query.Get("maxresults") != "" {
			q.Set("maxresults", strconv.Itoa(size))
		}
		next := "https://" + c.vault.Name + "." + DNSSuffix + ":443" + c.path + "?" + q.Encode()
		res.NextLink = &next
	}
	return http.StatusOK, res, nil
}
