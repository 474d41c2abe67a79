package arm

import (
	"errors"
	"net/http"
	"strings"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/keyvault"
)

type vaultBody struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties *struct {
		TenantID                *string `json:"tenantId"`
		SKU                     *sku    `json:"sku"`
		EnableRbacAuthorization *bool   `json:"enableRbacAuthorization"`
	} `json:"properties"`
}

type vaultJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties vaultProperties   `json:"properties"`
}

type vaultProperties struct {
	SKU                          sku    `json:"sku"`
	TenantID                     string `json:"tenantId"`
	AccessPolicies               []any  `json:"accessPolicies"`
	EnabledForDeployment         bool   `json:"enabledForDeployment"`
	EnabledForDiskEncryption     bool   `json:"enabledForDiskEncryption"`
	EnabledForTemplateDeployment bool   `json:"enabledForTemplateDeployment"`
	EnableSoftDelete             bool   `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays    int    `json:"softDeleteRetentionInDays"`
	EnableRbacAuthorization      bool   `json:"enableRbacAuthorization"`
	VaultURI                     string `json:"vaultUri"`
	ProvisioningState            string `json:"provisioningState"`
	PublicNetworkAccess          string `json:"publicNetworkAccess"`
}

func (s *Service) vaultJSON(g *group, r *resource, v keyvault.Vault) vaultJSON {
	tags := r.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	sk := sku{Family: "A", Name: "standard"}
	if r.SKU != nil {
		sk = *r.SKU
	}
	return vaultJSON{
		ID: s.resourceID(g, r), Name: r.Name, Type: typeVaults, Location: r.Location, Tags: tags,
		Properties: vaultProperties{
			SKU: sk, TenantID: v.TenantID, AccessPolicies: []any{},
			EnableSoftDelete: true, SoftDeleteRetentionInDays: 90, EnableRbacAuthorization: true,
			VaultURI: v.URI, ProvisioningState: "Succeeded", PublicNetworkAccess: "Enabled",
		},
	}
}

func isVaultNotFound(err error) bool { return errors.Is(err, keyvault.ErrVaultNotFound) }

func (s *Service) vaultRequest(c *call, groupName string, t target) *apiError {
	if len(t.rest) > 0 {
		return noSuchOperation(c, t)
	}
	return s.resourceCRUD(c, groupName, t, s.putVault, func(t target) (any, *apiError) {
		v, ok := s.kv.Vault(t.r.Name)
		if !ok {
			return nil, resourceNotFound(t.typ, t.name, t.g.Name)
		}
		return s.vaultJSON(t.g, t.r, v), nil
	})
}

func vaultNameNotValid(name string) *apiError {
	return badRequest("VaultNameNotValid", "The vault name '%s' is invalid. A vault's name must be between 3-24 alphanumeric characters. "+
		"The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens.", reqlog.Limit(name))
}

// putVault creates a vault (201) or updates its tags and SKU (200). Local vaults always use the
// RBAC permission model: access policies are not emulated.
func (s *Service) putVault(c *call, groupName string, t target) *apiError {
	if !keyvault.ValidVaultName(t.name) {
		return vaultNameNotValid(t.name)
	}
	var b vaultBody
	if err := decodeBody(c.w, c.r, &b, false); err != nil {
		return err
	}
	switch {
	case b.Location == nil || strings.TrimSpace(*b.Location) == "":
		return badRequest("LocationRequired", "The location property is required for this definition.")
	case b.Properties == nil || b.Properties.TenantID == nil || b.Properties.SKU == nil:
		return badRequest("BadRequest", "The vault's properties must include tenantId and sku ({\"family\":\"A\",\"name\":\"standard\"}).")
	case !strings.EqualFold(*b.Properties.TenantID, s.tenant):
		return badRequest("BadRequest", "The tenant '%s' is not the subscription's tenant %s: the local cloud's vaults trust only its own tenant.",
			reqlog.Limit(*b.Properties.TenantID), s.tenant)
	case !strings.EqualFold(b.Properties.SKU.Name, "standard") && !strings.EqualFold(b.Properties.SKU.Name, "premium"):
		return badRequest("BadRequest", "The sku name '%s' is not valid: use standard or premium.", reqlog.Limit(b.Properties.SKU.Name))
	case b.Properties.EnableRbacAuthorization != nil && !*b.Properties.EnableRbacAuthorization:
		return badRequest("BadRequest", "Local vaults use the Azure RBAC permission model only: set properties.enableRbacAuthorization to true "+
			"(access policies are not emulated), then grant roles such as Key Vault Secrets User with a role assignment.")
	}
	status := http.StatusOK
	var out vaultJSON
	err := s.mutate(func() error {
		if err := s.lookup(groupName, &t); err != nil {
			return err
		}
		sk := &sku{Family: "A", Name: strings.ToLower(b.Properties.SKU.Name)}
		if t.r == nil {
			if g, _, taken := s.findResource(typeVaults, t.name); taken || s.vaultExists(t.name) {
				where := "another resource group"
				if g != nil {
					where = "resource group '" + g.Name + "'"
				}
				return conflict("VaultAlreadyExists", "The vault name '%s' is already in use (in %s). Vault names are globally unique, so choose another name.", t.name, where)
			}
			r := &resource{Type: typeVaults, Name: t.name, Location: normalizeLocation(*b.Location), CreatedAt: s.now().UTC()}
			if _, err := s.kv.CreateVault(t.name, s.tenant, s.resourceID(t.g, r)); err != nil {
				if errors.Is(err, keyvault.ErrVaultExists) {
					return conflict("VaultAlreadyExists", "The vault name '%s' is already in use.", t.name)
				}
				return err
			}
			t.g.Resources[resourceKey(typeVaults, t.name)] = r
			t.r = r
			status = http.StatusCreated
		} else if normalizeLocation(*b.Location) != t.r.Location {
			return badRequest("LocationNotAvailableForResourceType", "The vault '%s' is in %s; a vault cannot move to %s.", t.name, t.r.Location, reqlog.Limit(*b.Location))
		}
		t.r.SKU = sk
		if b.Tags != nil {
			t.r.Tags = b.Tags
		}
		v, _ := s.kv.Vault(t.name)
		out = s.vaultJSON(t.g, t.r, v)
		return nil
	})
	if err != nil {
		return asAPIError(err)
	}
	writeJSON(c.w, status, out)
	return nil
}

func (s *Service) vaultExists(name string) bool {
	_, ok := s.kv.Vault(name)
	return ok
}
