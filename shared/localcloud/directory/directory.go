// Package directory stands in for Microsoft Entra ID's directory: tenants, app registrations,
// service principals and their credentials, managed identities, and the Azure RBAC role
// assignments that Key Vault checks. It is the local cloud's single source of truth about who
// exists and who may do what; the entra package issues tokens from it and the keyvault package
// authorizes against it.
//
// Left out on purpose: users, groups, owners, Microsoft Graph's HTTP API, federated credentials,
// control-plane (management) actions and deny assignments.
package directory

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
)

// Errors that the token endpoint turns into Entra's AADSTS codes.
var (
	ErrTenantNotFound           = errors.New("tenant not found")                               // AADSTS90002
	ErrApplicationNotFound      = errors.New("application not found in the tenant")            // AADSTS700016
	ErrServicePrincipalNotFound = errors.New("application has no service principal")           // AADSTS7000229
	ErrInvalidClientSecret      = errors.New("invalid client secret")                          // AADSTS7000215
	ErrClientSecretExpired      = errors.New("client secret expired")                          // AADSTS7000222
	ErrCertificateNotFound      = errors.New("certificate not registered for the application") // AADSTS700027
	ErrNotFound                 = errors.New("not found")
	ErrInvalidArgument          = errors.New("invalid argument")
)

// Tenant is an Entra ID tenant (a directory).
type Tenant struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// Application is an app registration: the app's definition, with its client ID (appId) and
// the credentials it may prove itself with.
type Application struct {
	ObjectID            string               `json:"id"`
	AppID               string               `json:"appId"`
	TenantID            string               `json:"tenantId"`
	DisplayName         string               `json:"displayName"`
	CreatedDateTime     time.Time            `json:"createdDateTime"`
	PasswordCredentials []PasswordCredential `json:"passwordCredentials"`
	KeyCredentials      []KeyCredential      `json:"keyCredentials"`
}

// PasswordCredential is a client secret. As in Entra, only a salted hash is kept: the value is
// shown once, when it is created.
type PasswordCredential struct {
	KeyID         string    `json:"keyId"`
	DisplayName   string    `json:"displayName"`
	Hint          string    `json:"hint"` // the first three characters, as Entra shows them
	StartDateTime time.Time `json:"startDateTime"`
	EndDateTime   time.Time `json:"endDateTime"`
	Salt          []byte    `json:"salt"`
	Hash          []byte    `json:"hash"`
}

// KeyCredential is a client certificate's public part.
type KeyCredential struct {
	KeyID            string    `json:"keyId"`
	DisplayName      string    `json:"displayName"`
	Type             string    `json:"type"`  // AsymmetricX509Cert
	Usage            string    `json:"usage"` // Verify
	StartDateTime    time.Time `json:"startDateTime"`
	EndDateTime      time.Time `json:"endDateTime"`
	ThumbprintSHA1   []byte    `json:"thumbprintSha1"`
	ThumbprintSHA256 []byte    `json:"thumbprintSha256"`
	CertificateDER   []byte    `json:"certificate"`
}

// Thumbprint is the certificate's SHA-1 thumbprint in upper-case hex, as the portal and az show it.
func (k KeyCredential) Thumbprint() string {
	return strings.ToUpper(hex.EncodeToString(k.ThumbprintSHA1))
}

// PublicKey parses the certificate's RSA public key.
func (k KeyCredential) PublicKey() (*rsa.PublicKey, error) {
	c, err := x509.ParseCertificate(k.CertificateDER)
	if err != nil {
		return nil, err
	}
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("certificate key is %T, not RSA", c.PublicKey)
	}
	return pub, nil
}

// Service principal types, as Microsoft Graph names them.
const (
	TypeApplication     = "Application"
	TypeManagedIdentity = "ManagedIdentity"
)

// ServicePrincipal is an application's identity in a tenant: the object that signs in, gets
// tokens (its object ID is the token's oid) and receives role assignments.
type ServicePrincipal struct {
	ObjectID             string    `json:"id"`
	AppID                string    `json:"appId"`
	TenantID             string    `json:"appOwnerOrganizationId"`
	DisplayName          string    `json:"displayName"`
	ServicePrincipalType string    `json:"servicePrincipalType"`
	AlternativeNames     []string  `json:"alternativeNames"`
	CreatedDateTime      time.Time `json:"createdDateTime"`
	// ManagedIdentityResourceID is, for a managed identity, the resource ID that tokens carry as
	// xms_mirid: the Azure resource for a system-assigned identity, the identity itself for a
	// user-assigned one.
	ManagedIdentityResourceID string `json:"managedIdentityResourceId,omitempty"`
}

// ResourceIdentity is the identity block of an Azure resource (a web app): its system-assigned
// identity, if enabled, and the user-assigned identities attached to it.
type ResourceIdentity struct {
	ResourceID     string   `json:"resourceId"`
	TenantID       string   `json:"tenantId"`
	SystemAssigned string   `json:"systemAssigned,omitempty"` // service principal object ID
	UserAssigned   []string `json:"userAssigned,omitempty"`   // identity resource IDs
}

// RoleAssignment grants a role to a principal at a scope.
type RoleAssignment struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	PrincipalID      string    `json:"principalId"`
	PrincipalType    string    `json:"principalType"`
	RoleDefinitionID string    `json:"roleDefinitionId"`
	RoleName         string    `json:"roleDefinitionName"`
	Scope            string    `json:"scope"`
	CreatedOn        time.Time `json:"createdOn"`
}

type state struct {
	Tenants           map[string]*Tenant           `json:"tenants"`
	Applications      map[string]*Application      `json:"applications"`      // by object ID
	ServicePrincipals map[string]*ServicePrincipal `json:"servicePrincipals"` // by object ID
	Identities        map[string]*ResourceIdentity `json:"identities"`        // by lower-case resource ID
	RoleAssignments   map[string]*RoleAssignment   `json:"roleAssignments"`   // by name
}

// Options configure a Directory.
type Options struct {
	Now   func() time.Time // nil = time.Now
	Store *store.File      // nil = memory only
}

// Directory is safe for concurrent use. Every method that changes it returns only after the
// change is saved to its store.
type Directory struct {
	mu    sync.RWMutex
	st    state
	now   func() time.Time
	store *store.File
}

// New opens a directory, loading what its store holds.
func New(opts Options) (*Directory, error) {
	d := &Directory{now: opts.Now, store: opts.Store}
	if d.now == nil {
		d.now = time.Now
	}
	if d.store == nil {
		d.store = store.Memory()
	}
	if _, err := d.store.Load(&d.st); err != nil {
		return nil, err
	}
	if d.st.Tenants == nil {
		d.st.Tenants = map[string]*Tenant{}
	}
	if d.st.Applications == nil {
		d.st.Applications = map[string]*Application{}
	}
	if d.st.ServicePrincipals == nil {
		d.st.ServicePrincipals = map[string]*ServicePrincipal{}
	}
	if d.st.Identities == nil {
		d.st.Identities = map[string]*ResourceIdentity{}
	}
	if d.st.RoleAssignments == nil {
		d.st.RoleAssignments = map[string]*RoleAssignment{}
	}
	return d, nil
}

// Now is the directory's clock.
func (d *Directory) Now() time.Time { return d.now() }

// save persists the state; callers hold d.mu for writing.
func (d *Directory) save() error { return d.store.Save(&d.st) }

// mutate runs f under the write lock and saves if it succeeded. If saving fails the change is
// undone in memory too, so the directory never acknowledges a write it did not keep.
func (d *Directory) mutate(f func() error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	before := d.snapshot()
	if err := f(); err != nil {
		d.st = before
		return err
	}
	if err := d.save(); err != nil {
		d.st = before
		return fmt.Errorf("saving the directory: %w", err)
	}
	return nil
}

// snapshot deep-copies the state (it is small: a tutorial's worth of objects).
func (d *Directory) snapshot() state {
	s := state{
		Tenants:           make(map[string]*Tenant, len(d.st.Tenants)),
		Applications:      make(map[string]*Application, len(d.st.Applications)),
		ServicePrincipals: make(map[string]*ServicePrincipal, len(d.st.ServicePrincipals)),
		Identities:        make(map[string]*ResourceIdentity, len(d.st.Identities)),
		RoleAssignments:   make(map[string]*RoleAssignment, len(d.st.RoleAssignments)),
	}
	for k, v := range d.st.Tenants {
		c := *v
		s.Tenants[k] = &c
	}
	for k, v := range d.st.Applications {
		c := *v
		c.PasswordCredentials = slices.Clone(v.PasswordCredentials)
		c.KeyCredentials = slices.Clone(v.KeyCredentials)
		s.Applications[k] = &c
	}
	for k, v := range d.st.ServicePrincipals {
		c := *v
		c.AlternativeNames = slices.Clone(v.AlternativeNames)
		s.ServicePrincipals[k] = &c
	}
	for k, v := range d.st.Identities {
		c := *v
		c.UserAssigned = slices.Clone(v.UserAssigned)
		s.Identities[k] = &c
	}
	for k, v := range d.st.RoleAssignments {
		c := *v
		s.RoleAssignments[k] = &c
	}
	return s
}

func newID() string { return uuid.NewString() }

// ---- tenants

// AddTenant creates a tenant with the given ID (a GUID); an existing tenant is left as it is.
func (d *Directory) AddTenant(id, displayName string) (Tenant, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Tenant{}, fmt.Errorf("%w: tenant ID %q is not a GUID", ErrInvalidArgument, id)
	}
	id = strings.ToLower(id)
	var t Tenant
	err := d.mutate(func() error {
		if old, ok := d.st.Tenants[id]; ok {
			t = *old
			return nil
		}
		t = Tenant{ID: id, DisplayName: displayName}
		d.st.Tenants[id] = &t
		return nil
	})
	return t, err
}

// Tenant looks a tenant up by ID.
func (d *Directory) Tenant(id string) (Tenant, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	t, ok := d.st.Tenants[strings.ToLower(id)]
	if !ok {
		return Tenant{}, false
	}
	return *t, true
}

// ---- applications

// CreateApplication registers an app in a tenant (az ad app create). Pass appID "" for a new
// random client ID; the well-known local values pass a fixed one.
func (d *Directory) CreateApplication(tenantID, displayName, appID string) (Application, error) {
	tenantID = strings.ToLower(tenantID)
	if appID == "" {
		appID = newID()
	} else if _, err := uuid.Parse(appID); err != nil {
		return Application{}, fmt.Errorf("%w: client ID %q is not a GUID", ErrInvalidArgument, appID)
	}
	appID = strings.ToLower(appID)
	var app Application
	err := d.mutate(func() error {
		if _, ok := d.st.Tenants[tenantID]; !ok {
			return ErrTenantNotFound
		}
		if d.appByAppID(tenantID, appID) != nil {
			return fmt.Errorf("%w: an application with client ID %s already exists", ErrInvalidArgument, appID)
		}
		app = Application{ObjectID: newID(), AppID: appID, TenantID: tenantID, DisplayName: displayName, CreatedDateTime: d.now().UTC()}
		d.st.Applications[app.ObjectID] = &app
		return nil
	})
	return app, err
}

func (d *Directory) appByAppID(tenantID, appID string) *Application {
	for _, a := range d.st.Applications {
		if a.TenantID == strings.ToLower(tenantID) && strings.EqualFold(a.AppID, appID) {
			return a
		}
	}
	return nil
}

// Application looks an app registration up by client ID.
func (d *Directory) Application(tenantID, appID string) (Application, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a := d.appByAppID(tenantID, appID)
	if a == nil {
		return Application{}, false
	}
	return cloneApp(a), true
}

// Applications lists a tenant's app registrations, oldest first.
func (d *Directory) Applications(tenantID string) []Application {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []Application
	for _, a := range d.st.Applications {
		if a.TenantID == strings.ToLower(tenantID) {
			out = append(out, cloneApp(a))
		}
	}
	slices.SortFunc(out, func(a, b Application) int { return a.CreatedDateTime.Compare(b.CreatedDateTime) })
	return out
}

func cloneApp(a *Application) Application {
	c := *a
	c.PasswordCredentials = slices.Clone(a.PasswordCredentials)
	c.KeyCredentials = slices.Clone(a.KeyCredentials)
	return c
}

// DeleteApplication deletes an app registration and its service principal, as Entra does.
// Role assignments of the principal are left behind, orphaned, as in Azure; they grant nothing
// because no token can be issued for a deleted principal.
func (d *Directory) DeleteApplication(tenantID, appID string) error {
	return d.mutate(func() error {
		a := d.appByAppID(tenantID, appID)
		if a == nil {
			return ErrApplicationNotFound
		}
		delete(d.st.Applications, a.ObjectID)
		if sp := d.spByAppID(tenantID, appID); sp != nil {
			delete(d.st.ServicePrincipals, sp.ObjectID)
		}
		return nil
	})
}

// SecretOptions shape a new client secret.
type SecretOptions struct {
	DisplayName string
	// Value fixes the secret's text (the well-known local values use this); "" generates one.
	Value string
	// Start and End bound its validity; zero Start = now, zero End = two years after Start.
	Start, End time.Time
}

// AddPassword adds a client secret to an app and returns the credential and its value, the only
// time the value is available (az ad app credential reset --append).
func (d *Directory) AddPassword(tenantID, appID string, opts SecretOptions) (PasswordCredential, string, error) {
	value := opts.Value
	if value == "" {
		value = GenerateClientSecret()
	}
	start := opts.Start
	if start.IsZero() {
		start = d.now()
	}
	end := opts.End
	if end.IsZero() {
		end = start.AddDate(2, 0, 0)
	}
	if !end.After(start) {
		return PasswordCredential{}, "", fmt.Errorf("%w: the secret's end date must be after its start date", ErrInvalidArgument)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return PasswordCredential{}, "", err
	}
	pc := PasswordCredential{
		KeyID: newID(), DisplayName: opts.DisplayName, Hint: value[:min(3, len(value))],
		StartDateTime: start.UTC(), EndDateTime: end.UTC(), Salt: salt, Hash: hashSecret(salt, value),
	}
	err := d.mutate(func() error {
		a := d.appByAppID(tenantID, appID)
		if a == nil {
			return ErrApplicationNotFound
		}
		a.PasswordCredentials = append(a.PasswordCredentials, pc)
		return nil
	})
	if err != nil {
		return PasswordCredential{}, "", err
	}
	return pc, value, nil
}

func hashSecret(salt []byte, value string) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(value))
	return m.Sum(nil)
}

// secretAlphabet is the set Entra draws client secrets from.
const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-"

// GenerateClientSecret makes a 40-character secret shaped like Entra's ("abc8Q~…").
func GenerateClientSecret() string {
	b := make([]byte, 40)
	for i := range b {
		b[i] = secretAlphabet[randIntn(len(secretAlphabet))]
	}
	copy(b[3:], "8Q~")
	return string(b)
}

func randIntn(n int) int {
	var b [1]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		if int(b[0]) < 256-256%n {
			return int(b[0]) % n
		}
	}
}

// ResetPasswords removes every client secret of the app and adds a new one (az ad app
// credential reset without --append): the old value stops working at once.
func (d *Directory) ResetPasswords(tenantID, appID string, opts SecretOptions) (PasswordCredential, string, error) {
	err := d.mutate(func() error {
		a := d.appByAppID(tenantID, appID)
		if a == nil {
			return ErrApplicationNotFound
		}
		a.PasswordCredentials = nil
		return nil
	})
	if err != nil {
		return PasswordCredential{}, "", err
	}
	return d.AddPassword(tenantID, appID, opts)
}

// RemovePassword deletes one client secret by key ID.
func (d *Directory) RemovePassword(tenantID, appID, keyID string) error {
	return d.mutate(func() error {
		a := d.appByAppID(tenantID, appID)
		if a == nil {
			return ErrApplicationNotFound
		}
		n := len(a.PasswordCredentials)
		a.PasswordCredentials = slices.DeleteFunc(a.PasswordCredentials, func(p PasswordCredential) bool { return strings.EqualFold(p.KeyID, keyID) })
		if len(a.PasswordCredentials) == n {
			return ErrNotFound
		}
		return nil
	})
}

// AddCertificate registers a client certificate's public part. Entra accepts only RSA keys for
// client assertions.
func (d *Directory) AddCertificate(tenantID, appID string, certDER []byte, displayName string) (KeyCredential, error) {
	c, err := x509.ParseCertificate(certDER)
	if err != nil {
		return KeyCredential{}, fmt.Errorf("%w: not an X.509 certificate: %v", ErrInvalidArgument, err)
	}
	if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
		return KeyCredential{}, fmt.Errorf("%w: the certificate's key is not RSA; Entra ID needs an RSA key for client certificates", ErrInvalidArgument)
	}
	s1 := sha1.Sum(certDER)
	s256 := sha256.Sum256(certDER)
	kc := KeyCredential{
		KeyID: newID(), DisplayName: displayName, Type: "AsymmetricX509Cert", Usage: "Verify",
		StartDateTime: c.NotBefore.UTC(), EndDateTime: c.NotAfter.UTC(),
		ThumbprintSHA1: s1[:], ThumbprintSHA256: s256[:], CertificateDER: slices.Clone(certDER),
	}
	err = d.mutate(func() error {
		a := d.appByAppID(tenantID, appID)
		if a == nil {
			return ErrApplicationNotFound
		}
		a.KeyCredentials = append(a.KeyCredentials, kc)
		return nil
	})
	return kc, err
}

// ---- service principals

// CreateServicePrincipal creates the app's service principal in its tenant (az ad sp create);
// if it exists, it is returned as it is.
func (d *Directory) CreateServicePrincipal(tenantID, appID string) (ServicePrincipal, error) {
	var sp ServicePrincipal
	err := d.mutate(func() error {
		a := d.appByAppID(tenantID, appID)
		if a == nil {
			return ErrApplicationNotFound
		}
		if old := d.spByAppID(tenantID, appID); old != nil {
			sp = *old
			return nil
		}
		sp = ServicePrincipal{
			ObjectID: newID(), AppID: a.AppID, TenantID: a.TenantID, DisplayName: a.DisplayName,
			ServicePrincipalType: TypeApplication, AlternativeNames: []string{}, CreatedDateTime: d.now().UTC(),
		}
		d.st.ServicePrincipals[sp.ObjectID] = &sp
		return nil
	})
	return sp, err
}

func (d *Directory) spByAppID(tenantID, appID string) *ServicePrincipal {
	for _, sp := range d.st.ServicePrincipals {
		if sp.TenantID == strings.ToLower(tenantID) && strings.EqualFold(sp.AppID, appID) {
			return sp
		}
	}
	return nil
}

// ServicePrincipal looks a principal up by object ID.
func (d *Directory) ServicePrincipal(objectID string) (ServicePrincipal, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	sp, ok := d.st.ServicePrincipals[strings.ToLower(objectID)]
	if !ok {
		return ServicePrincipal{}, false
	}
	return cloneSP(sp), true
}

// ServicePrincipalByAppID looks a principal up by its client ID.
func (d *Directory) ServicePrincipalByAppID(tenantID, appID string) (ServicePrincipal, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	sp := d.spByAppID(tenantID, appID)
	if sp == nil {
		return ServicePrincipal{}, false
	}
	return cloneSP(sp), true
}

// ServicePrincipals lists a tenant's principals, oldest first.
func (d *Directory) ServicePrincipals(tenantID string) []ServicePrincipal {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []ServicePrincipal
	for _, sp := range d.st.ServicePrincipals {
		if sp.TenantID == strings.ToLower(tenantID) {
			out = append(out, cloneSP(sp))
		}
	}
	slices.SortFunc(out, func(a, b ServicePrincipal) int { return a.CreatedDateTime.Compare(b.CreatedDateTime) })
	return out
}

func cloneSP(sp *ServicePrincipal) ServicePrincipal {
	c := *sp
	c.AlternativeNames = slices.Clone(sp.AlternativeNames)
	return c
}

// ---- sign-in checks for the token endpoint

// clientLookup finds the tenant, the app and its principal for a sign-in, with the error Entra
// reports first when one is missing.
func (d *Directory) clientLookup(tenantID, appID string) (*Application, *ServicePrincipal, error) {
	if _, ok := d.st.Tenants[strings.ToLower(tenantID)]; !ok {
		return nil, nil, ErrTenantNotFound
	}
	a := d.appByAppID(tenantID, appID)
	if a == nil {
		return nil, nil, ErrApplicationNotFound
	}
	sp := d.spByAppID(tenantID, appID)
	if sp == nil {
		return nil, nil, ErrServicePrincipalNotFound
	}
	return a, sp, nil
}

// VerifyClientSecret checks a client secret in constant time against every registered secret of
// the app, and returns the principal it signs in as.
func (d *Directory) VerifyClientSecret(tenantID, appID, secret string) (ServicePrincipal, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a, sp, err := d.clientLookup(tenantID, appID)
	if err != nil {
		return ServicePrincipal{}, err
	}
	now := d.now()
	expired := false
	for _, pc := range a.PasswordCredentials {
		if subtle.ConstantTimeCompare(hashSecret(pc.Salt, secret), pc.Hash) != 1 {
			continue
		}
		if now.Before(pc.StartDateTime) || !now.Before(pc.EndDateTime) {
			expired = true
			continue
		}
		return cloneSP(sp), nil
	}
	if expired {
		return ServicePrincipal{}, ErrClientSecretExpired
	}
	return ServicePrincipal{}, ErrInvalidClientSecret
}

// CertificateByThumbprint finds a registered, currently valid client certificate of the app by its
// SHA-256 (32 bytes) or SHA-1 (20 bytes) thumbprint, and the principal it signs in as.
func (d *Directory) CertificateByThumbprint(tenantID, appID string, thumbprint []byte) (KeyCredential, ServicePrincipal, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a, sp, err := d.clientLookup(tenantID, appID)
	if err != nil {
		return KeyCredential{}, ServicePrincipal{}, err
	}
	now := d.now()
	for _, kc := range a.KeyCredentials {
		if !hmac.Equal(kc.ThumbprintSHA256, thumbprint) && !hmac.Equal(kc.ThumbprintSHA1, thumbprint) {
			continue
		}
		if now.Before(kc.StartDateTime) || now.After(kc.EndDateTime) {
			continue
		}
		return kc, cloneSP(sp), nil
	}
	return KeyCredential{}, ServicePrincipal{}, ErrCertificateNotFound
}

// ---- managed identities

// EnableSystemAssignedIdentity turns on a resource's system-assigned identity: the platform
// registers a new service principal for it. Enabling an enabled identity returns it unchanged.
func (d *Directory) EnableSystemAssignedIdentity(tenantID, resourceID string) (ServicePrincipal, error) {
	tenantID = strings.ToLower(tenantID)
	var sp ServicePrincipal
	err := d.mutate(func() error {
		if _, ok := d.st.Tenants[tenantID]; !ok {
			return ErrTenantNotFound
		}
		ri := d.identityOf(tenantID, resourceID)
		if ri.SystemAssigned != "" {
			if old, ok := d.st.ServicePrincipals[ri.SystemAssigned]; ok {
				sp = *old
				return nil
			}
		}
		sp = ServicePrincipal{
			ObjectID: newID(), AppID: newID(), TenantID: tenantID, DisplayName: lastSegment(resourceID),
			ServicePrincipalType: TypeManagedIdentity, AlternativeNames: []string{"isExplicit=False", resourceID},
			CreatedDateTime: d.now().UTC(), ManagedIdentityResourceID: resourceID,
		}
		d.st.ServicePrincipals[sp.ObjectID] = &sp
		ri.SystemAssigned = sp.ObjectID
		return nil
	})
	return sp, err
}

// identityOf returns the resource's identity block, creating it; callers hold the write lock.
func (d *Directory) identityOf(tenantID, resourceID string) *ResourceIdentity {
	key := strings.ToLower(resourceID)
	ri, ok := d.st.Identities[key]
	if !ok {
		ri = &ResourceIdentity{ResourceID: resourceID, TenantID: tenantID}
		d.st.Identities[key] = ri
	}
	return ri
}

// DisableSystemAssignedIdentity turns the identity off: its service principal is deleted, so no
// token can be had for it any more. Disabling a disabled identity is not an error.
func (d *Directory) DisableSystemAssignedIdentity(resourceID string) error {
	return d.mutate(func() error {
		ri, ok := d.st.Identities[strings.ToLower(resourceID)]
		if !ok || ri.SystemAssigned == "" {
			return nil
		}
		delete(d.st.ServicePrincipals, ri.SystemAssigned)
		ri.SystemAssigned = ""
		d.dropEmptyIdentity(ri)
		return nil
	})
}

func (d *Directory) dropEmptyIdentity(ri *ResourceIdentity) {
	if ri.SystemAssigned == "" && len(ri.UserAssigned) == 0 {
		delete(d.st.Identities, strings.ToLower(ri.ResourceID))
	}
}

// DeleteResource removes everything the platform made for a resource when it is deleted: its
// system-assigned identity's principal and its identity block. A user-assigned identity that
// is itself the resource being deleted loses its principal too.
func (d *Directory) DeleteResource(resourceID string) error {
	return d.mutate(func() error {
		key := strings.ToLower(resourceID)
		if ri, ok := d.st.Identities[key]; ok {
			if ri.SystemAssigned != "" {
				delete(d.st.ServicePrincipals, ri.SystemAssigned)
			}
			delete(d.st.Identities, key)
		}
		for id, sp := range d.st.ServicePrincipals {
			if sp.ServicePrincipalType == TypeManagedIdentity && strings.EqualFold(sp.ManagedIdentityResourceID, resourceID) {
				delete(d.st.ServicePrincipals, id)
			}
		}
		return nil
	})
}

// CreateUserAssignedIdentity creates a standalone managed identity (az identity create) with its
// service principal; resourceID is the identity's own resource ID.
func (d *Directory) CreateUserAssignedIdentity(tenantID, resourceID string) (ServicePrincipal, error) {
	tenantID = strings.ToLower(tenantID)
	var sp ServicePrincipal
	err := d.mutate(func() error {
		if _, ok := d.st.Tenants[tenantID]; !ok {
			return ErrTenantNotFound
		}
		if old := d.userAssigned(resourceID); old != nil {
			sp = *old
			return nil
		}
		sp = ServicePrincipal{
			ObjectID: newID(), AppID: newID(), TenantID: tenantID, DisplayName: lastSegment(resourceID),
			ServicePrincipalType: TypeManagedIdentity, AlternativeNames: []string{"isExplicit=True", resourceID},
			CreatedDateTime: d.now().UTC(), ManagedIdentityResourceID: resourceID,
		}
		d.st.ServicePrincipals[sp.ObjectID] = &sp
		return nil
	})
	return sp, err
}

func (d *Directory) userAssigned(resourceID string) *ServicePrincipal {
	for _, sp := range d.st.ServicePrincipals {
		if sp.ServicePrincipalType == TypeManagedIdentity && strings.EqualFold(sp.ManagedIdentityResourceID, resourceID) &&
			slices.Contains(sp.AlternativeNames, "isExplicit=True") {
			return sp
		}
	}
	return nil
}

// UserAssignedIdentity looks a user-assigned identity's principal up by its resource ID.
func (d *Directory) UserAssignedIdentity(resourceID string) (ServicePrincipal, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	sp := d.userAssigned(resourceID)
	if sp == nil {
		return ServicePrincipal{}, false
	}
	return cloneSP(sp), true
}

// AssignUserAssignedIdentity attaches a user-assigned identity to a resource.
func (d *Directory) AssignUserAssignedIdentity(tenantID, resourceID, identityResourceID string) error {
	return d.mutate(func() error {
		if d.userAssigned(identityResourceID) == nil {
			return fmt.Errorf("%w: no user-assigned identity %s", ErrNotFound, identityResourceID)
		}
		ri := d.identityOf(strings.ToLower(tenantID), resourceID)
		if !slices.ContainsFunc(ri.UserAssigned, func(s string) bool { return strings.EqualFold(s, identityResourceID) }) {
			ri.UserAssigned = append(ri.UserAssigned, identityResourceID)
		}
		return nil
	})
}

// RemoveUserAssignedIdentity detaches a user-assigned identity from a resource; the identity
// itself lives on.
func (d *Directory) RemoveUserAssignedIdentity(resourceID, identityResourceID string) error {
	return d.mutate(func() error {
		ri, ok := d.st.Identities[strings.ToLower(resourceID)]
		if !ok {
			return nil
		}
		ri.UserAssigned = slices.DeleteFunc(ri.UserAssigned, func(s string) bool { return strings.EqualFold(s, identityResourceID) })
		d.dropEmptyIdentity(ri)
		return nil
	})
}

// Identity is a resource's identity block with its principals resolved.
type Identity struct {
	ResourceID     string
	TenantID       string
	SystemAssigned *ServicePrincipal  // nil when off
	UserAssigned   []ServicePrincipal // attached user-assigned identities that still exist
}

// IdentityOf returns the identities a resource may use.
func (d *Directory) IdentityOf(resourceID string) Identity {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := Identity{ResourceID: resourceID}
	ri, ok := d.st.Identities[strings.ToLower(resourceID)]
	if !ok {
		return out
	}
	out.TenantID = ri.TenantID
	if sp, ok := d.st.ServicePrincipals[ri.SystemAssigned]; ok {
		c := cloneSP(sp)
		out.SystemAssigned = &c
	}
	for _, u := range ri.UserAssigned {
		if sp := d.userAssigned(u); sp != nil {
			out.UserAssigned = append(out.UserAssigned, cloneSP(sp))
		}
	}
	return out
}

func lastSegment(id string) string {
	id = strings.TrimSuffix(id, "/")
	return id[strings.LastIndex(id, "/")+1:]
}

// ---- role assignments

// AssignRole grants a built-in role (by name or ID) to a principal at a scope. Assigning the
// same role to the same principal at the same scope again returns the existing assignment.
func (d *Directory) AssignRole(principalID, role, scope string) (RoleAssignment, error) {
	def, ok := LookupRole(role)
	if !ok {
		return RoleAssignment{}, fmt.Errorf("%w: role %q doesn't exist in the local cloud; its built-in roles are %s", ErrNotFound, role, roleNames())
	}
	if !strings.HasPrefix(scope, "/") {
		return RoleAssignment{}, fmt.Errorf("%w: scope %q must be a resource ID starting with /", ErrInvalidArgument, scope)
	}
	var ra RoleAssignment
	err := d.mutate(func() error {
		sp, ok := d.st.ServicePrincipals[strings.ToLower(principalID)]
		if !ok {
			return fmt.Errorf("%w: principal %s does not exist in the directory", ErrNotFound, principalID)
		}
		for _, old := range d.st.RoleAssignments {
			if strings.EqualFold(old.PrincipalID, sp.ObjectID) && strings.EqualFold(old.RoleDefinitionID, roleDefinitionID(scope, def.ID)) &&
				strings.EqualFold(strings.TrimSuffix(old.Scope, "/"), strings.TrimSuffix(scope, "/")) {
				ra = *old
				return nil
			}
		}
		name := newID()
		ra = RoleAssignment{
			ID:               strings.TrimSuffix(scope, "/") + "/providers/Microsoft.Authorization/roleAssignments/" + name,
			Name:             name,
			PrincipalID:      sp.ObjectID,
			PrincipalType:    "ServicePrincipal",
			RoleDefinitionID: roleDefinitionID(scope, def.ID),
			RoleName:         def.RoleName,
			Scope:            scope,
			CreatedOn:        d.now().UTC(),
		}
		d.st.RoleAssignments[name] = &ra
		return nil
	})
	return ra, err
}

func roleNames() string {
	var names []string
	for _, r := range BuiltInRoles {
		names = append(names, fmt.Sprintf("%q", r.RoleName))
	}
	return strings.Join(names, ", ")
}

// roleDefinitionID is the full ID of a built-in role as seen from a scope's subscription.
func roleDefinitionID(scope, guid string) string {
	parts := strings.Split(strings.Trim(scope, "/"), "/")
	if len(parts) >= 2 && strings.EqualFold(parts[0], "subscriptions") {
		return "/subscriptions/" + parts[1] + "/providers/Microsoft.Authorization/roleDefinitions/" + guid
	}
	return "/providers/Microsoft.Authorization/roleDefinitions/" + guid
}

// DeleteRoleAssignment removes an assignment by its full ID or name.
func (d *Directory) DeleteRoleAssignment(idOrName string) error {
	return d.mutate(func() error {
		for name, ra := range d.st.RoleAssignments {
			if strings.EqualFold(ra.ID, idOrName) || strings.EqualFold(name, idOrName) {
				delete(d.st.RoleAssignments, name)
				return nil
			}
		}
		return ErrNotFound
	})
}

// RoleAssignmentFilter selects assignments; empty fields match everything.
type RoleAssignmentFilter struct {
	PrincipalID string
	Role        string // name or ID
	// Scope matches assignments at exactly this scope, or, with IncludeInherited, also those
	// at its parents (which apply to it).
	Scope            string
	IncludeInherited bool
	// UnderScope matches assignments at this scope or below it (a resource group's contents).
	UnderScope string
}

// RoleAssignments lists assignments, oldest first.
func (d *Directory) RoleAssignments(f RoleAssignmentFilter) []RoleAssignment {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var def RoleDefinition
	if f.Role != "" {
		var ok bool
		if def, ok = LookupRole(f.Role); !ok {
			return nil
		}
	}
	var out []RoleAssignment
	for _, ra := range d.st.RoleAssignments {
		if f.PrincipalID != "" && !strings.EqualFold(ra.PrincipalID, f.PrincipalID) {
			continue
		}
		if f.Role != "" && !strings.HasSuffix(strings.ToLower(ra.RoleDefinitionID), "/"+def.ID) {
			continue
		}
		if f.Scope != "" {
			exact := strings.EqualFold(strings.TrimSuffix(ra.Scope, "/"), strings.TrimSuffix(f.Scope, "/"))
			if !exact && !(f.IncludeInherited && ScopeCovers(ra.Scope, f.Scope)) {
				continue
			}
		}
		if f.UnderScope != "" && !ScopeCovers(f.UnderScope, ra.Scope) {
			continue
		}
		out = append(out, *ra)
	}
	slices.SortFunc(out, func(a, b RoleAssignment) int { return a.CreatedOn.Compare(b.CreatedOn) })
	return out
}

// DeleteRoleAssignmentsUnder removes every assignment at or below a scope (what deleting a
// resource group or a vault does to the assignments on it).
func (d *Directory) DeleteRoleAssignmentsUnder(scope string) error {
	return d.mutate(func() error {
		maps.DeleteFunc(d.st.RoleAssignments, func(_ string, ra *RoleAssignment) bool { return ScopeCovers(scope, ra.Scope) })
		return nil
	})
}

// IsAllowedAction is the same decision for a control-plane action (pulling an image, say).
func (d *Directory) IsAllowedAction(principalID, action, resource string) bool {
	return d.allowed(principalID, resource, func(r RoleDefinition) bool { return r.AllowsAction(action) })
}

// IsAllowed is Azure RBAC's data-plane decision: does any role assigned to the principal, at
// the resource's scope or above it, grant the data action? A principal that no longer exists
// is allowed nothing.
func (d *Directory) IsAllowed(principalID, dataAction, resource string) bool {
	return d.allowed(principalID, resource, func(r RoleDefinition) bool { return r.Allows(dataAction) })
}

func (d *Directory) allowed(principalID, resource string, grants func(RoleDefinition) bool) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if _, ok := d.st.ServicePrincipals[strings.ToLower(principalID)]; !ok {
		return false
	}
	for _, ra := range d.st.RoleAssignments {
		if !strings.EqualFold(ra.PrincipalID, principalID) || !ScopeCovers(ra.Scope, resource) {
			continue
		}
		if def, ok := LookupRole(ra.RoleDefinitionID); ok && grants(def) {
			return true
		}
	}
	return false
}
