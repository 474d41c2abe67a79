package arm

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

// Handler serves management.azure.com.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// call is one authenticated request.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	claims *entra.Claims
	query  url.Values
	segs   []string // unescaped path segments
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now() // wall time: this measures the request
	rec := reqlog.NewStatusRecorder(w)
	id := uuid.NewString()
	rec.Header().Set("x-ms-request-id", id)
	rec.Header().Set("x-ms-correlation-request-id", id)
	var appID string
	err := func() (err *apiError) {
		defer func() {
			// A bug here must not take the local cloud down, nor answer a bad request with a 500 silently.
			if v := recover(); v != nil {
				s.log.Error("arm handler panicked", "service", "arm", "panic", fmt.Sprint(v))
				err = internal(fmt.Errorf("%v", v))
			}
		}()
		claims, aerr := s.authenticate(r)
		if aerr != nil {
			rec.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://`+entra.Host+`/`+s.tenant+`", error="invalid_token", error_description="`+aerr.code+`"`)
			return aerr
		}
		appID = claims.AppID
		q := r.URL.Query()
		if q.Get("api-version") == "" {
			return badRequest("MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
		}
		segs, aerr := splitPath(r.URL.EscapedPath())
		if aerr != nil {
			return aerr
		}
		return s.route(&call{w: rec, r: r, claims: claims, query: q, segs: segs})
	}()
	if err != nil {
		writeError(rec, err)
	}
	attrs := []slog.Attr{
		slog.String("service", "arm"), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", rec.Status), slog.String("appid", appID), slog.Duration("duration", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.code))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// authenticate checks the bearer token: signed by the local Entra ID, for ARM, of the
// subscription's tenant, current, and of a principal that still exists.
func (s *Service) authenticate(r *http.Request) (*entra.Claims, *apiError) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if h == "" {
		return nil, newError(http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
	}
	scheme, raw, _ := strings.Cut(h, " ")
	raw = strings.TrimSpace(raw)
	if !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return nil, newError(http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is provided in an invalid format.")
	}
	var claims *entra.Claims
	var err error
	for _, aud := range Audiences {
		if claims, err = s.tokens.ValidateAccessToken(raw, aud); !errors.Is(err, entra.ErrWrongAudience) {
			break
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, entra.ErrExpired):
		return nil, newError(http.StatusUnauthorized, "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time (%v).", err)
	case errors.Is(err, entra.ErrWrongAudience):
		return nil, newError(http.StatusUnauthorized, "InvalidAuthenticationTokenAudience",
			"The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences '%s' (%v).",
			strings.Join(Audiences, "','"), err)
	default:
		return nil, newError(http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid (%v).", err)
	}
	if !strings.EqualFold(claims.TenantID, s.tenant) {
		return nil, newError(http.StatusUnauthorized, "InvalidAuthenticationTokenTenant",
			"The access token is from the wrong issuer '%s'. It must match the tenant '%s' associated with this subscription. Please use the authority (URL) 'https://%s/%s' to get the token.",
			entra.AccessTokenIssuer(claims.TenantID), entra.AccessTokenIssuer(s.tenant), entra.Host, s.tenant)
	}
	return claims, nil
}

// splitPath unescapes the path segment by segment, so an encoded "/" stays inside a name.
func splitPath(escaped string) ([]string, *apiError) {
	trimmed := strings.Trim(escaped, "/")
	if trimmed == "" {
		return nil, nil
	}
	segs := strings.Split(trimmed, "/")
	for i, p := range segs {
		u, err := url.PathUnescape(p)
		if err != nil || u == "" {
			return nil, badRequest("InvalidRequestUri", "The request URI '%s' is not valid.", reqlog.Limit(escaped))
		}
		segs[i] = u
	}
	return segs, nil
}

func is(seg, want string) bool { return strings.EqualFold(seg, want) }

// route dispatches on the path. ARM compares the fixed segments case-insensitively.
func (s *Service) route(c *call) *apiError {
	seg := c.segs
	if len(seg) == 0 || !is(seg[0], "subscriptions") {
		if len(seg) >= 2 && is(seg[0], "providers") && is(seg[1], "Microsoft.Authorization") {
			return s.authorization(c, "", seg[2:])
		}
		return notFound("InvalidRequestUri", "The local Resource Manager serves /subscriptions/%s and below; there is nothing at %s.", s.sub, reqlog.Limit(c.r.URL.Path))
	}
	if len(seg) == 1 {
		return s.listSubscriptions(c)
	}
	if err := s.checkSubscription(seg[1]); err != nil {
		return err
	}
	// Role definitions and assignments hang off any scope: {scope}/providers/Microsoft.Authorization/...
	for i := len(seg) - 2; i >= 2; i-- {
		if is(seg[i], "providers") && is(seg[i+1], "Microsoft.Authorization") {
			return s.authorization(c, "/"+strings.Join(seg[:i], "/"), seg[i+2:])
		}
	}
	switch {
	case len(seg) == 2:
		return s.getSubscription(c)
	case !is(seg[2], "resourceGroups"):
		return notFound("InvalidRequestUri", "The local Resource Manager emulates resource groups and the resources in them; there is nothing at %s.", reqlog.Limit(c.r.URL.Path))
	case len(seg) == 3:
		return s.listGroups(c)
	case len(seg) == 4:
		return s.resourceGroup(c, seg[3])
	case len(seg) == 5 && is(seg[4], "resources"):
		return s.listGroupResources(c, seg[3])
	case len(seg) >= 8 && is(seg[4], "providers"):
		return s.resourceRequest(c, seg[3], seg[5]+"/"+seg[6], seg[7], seg[8:])
	}
	return notFound("InvalidRequestUri", "There is no operation at %s.", reqlog.Limit(c.r.URL.Path))
}

func (s *Service) checkSubscription(id string) *apiError {
	if _, err := uuid.Parse(id); err != nil {
		return badRequest("InvalidSubscriptionId", "The provided subscription identifier '%s' is malformed or invalid.", reqlog.Limit(id))
	}
	if !strings.EqualFold(id, s.sub) {
		return notFound("SubscriptionNotFound", "The subscription '%s' could not be found. The local cloud has one subscription, %s.", strings.ToLower(id), s.sub)
	}
	return nil
}

// only checks the method against those an endpoint supports.
func only(c *call, methods ...string) *apiError {
	for _, m := range methods {
		if c.r.Method == m {
			return nil
		}
	}
	c.w.Header().Set("Allow", strings.Join(methods, ", "))
	return methodNotAllowed(c.r.Method, methods...)
}
