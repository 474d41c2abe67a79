package entra

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
)

// maxAccessTokenLength refuses absurd input before any parsing; real tokens are 1–3 KB.
const maxAccessTokenLength = 16 << 10

// accessTokenClaims are the claims of an Entra ID v1 access token issued to an app.
type accessTokenClaims struct {
	Aud      string           `json:"aud"`
	Iss      string           `json:"iss"`
	Iat      *jwt.NumericDate `json:"iat"`
	Nbf      *jwt.NumericDate `json:"nbf"`
	Exp      *jwt.NumericDate `json:"exp"`
	AppID    string           `json:"appid"`
	AppIDACR string           `json:"appidacr"`
	IDP      string           `json:"idp"`
	IDTyp    string           `json:"idtyp"`
	OID      string           `json:"oid"`
	Sub      string           `json:"sub"`
	TID      string           `json:"tid"`
	UTI      string           `json:"uti"`
	Ver      string           `json:"ver"`
	XMSMirID string           `json:"xms_mirid,omitempty"`
}

var _ jwt.Claims = accessTokenClaims{}

// The jwt.Claims methods; validation itself is done by ValidateAccessToken against the
// injected clock and the directory.
func (c accessTokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.Exp, nil }
func (c accessTokenClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.Iat, nil }
func (c accessTokenClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.Nbf, nil }
func (c accessTokenClaims) GetIssuer() (string, error)                   { return c.Iss, nil }
func (c accessTokenClaims) GetSubject() (string, error)                  { return c.Sub, nil }
func (c accessTokenClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Aud}, nil
}

// IssueAccessToken mints an access token for a service principal to call resource (for
// example https://vault.azure.net). appidacr says how the client proved itself: ACRSecret or
// ACRCertificate; a managed identity's tokens use ACRCertificate and carry xms_mirid.
func (s *Service) IssueAccessToken(sp directory.ServicePrincipal, resource, appidacr string) (AccessToken, error) {
	if sp.ObjectID == "" || sp.AppID == "" || sp.TenantID == "" {
		return AccessToken{}, errors.New("entra: the service principal needs an object ID, an app ID and a tenant ID")
	}
	if resource == "" {
		return AccessToken{}, errors.New("entra: no resource to issue a token for")
	}
	if appidacr != ACRSecret && appidacr != ACRCertificate {
		return AccessToken{}, fmt.Errorf("entra: appidacr %q is neither %q (secret) nor %q (certificate)", appidacr, ACRSecret, ACRCertificate)
	}
	uti := make([]byte, 16)
	if _, err := rand.Read(uti); err != nil {
		return AccessToken{}, err
	}
	now := time.Unix(s.now().Unix(), 0)
	exp := now.Add(s.lifetime)
	iss := AccessTokenIssuer(sp.TenantID)
	c := accessTokenClaims{
		Aud: resource, Iss: iss,
		Iat: jwt.NewNumericDate(now), Nbf: jwt.NewNumericDate(now), Exp: jwt.NewNumericDate(exp),
		AppID: sp.AppID, AppIDACR: appidacr, IDP: iss, IDTyp: "app",
		OID: sp.ObjectID, Sub: sp.ObjectID, TID: sp.TenantID,
		UTI: base64.RawURLEncoding.EncodeToString(uti), Ver: "1.0",
		XMSMirID: sp.ManagedIdentityResourceID,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = s.signer.kid
	raw, err := tok.SignedString(s.signer.key)
	if err != nil {
		return AccessToken{}, err
	}
	return AccessToken{Token: raw, ExpiresOn: exp}, nil
}

// ValidateAccessToken checks an access token the way an Azure resource does, and returns its
// claims. It accepts only RS256 signed by this service's key (so "alg":"none" and HS256 keyed
// with the public key are refused), then checks the issuer against the token's own tenant,
// the audience (with or without a trailing slash), the time window (5 minutes' skew) and that
// the principal still exists. Errors wrap ErrMalformedToken, ErrBadSignature, ErrWrongIssuer,
// ErrWrongAudience, ErrExpired, ErrNotYetValid or ErrUnknownPrincipal, and never quote the token.
func (s *Service) ValidateAccessToken(raw, audience string) (*Claims, error) {
	if raw == "" || len(raw) > maxAccessTokenLength {
		return nil, fmt.Errorf("%w: empty or over %d bytes", ErrMalformedToken, maxAccessTokenLength)
	}
	c, err := s.verifiedClaims(raw)
	if err != nil {
		return nil, err
	}

	if c.TID == "" || c.Iss != AccessTokenIssuer(c.TID) {
		return nil, fmt.Errorf("%w: issuer %q is not %q of the token's tenant", ErrWrongIssuer, limit(c.Iss), AccessTokenIssuer(limit(c.TID)))
	}
	if _, ok := s.dir.Tenant(c.TID); !ok {
		return nil, fmt.Errorf("%w: tenant %s does not exist", ErrWrongIssuer, limit(c.TID))
	}
	if c.Aud == "" || strings.TrimSuffix(c.Aud, "/") != strings.TrimSuffix(audience, "/") {
		return nil, fmt.Errorf("%w: audience %q, want %q", ErrWrongAudience, limit(c.Aud), audience)
	}
	if c.Exp == nil {
		return nil, fmt.Errorf("%w: no exp claim", ErrMalformedToken)
	}
	now := s.now()
	if now.After(c.Exp.Add(clockSkew)) {
		return nil, fmt.Errorf("%w: it expired at %s", ErrExpired, c.Exp.UTC().Format(time.RFC3339))
	}
	if c.Nbf != nil && c.Nbf.After(now.Add(clockSkew)) {
		return nil, fmt.Errorf("%w: it is valid from %s", ErrNotYetValid, c.Nbf.UTC().Format(time.RFC3339))
	}
	sp, ok := s.dir.ServicePrincipal(c.OID)
	if !ok || !strings.EqualFold(sp.TenantID, c.TID) || !strings.EqualFold(sp.AppID, c.AppID) {
		return nil, fmt.Errorf("%w: no service principal %s of app %s in tenant %s", ErrUnknownPrincipal, limit(c.OID), limit(c.AppID), limit(c.TID))
	}
	out := &Claims{
		TenantID: c.TID, ObjectID: c.OID, AppID: c.AppID, AppIDACR: c.AppIDACR,
		Audience: c.Aud, Issuer: c.Iss, MIResourceID: c.XMSMirID,
		ExpiresAt: c.Exp.Time,
	}
	if c.Iat != nil {
		out.IssuedAt = c.Iat.Time
	}
	if c.Nbf != nil {
		out.NotBefore = c.Nbf.Time
	}
	return out, nil
}

// verifiedClaims parses the token and checks its signature. A resource sees the same token on
// every call for an hour, so a verified signature is remembered (by the token's SHA-256) and
// the RSA check, most of a warm request's cost, runs once per token. Everything that can change
// over a token's life (expiry, the principal's existence) is still checked on every call.
func (s *Service) verifiedClaims(raw string) (accessTokenClaims, error) {
	key := sha256.Sum256([]byte(raw))
	s.verifiedMu.Lock()
	c, ok := s.verified[key]
	s.verifiedMu.Unlock()
	if ok {
		return c, nil
	}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}), jwt.WithoutClaimsValidation()).
		ParseWithClaims(raw, &c, s.verificationKey)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return c, fmt.Errorf("%w: not an RS256 signature by this Entra ID's signing key (kid %s)", ErrBadSignature, s.signer.kid)
	default:
		return c, fmt.Errorf("%w: not a JWT with Entra ID access token claims", ErrMalformedToken)
	}
	s.verifiedMu.Lock()
	defer s.verifiedMu.Unlock()
	if len(s.verified) >= maxVerifiedTokens {
		now := s.now()
		maps.DeleteFunc(s.verified, func(_ [32]byte, v accessTokenClaims) bool { return v.Exp == nil || now.After(v.Exp.Add(clockSkew)) })
		if len(s.verified) >= maxVerifiedTokens {
			clear(s.verified)
		}
	}
	s.verified[key] = c
	return c, nil
}

// maxVerifiedTokens bounds the verified-signature cache; past it, expired entries go first.
const maxVerifiedTokens = 4096

var errUnknownKey = errors.New("unknown kid")

// verificationKey is the jwt.Keyfunc: only the signer's own kid has a key.
func (s *Service) verificationKey(t *jwt.Token) (any, error) {
	if kid, _ := t.Header["kid"].(string); kid != s.signer.kid {
		return nil, errUnknownKey
	}
	return &s.signer.key.PublicKey, nil
}
