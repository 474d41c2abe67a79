package arm

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/appservice"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/keyvault"
)

// Host is the management endpoint the front door routes to Handler.
const Host = "management.azure.com"

// Audiences are the token audiences ARM accepts: the resource azidentity asks for
// (https://management.azure.com/.default) and the classic one az still uses.
var Audiences = []string{"https://management.azure.com/", "https://management.core.windows.net/"}

// TokenValidator checks an access token and returns its claims; *entra.Service satisfies it.
type TokenValidator interface {
	ValidateAccessToken(raw, audience string) (*entra.Claims, error)
}

// Options configure a Service.
type Options struct {
	SubscriptionID string // the one subscription, a GUID
	TenantID       string // the subscription's tenant: only its tokens are accepted
	Directory      *directory.Directory
	Tokens         TokenValidator
	KeyVault       *keyvault.Service
	AppService     *appservice.Service // registries, builds, plans and web apps
	// Store keeps the resource groups and which resources belong to them; nil = memory only.
	Store  *store.File
	Now    func() time.Time // nil = time.Now
	Logger *slog.Logger     // nil = discard
}

// Service is the local Resource Manager. It is safe for concurrent use.
type Service struct {
	sub, tenant string
	dir         *directory.Directory
	tokens      TokenValidator
	kv          *keyvault.Service
	apps        *appservice.Service
	store       *store.File
	now         func() time.Time
	log         *slog.Logger

	blobKey []byte // a copy of st.BlobKey, which never changes

	// mu serializes changes: ARM's own state and the services it drives change together.
	mu sync.RWMutex
	st state
}

// state is what the store keeps. The resources themselves live in their services; ARM keeps
// which group each belongs to and the properties only ARM shows (location, SKU, tags).
type state struct {
	Groups map[string]*group `json:"resourceGroups"` // by lower-case name
	// Assignments maps the directory's name of a role assignment (lower case) to what ARM
	// shows for it: the name the client chose in its PUT, and who made it.
	Assignments map[string]*assignmentMeta `json:"roleAssignments"`
	// BlobKey signs the SAS URLs of the build blob host.
	BlobKey []byte `json:"blobKey"`
}

type group struct {
	Name      string               `json:"name"`
	Location  string               `json:"location"`
	Tags      map[string]string    `json:"tags,omitempty"`
	CreatedAt time.Time            `json:"createdAt"`
	Resources map[string]*resource `json:"resources"` // by resourceKey
}

// resource is one resource of a group, with the properties ARM answers with that its service
// does not keep.
type resource struct {
	Type      string            `json:"type"` // canonical, e.g. Microsoft.KeyVault/vaults
	Name      string            `json:"name"`
	Location  string            `json:"location"`
	Tags      map[string]string `json:"tags,omitempty"`
	Kind      string            `json:"kind,omitempty"`
	SKU       *sku              `json:"sku,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	// Per-type settings the local services do not model.
	AdminUserEnabled bool `json:"adminUserEnabled,omitempty"` // registries
	Reserved         bool `json:"reserved,omitempty"`         // serverfarms: Linux
	HTTPSOnly        bool `json:"httpsOnly,omitempty"`        // sites
}

type sku struct {
	Family   string `json:"family,omitempty"`
	Name     string `json:"name"`
	Tier     string `json:"tier,omitempty"`
	Size     string `json:"size,omitempty"`
	Capacity int    `json:"capacity,omitempty"`
}

type assignmentMeta struct {
	Name      string `json:"name"`
	CreatedBy string `json:"createdBy,omitempty"`
}

func resourceKey(typ, name string) string { return strings.ToLower(typ + "/" + name) }

// New opens the service, loading what its store holds.
func New(opts Options) (*Service, error) {
	if opts.Directory == nil || opts.Tokens == nil || opts.KeyVault == nil || opts.AppService == nil || opts.SubscriptionID == "" || opts.TenantID == "" {
		return nil, errors.New("arm: Options need SubscriptionID, TenantID, Directory, Tokens, KeyVault and AppService")
	}
	s := &Service{
		sub: strings.ToLower(opts.SubscriptionID), tenant: strings.ToLower(opts.TenantID),
		dir: opts.Directory, tokens: opts.Tokens, kv: opts.KeyVault, apps: opts.AppService,
		store: opts.Store, now: opts.Now, log: opts.Logger,
	}
	if s.store == nil {
		s.store = store.Memory()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if _, err := s.store.Load(&s.st); err != nil {
		return nil, err
	}
	if s.st.Groups == nil {
		s.st.Groups = map[string]*group{}
	}
	for _, g := range s.st.Groups {
		if g.Resources == nil {
			g.Resources = map[string]*resource{}
		}
	}
	if s.st.Assignments == nil {
		s.st.Assignments = map[string]*assignmentMeta{}
	}
	if len(s.st.BlobKey) == 0 {
		s.st.BlobKey = make([]byte, 32)
		_, _ = rand.Read(s.st.BlobKey)
		// Saved now, so that SAS URLs handed out before the first change work after a restart.
		if err := s.store.Save(&s.st); err != nil {
			return nil, fmt.Errorf("saving the resource manager state: %w", err)
		}
	}
	s.blobKey = slices.Clone(s.st.BlobKey)
	return s, nil
}

// SubscriptionID is the subscription this Resource Manager serves.
func (s *Service) SubscriptionID() string { return s.sub }

// mutate runs f under the write lock and saves ARM's state if f succeeded. If saving fails, the
// in-memory state goes back to what it was; what f did to other services stays done, which is
// reported as a server error.
func (s *Service) mutate(f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	before, err := json.Marshal(&s.st)
	if err != nil {
		return err
	}
	if err := f(); err != nil {
		return err
	}
	if err := s.store.Save(&s.st); err != nil {
		var restored state
		if json.Unmarshal(before, &restored) == nil {
			s.st = restored
		}
		s.log.Error("saving the resource manager state failed", "service", "arm", "err", err)
		return fmt.Errorf("saving the resource manager state: %w", err)
	}
	return nil
}

// ---- the seed's way in

// EnsureResourceGroup creates a resource group if it does not exist.
func (s *Service) EnsureResourceGroup(name, location string) error {
	if err := validGroupName(name); err != nil {
		return err
	}
	return s.mutate(func() error {
		if _, ok := s.st.Groups[strings.ToLower(name)]; !ok {
			s.st.Groups[strings.ToLower(name)] = &group{Name: name, Location: normalizeLocation(location),
				CreatedAt: s.now().UTC(), Resources: map[string]*resource{}}
		}
		return nil
	})
}

// AdoptVault records a vault that already exists in the key vault service (the well-known
// vault, which the seed creates directly) as a resource of a group, creating the group if need
// be. A vault already recorded in some group is left where it is.
func (s *Service) AdoptVault(groupName, vaultName, location string) error {
	v, ok := s.kv.Vault(vaultName)
	if !ok {
		return fmt.Errorf("arm: no vault %s to adopt", vaultName)
	}
	if err := s.EnsureResourceGroup(groupName, location); err != nil {
		return err
	}
	return s.mutate(func() error {
		if _, _, ok := s.findResource(typeVaults, v.Name); ok {
			return nil
		}
		g := s.st.Groups[strings.ToLower(groupName)]
		g.Resources[resourceKey(typeVaults, v.Name)] = &resource{Type: typeVaults, Name: v.Name, Location: g.Location,
			SKU: &sku{Family: "A", Name: "standard"}, CreatedAt: v.CreatedAt}
		return nil
	})
}

// findResource finds a resource of a type by name in any group; callers hold s.mu. Names of the
// resource types emulated here are global (a vault's or a site's name is its DNS name).
func (s *Service) findResource(typ, name string) (*group, *resource, bool) {
	key := resourceKey(typ, name)
	for _, k := range slices.Sorted(maps.Keys(s.st.Groups)) {
		g := s.st.Groups[k]
		if r, ok := g.Resources[key]; ok {
			return g, r, true
		}
	}
	return nil, nil, false
}

// ---- IDs and names

func (s *Service) subscriptionID() string { return "/subscriptions/" + s.sub }

func (s *Service) groupID(g *group) string { return s.subscriptionID() + "/resourceGroups/" + g.Name }

func (s *Service) resourceID(g *group, r *resource) string {
	return s.groupID(g) + "/providers/" + r.Type + "/" + r.Name
}

// normalizeLocation writes a location as ARM stores it: "West Europe" becomes "westeurope".
func normalizeLocation(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

// validGroupName applies ARM's rules: 1–90 letters, digits, '_', '-', '.', '(' or ')', not
// ending in '.'.
func validGroupName(name string) *apiError {
	if name == "" || len(name) > 90 || strings.HasSuffix(name, ".") {
		return badRequest("InvalidResourceGroup", "The provided resource group name '%s' is invalid: it must be 1-90 characters and must not end with a period.", reqlog.Limit(name))
	}
	var bad []string
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_-.()", c)
		if !ok && !slices.Contains(bad, string(c)) {
			bad = append(bad, string(c))
		}
	}
	if len(bad) > 0 {
		return badRequest("InvalidResourceGroup", "The provided resource group name '%s' has these invalid characters: '%s'. The name can only be a letter, digit, '-', '.', '(', ')' or '_'.",
			reqlog.Limit(name), strings.Join(bad, ""))
	}
	return nil
}

// armTime is how ARM writes times: "2023-08-23T12:47:46.5507039Z".
func armTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }
