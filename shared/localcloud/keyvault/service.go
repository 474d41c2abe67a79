// Package keyvault stands in for the Azure Key Vault secrets data plane: the REST API that
// azsecrets and @azure/keyvault-secrets call at https://<vault>.vault.azure.net. It answers the
// first, token-less request with Key Vault's Bearer challenge, validates access tokens (signature,
// issuer, audience, expiry, tenant) through the local Entra ID, authorizes every operation with
// Azure RBAC data actions from the directory, and keeps secrets with their versions, soft delete
// (90 days, purgeable), recovery, and backup/restore.
//
// Left out on purpose: keys, certificates and managed storage accounts; the management plane
// (vault properties, networking, purge protection: the local cloud's CLI creates vaults through
// CreateVault); the legacy access-policy permission model (vaults always use RBAC); PoP tokens;
// throttling (429); and per-api-version differences in the response shapes.
package keyvault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
)

// DNSSuffix is the domain of every vault: https://<name>.vault.azure.net.
const DNSSuffix = "vault.azure.net"

// Audience is the resource Key Vault tokens are issued for, and that its challenge names.
const Audience = "https://vault.azure.net"

// Limits and settings of the real service.
const (
	recoveryLevel   = "Recoverable+Purgeable"
	recoverableDays = 90
	maxValueBytes   = 25 * 1024 // 25 KB per secret value
	maxTags         = 15
	maxTagKey       = 512
	maxTagValue     = 256
	maxSecretName   = 127
	maxPageSize     = 25
	maxBodyBytes    = 1 << 20
)

// Errors of the vault-management methods.
var (
	ErrInvalidArgument = errors.New("invalid argument")
	ErrVaultExists     = errors.New("vault already exists")
	ErrVaultNotFound   = errors.New("vault not found")
)

// TokenValidator checks an access token and returns its claims; *entra.Service satisfies it.
type TokenValidator interface {
	ValidateAccessToken(raw, audience string) (*entra.Claims, error)
}

// Options configure a Service.
type Options struct {
	Directory *directory.Directory // RBAC decisions and tenant lookup
	Tokens    TokenValidator
	Now       func() time.Time // nil = time.Now
	// Store keeps every vault's secrets; nil keeps them in memory only. Each acknowledged write
	// is saved before its response is sent.
	Store  *store.File
	Logger *slog.Logger // nil = slog.Default()
}

// Vault is a key vault as the data plane knows it.
type Vault struct {
	Name       string    `json:"name"`
	TenantID   string    `json:"tenantId"`
	ResourceID string    `json:"resourceId"`
	URI        string    `json:"uri"` // https://<name>.vault.azure.net/
	CreatedAt  time.Time `json:"createdAt"`
}

// Service is the data plane of every vault in the local cloud. It is safe for concurrent use.
type Service struct {
	dir    *directory.Directory
	tokens TokenValidator
	now    func() time.Time
	store  *store.File
	log    *slog.Logger
	backup cipher.AEAD // seals backup blobs with the state's BackupKey

	mu sync.RWMutex
	st state
}

// state is everything the store persists.
type state struct {
	// BackupKey is this local cloud's key for backup blobs, so that a blob restores only here
	// and any change to it is detected, as with Azure's encrypted backups.
	BackupKey []byte                 `json:"backupKey"`
	Vaults    map[string]*vaultState `json:"vaults"` // by lower-case name
}

type vaultState struct {
	Vault
	Secrets map[string]*secret `json:"secrets"` // live secrets, by lower-case name
	Deleted map[string]*secret `json:"deleted"` // soft-deleted secrets, by lower-case name
}

// secret is a named secret with every version, oldest first: the last one is the current one.
// Stored secrets are never changed in place (writes replace them), which keeps undo simple.
type secret struct {
	Name               string     `json:"name"`
	Versions           []*version `json:"versions"`
	DeletedDate        int64      `json:"deletedDate,omitempty"`
	ScheduledPurgeDate int64      `json:"scheduledPurgeDate,omitempty"`
}

type version struct {
	ID          string            `json:"id"`
	Value       string            `json:"value"`
	ContentType string            `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Enabled     bool              `json:"enabled"`
	NotBefore   *int64            `json:"nbf,omitempty"`
	Expires     *int64            `json:"exp,omitempty"`
	Created     int64             `json:"created"`
	Updated     int64             `json:"updated"`
}

func (s *secret) current() *version { return s.Versions[len(s.Versions)-1] }

// New opens the data plane, loading what its store holds.
func New(opts Options) (*Service, error) {
	if opts.Directory == nil || opts.Tokens == nil {
		return nil, fmt.Errorf("%w: keyvault needs a directory and a token validator", ErrInvalidArgument)
	}
	s := &Service{dir: opts.Directory, tokens: opts.Tokens, now: opts.Now, store: opts.Store, log: opts.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.store == nil {
		s.store = store.Memory()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if _, err := s.store.Load(&s.st); err != nil {
		return nil, err
	}
	if s.st.Vaults == nil {
		s.st.Vaults = map[string]*vaultState{}
	}
	for _, vs := range s.st.Vaults {
		if vs.Secrets == nil {
			vs.Secrets = map[string]*secret{}
		}
		if vs.Deleted == nil {
			vs.Deleted = map[string]*secret{}
		}
	}
	if len(s.st.BackupKey) == 0 {
		s.st.BackupKey = make([]byte, 32)
		rand.Read(s.st.BackupKey)
		// Saved now, so that blobs made before the first write still restore after a restart.
		if err := s.store.Save(&s.st); err != nil {
			return nil, fmt.Errorf("saving the key vault state: %w", err)
		}
	}
	block, err := aes.NewCipher(s.st.BackupKey)
	if err != nil {
		return nil, fmt.Errorf("the key vault state's backup key is damaged: %w", err)
	}
	if s.backup, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return s, nil
}

// commit saves the state after a change made under s.mu. If saving fails, undo puts the change
// back, so the service never acknowledges a write it did not keep.
func (s *Service) commit(undo func()) error {
	if err := s.store.Save(&s.st); err != nil {
		undo()
		s.log.Error("saving the key vault state failed", "service", "keyvault", "err", err)
		return &apiError{status: http.StatusInternalServerError, code: "InternalServerError",
			message: "The local cloud could not save the change, so it was not made: " + err.Error()}
	}
	return nil
}

// ---- vaults

// ValidVaultName applies Azure's rules: 3–24 characters, letters, digits and hyphens, starting
// with a letter, ending with a letter or digit, and no two hyphens in a row.
func ValidVaultName(name string) bool {
	if len(name) < 3 || len(name) > 24 || !isLetter(name[0]) || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isLetter(c) && !isDigit(c) && c != '-' {
			return false
		}
		if c == '-' && name[i-1] == '-' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// CreateVault creates an empty vault in a tenant. resourceID is its Azure resource ID,
// /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}: role
// assignments name it (or a parent of it) as their scope.
func (s *Service) CreateVault(name, tenantID, resourceID string) (Vault, error) {
	if !ValidVaultName(name) {
		return Vault{}, fmt.Errorf("%w: vault name %q must be 3-24 characters of letters, digits and hyphens, start with a letter, end with a letter or digit, and have no consecutive hyphens", ErrInvalidArgument, name)
	}
	if !validVaultResourceID(resourceID, name) {
		return Vault{}, fmt.Errorf("%w: resource ID %q is not /subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/%s", ErrInvalidArgument, resourceID, name)
	}
	t, ok := s.dir.Tenant(tenantID)
	if !ok {
		return Vault{}, fmt.Errorf("%w: tenant %s does not exist in the directory", ErrInvalidArgument, tenantID)
	}
	key := strings.ToLower(name)
	v := Vault{
		Name: key, TenantID: t.ID, ResourceID: resourceID,
		URI: "https://" + key + "." + DNSSuffix + "/", CreatedAt: s.now().UTC(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Vaults[key]; ok {
		return Vault{}, fmt.Errorf("%w: the vault name %s is already in use", ErrVaultExists, key)
	}
	s.st.Vaults[key] = &vaultState{Vault: v, Secrets: map[string]*secret{}, Deleted: map[string]*secret{}}
	if err := s.commit(func() { delete(s.st.Vaults, key) }); err != nil {
		return Vault{}, err
	}
	return v, nil
}

func validVaultResourceID(id, name string) bool {
	p := strings.Split(id, "/")
	return len(p) == 9 && p[0] == "" && strings.EqualFold(p[1], "subscriptions") && p[2] != "" &&
		strings.EqualFold(p[3], "resourceGroups") && p[4] != "" && strings.EqualFold(p[5], "providers") &&
		strings.EqualFold(p[6], "Microsoft.KeyVault") && strings.EqualFold(p[7], "vaults") && strings.EqualFold(p[8], name)
}

// Vault looks a vault up by name (case-insensitive, as DNS is).
func (s *Service) Vault(name string) (Vault, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs, ok := s.st.Vaults[strings.ToLower(name)]
	if !ok {
		return Vault{}, false
	}
	return vs.Vault, true
}

// Vaults lists every vault by name.
func (s *Service) Vaults() []Vault {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Vault, 0, len(s.st.Vaults))
	for _, k := range slices.Sorted(maps.Keys(s.st.Vaults)) {
		out = append(out, s.st.Vaults[k].Vault)
	}
	return out
}

// DeleteVault deletes a vault and every secret in it, live or soft-deleted, at once (Azure would
// keep a soft-deleted vault; vault soft delete belongs to the management plane, not emulated
// here). Role assignments on it are the caller's to remove (directory.DeleteRoleAssignmentsUnder).
func (s *Service) DeleteVault(name string) error {
	key := strings.ToLower(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, ok := s.st.Vaults[key]
	if !ok {
		return fmt.Errorf("%w: %s", ErrVaultNotFound, name)
	}
	delete(s.st.Vaults, key)
	return s.commit(func() { s.st.Vaults[key] = vs })
}

// SetSecret stores a new version of a secret without any authorization: it is how the local
// cloud seeds its well-known values. It follows the REST API's rules otherwise.
func (s *Service) SetSecret(vault, name, value string) (SecretBundle, error) {
	return s.setSecret(vault, name, setParams{Value: &value})
}
