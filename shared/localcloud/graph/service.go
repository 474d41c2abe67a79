package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

// Host is the Graph endpoint the front door routes to Handler.
const Host = "graph.microsoft.com"

// Audience is the resource Graph tokens are issued for.
const Audience = "https://graph.microsoft.com"

const (
	version      = "v1.0"
	baseURL      = "https://" + Host + "/" + version
	maxBodyBytes = 4 << 20
)

// TokenValidator checks an access token and returns its claims; *entra.Service satisfies it.
type TokenValidator interface {
	ValidateAccessToken(raw, audience string) (*entra.Claims, error)
}

// Options configure a Service.
type Options struct {
	Directory *directory.Directory
	Tokens    TokenValidator
	Logger    *slog.Logger // nil = discard
}

// Service is the local Microsoft Graph. It keeps no state of its own: everything is in the directory.
type Service struct {
	dir    *directory.Directory
	tokens TokenValidator
	log    *slog.Logger
}

// New makes the service.
func New(opts Options) (*Service, error) {
	if opts.Directory == nil || opts.Tokens == nil {
		return nil, errors.New("graph: Options need a Directory and Tokens")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{dir: opts.Directory, tokens: opts.Tokens, log: log}, nil
}

// Handler serves graph.microsoft.com.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// call is one authenticated request.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	tenant string // the caller's tenant: the only one it sees
	query  url.Values
	segs   []string
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := reqlog.NewStatusRecorder(w)
	reqID := uuid.NewString()
	h := rec.Header()
	h.Set("request-id", reqID)
	h.Set("client-request-id", clientRequestID(r, reqID))
	h.Set("OData-Version", "4.0")
	var appID string
	err := func() (err *graphError) {
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("graph handler panicked", "service", "graph", "panic", fmt.Sprint(v))
				err = &graphError{status: http.StatusInternalServerError, code: "generalException", message: "The local Graph failed on this request."}
			}
		}()
		claims, gerr := s.authenticate(r)
		if gerr != nil {
			return gerr
		}
		appID = claims.AppID
		segs, gerr := splitPath(r.URL.EscapedPath())
		if gerr != nil {
			return gerr
		}
		return s.route(&call{w: rec, r: r, tenant: claims.TenantID, query: r.URL.Query(), segs: segs})
	}()
	if err != nil {
		s.writeError(rec, r, reqID, err)
	}
	attrs := []slog.Attr{
		slog.String("service", "graph"), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", rec.Status), slog.String("appid", appID), slog.Duration("duration", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.code))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

func clientRequestID(r *http.Request, fallback string) string {
	if id, err := uuid.Parse(r.Header.Get("client-request-id")); err == nil {
		return id.String()
	}
	return fallback
}

func (s *Service) authenticate(r *http.Request) (*entra.Claims, *graphError) {
	unauthorized := func(msg string) *graphError {
		return &graphError{status: http.StatusUnauthorized, code: "InvalidAuthenticationToken", message: msg}
	}
	scheme, raw, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	raw = strings.TrimSpace(raw)
	if !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return nil, unauthorized("Access token is empty.")
	}
	claims, err := s.tokens.ValidateAccessToken(raw, Audience)
	switch {
	case err == nil:
		return claims, nil
	case errors.Is(err, entra.ErrExpired):
		return nil, unauthorized("Lifetime validation failed, the token is expired.")
	case errors.Is(err, entra.ErrWrongAudience):
		return nil, unauthorized("Access token validation failure. Invalid audience.")
	case errors.Is(err, entra.ErrBadSignature):
		return nil, unauthorized("Access token validation failure. Invalid signature.")
	default:
		return nil, unauthorized(fmt.Sprintf("Access token validation failure (%v).", err))
	}
}

// splitPath takes /v1.0/... apart into unescaped segments.
func splitPath(escaped string) ([]string, *graphError) {
	segs := strings.Split(strings.Trim(escaped, "/"), "/")
	if len(segs) == 0 || segs[0] != version {
		return nil, badRequest("BadRequest", "Invalid version: the local Graph serves /%s only.", version)
	}
	segs = segs[1:]
	for i, p := range segs {
		u, err := url.PathUnescape(p)
		if err != nil || u == "" {
			return nil, badRequest("BadRequest", "Resource not found for the segment '%s'.", reqlog.Limit(p))
		}
		segs[i] = u
	}
	return segs, nil
}

func (s *Service) route(c *call) *graphError {
	seg := c.segs
	if len(seg) == 0 {
		return badRequest("BadRequest", "Resource not found for the segment ''.")
	}
	head := seg[0]
	switch {
	case strings.EqualFold(head, "me"):
		return badRequest("BadRequest", "/me request is only valid with delegated authentication flow.")
	case strings.EqualFold(head, "applications"):
		return s.applications(c, "", seg[1:])
	case strings.EqualFold(head, "servicePrincipals"):
		return s.servicePrincipals(c, "", seg[1:])
	}
	if appID, ok := byAppID("applications", head); ok {
		return s.applications(c, appID, seg[1:])
	}
	if appID, ok := byAppID("servicePrincipals", head); ok {
		return s.servicePrincipals(c, appID, seg[1:])
	}
	return badRequest("BadRequest", "Resource not found for the segment '%s'. The local Graph serves applications, servicePrincipals and me.", reqlog.Limit(head))
}

// byAppID recognises the alternate key segment "applications(appId='{appId}')".
func byAppID(collection, seg string) (string, bool) {
	prefix := collection + "(appId='"
	if len(seg) <= len(prefix)+2 || !strings.EqualFold(seg[:len(prefix)], prefix) || !strings.HasSuffix(seg, "')") {
		return "", false
	}
	return seg[len(prefix) : len(seg)-2], true
}

func only(c *call, methods ...string) *graphError {
	for _, m := range methods {
		if c.r.Method == m {
			return nil
		}
	}
	c.w.Header().Set("Allow", strings.Join(methods, ", "))
	return &graphError{status: http.StatusMethodNotAllowed, code: "Request_BadRequest",
		message: fmt.Sprintf("The HTTP method '%s' is not supported here; use %s.", reqlog.Limit(c.r.Method), strings.Join(methods, ", "))}
}

// ---- errors and JSON

type graphError struct {
	status  int
	code    string
	message string
}

func badRequest(code, format string, args ...any) *graphError {
	return &graphError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func notFound(id string) *graphError {
	return &graphError{status: http.StatusNotFound, code: "Request_ResourceNotFound",
		message: fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", reqlog.Limit(id))}
}

func internal(err error) *graphError {
	return &graphError{status: http.StatusInternalServerError, code: "generalException", message: "The local Graph could not save the change: " + err.Error()}
}

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, reqID string, e *graphError) {
	body := map[string]any{"error": map[string]any{
		"code": e.code, "message": e.message,
		"innerError": map[string]string{
			"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": reqID, "client-request-id": clientRequestID(r, reqID),
		},
	}}
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only this package's own types are written
	}
	_, _ = w.Write(b)
}

// decodeBody reads a capped JSON body into v; an empty body is {} when emptyOK.
func decodeBody(c *call, v any, emptyOK bool) *graphError {
	b, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return &graphError{status: http.StatusRequestEntityTooLarge, code: "Request_BadRequest",
			message: fmt.Sprintf("The request body is larger than %d bytes.", maxBodyBytes)}
	case err != nil:
		return badRequest("Request_BadRequest", "The request body could not be read.")
	case strings.TrimSpace(string(b)) == "":
		if emptyOK {
			return nil
		}
		return badRequest("Request_BadRequest", "Empty Payload. JSON content expected.")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("Request_BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
	}
	return nil
}

func graphTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
