package entra

import (
	"errors"
	"time"
)

// Host is the Entra ID authority host the front door routes to this service.
const Host = "login.microsoftonline.com"

// Authority is the authority URL for a tenant, as a Key Vault challenge names it.
func Authority(tenantID string) string { return "https://" + Host + "/" + tenantID }

// AccessTokenIssuer is the v1 issuer of access tokens for a tenant.
func AccessTokenIssuer(tenantID string) string { return "https://sts.windows.net/" + tenantID + "/" }

// appidacr values: how the client proved itself.
const (
	ACRSecret      = "1" // client secret
	ACRCertificate = "2" // certificate, or a managed identity
)

// AccessToken is a minted token and when it expires.
type AccessToken struct {
	Token     string
	ExpiresOn time.Time
}

// Claims are the validated claims of an access token that a resource (Key Vault) relies on.
type Claims struct {
	TenantID     string // tid
	ObjectID     string // oid: the service principal's object ID
	AppID        string // appid: the client ID
	AppIDACR     string // appidacr
	Audience     string // aud
	Issuer       string // iss
	MIResourceID string // xms_mirid, for managed identities
	IssuedAt     time.Time
	NotBefore    time.Time
	ExpiresAt    time.Time
}

// Reasons a token is refused. ValidateAccessToken wraps one of these with details.
var (
	ErrMalformedToken   = errors.New("malformed token")
	ErrBadSignature     = errors.New("token signature is invalid")
	ErrExpired          = errors.New("token is expired")
	ErrNotYetValid      = errors.New("token is not yet valid")
	ErrWrongAudience    = errors.New("token audience is invalid")
	ErrWrongIssuer      = errors.New("token issuer is invalid")
	ErrUnknownPrincipal = errors.New("token principal no longer exists")
)
