package main

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const vaultProvider = "Microsoft.KeyVault/vaults"

func addKeyVault(a *app, root *cobra.Command) {
	kv := group(root, "keyvault", "Manage KeyVault keys, secrets, and certificates.")
	var name, rg, location, sku string
	var rbac, purgeProtection bool
	var retentionDays int
	var tags []string
	a.add(kv, command{
		use: "create", short: "Create a Vault.",
		required: []string{"name", "resource-group"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&name, "name", "n", "", "Name of the Vault.")
			fs.StringVarP(&rg, "resource-group", "g", "", "Name of resource group.")
			fs.StringVarP(&location, "location", "l", "", "Location. Defaults to the resource group's.")
			fs.BoolVar(&rbac, "enable-rbac-authorization", true, "Use Azure RBAC for data plane authorization (the only model the local cloud emulates).")
			fs.StringVar(&sku, "sku", "standard", "Required. SKU details: standard or premium.")
			fs.IntVar(&retentionDays, "retention-days", 90, "Soft delete data retention days.")
			fs.BoolVar(&purgeProtection, "enable-purge-protection", false, "Accepted.")
			fs.StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value].")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			if !rbac {
				return nil, failure("the local cloud's Key Vault emulates only the Azure RBAC permission model: drop --enable-rbac-authorization false")
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			if location == "" {
				if location, err = a.groupLocation(c, rg); err != nil {
					return nil, err
				}
			}
			props := map[string]any{
				"tenantId":                  c.tenantID,
				"sku":                       map[string]any{"family": "A", "name": strings.ToLower(sku)},
				"enableRbacAuthorization":   true,
				"enableSoftDelete":          true,
				"softDeleteRetentionInDays": retentionDays,
			}
			if purgeProtection {
				props["enablePurgeProtection"] = true
			}
			body := map[string]any{"location": location, "properties": props}
			if len(tags) > 0 {
				body["tags"] = parseTags(tags)
			}
			return c.arm(a.ctx, http.MethodPut, c.resourcePath(rg, vaultProvider, name), apiKeyVault, body)
		},
	})
	nameFlags := func(fs *pflag.FlagSet) {
		fs.StringVarP(&name, "name", "n", "", "Name of the Vault.")
		fs.StringVarP(&rg, "resource-group", "g", "", "Proceed only if Key Vault belongs to the specified resource group.")
	}
	a.add(kv, command{
		use: "show", short: "Show details of a Vault.",
		required: []string{"name"},
		flags:    nameFlags,
		run: connected(func(a *app, c *cloud) (any, error) {
			if rg == "" {
				return a.findResource(c, vaultProvider, name, apiKeyVault, "Vault")
			}
			return c.arm(a.ctx, http.MethodGet, c.resourcePath(rg, vaultProvider, name), apiKeyVault, nil)
		}),
	})
	a.add(kv, command{
		use: "delete", short: "Delete a Vault.",
		required: []string{"name"},
		flags:    nameFlags,
		run: connected(func(a *app, c *cloud) (any, error) {
			if rg == "" {
				v, err := a.findResource(c, vaultProvider, name, apiKeyVault, "Vault")
				if err != nil {
					return nil, err
				}
				rg = get(v, "resourceGroup")
				if rg == "" {
					rg = strings.Split(get(v, "id"), "/")[4]
				}
			}
			a.warn("If you have soft-delete protection enabled on this key vault, you will not be able to reuse this key vault name until the key vault has been purged from the soft deleted state. Please see the following documentation for additional guidance.\nhttps://docs.microsoft.com/azure/key-vault/general/soft-delete-overview")
			_, err := c.arm(a.ctx, http.MethodDelete, c.resourcePath(rg, vaultProvider, name), apiKeyVault, nil)
			return nil, err
		}),
	})
	a.add(kv, command{
		use: "list", short: "List Vaults within a subscription or resource group.",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&rg, "resource-group", "g", "", "Name of resource group.")
			fs.String("resource-type", "vault", "When --resource-type is not present the command will list all Vaults (the local cloud has no HSMs).")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			return a.listResources(c, rg, vaultProvider, apiKeyVault)
		}),
	})
	var purgeLocation string
	a.add(kv, command{
		use: "purge", short: "Permanently delete the specified vault.",
		required: []string{"name"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&name, "name", "n", "", "Name of the deleted Vault.")
			fs.StringVarP(&purgeLocation, "location", "l", "", "Location of the deleted Vault.")
			fs.Bool("no-wait", false, "Do not wait for the long-running operation to finish.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			// The local cloud deletes a vault at once, with no soft-deleted state to purge: a
			// vault that no longer exists is as purged as it gets.
			_, err := a.findResource(c, vaultProvider, name, apiKeyVault, "Vault")
			switch {
			case err == nil:
				return nil, notFound("(ResourceNotFound) The vault '%s' is not in a deleted state: delete it first with 'az keyvault delete'.", name)
			case exitCode(err) != exitNotFound:
				return nil, err
			}
			a.info("the local cloud keeps no soft-deleted vaults: '%s' is already gone", name)
			return nil, nil
		}),
	})
	addSecret(a, kv)
}

func addSecret(a *app, kv *cobra.Command) {
	secret := group(kv, "secret", "Manage secrets.")
	var vaultName, name, value, file, encoding, contentType, version, id string
	var disabled bool
	var tags []string
	a.add(secret, command{
		use: "set", short: "Create a secret (if one doesn't exist) or update a secret in a KeyVault.",
		required: []string{"vault-name", "name"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&vaultName, "vault-name", "", "Name of the Key Vault.")
			fs.StringVarP(&name, "name", "n", "", "Name of the secret.")
			fs.StringVar(&value, "value", "", "Plain text secret value. Cannot be used with '--file' or '--encoding'.")
			fs.StringVarP(&file, "file", "f", "", "Source file for secret. Use in conjunction with '--encoding'.")
			fs.StringVarP(&encoding, "encoding", "e", "utf-8", "Source file encoding: ascii, base64, hex, utf-8 (the value is stored as text).")
			fs.StringVar(&contentType, "content-type", "", "Type of the secret value such as a password.")
			fs.BoolVar(&disabled, "disabled", false, "Create secret in disabled state.")
			fs.StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value].")
		},
		run: func(a *app, cmd *cobra.Command, _ []string) (any, error) {
			hasValue, hasFile := cmd.Flags().Changed("value"), file != ""
			if hasValue == hasFile {
				return nil, usageError("usage error: --value VALUE | --file PATH")
			}
			if hasFile {
				v, err := readSecretFile(file, encoding)
				if err != nil {
					return nil, err
				}
				value = v
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			body := map[string]any{"value": value, "attributes": map[string]any{"enabled": !disabled}}
			if contentType != "" {
				body["contentType"] = contentType
			}
			if len(tags) > 0 {
				body["tags"] = parseTags(tags)
			}
			v, err := c.vault(a.ctx, http.MethodPut, vaultName, "/secrets/"+url.PathEscape(name), nil, body)
			if err != nil {
				return nil, err
			}
			return secretBundle(v, true), nil
		},
	})
	a.add(secret, command{
		use: "show", short: "Get a specified secret from a given key vault.",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&vaultName, "vault-name", "", "Name of the Key Vault.")
			fs.StringVarP(&name, "name", "n", "", "Name of the secret.")
			fs.StringVarP(&version, "version", "v", "", "The secret version. If omitted, uses the latest version.")
			fs.StringVar(&id, "id", "", "Id of the secret. If specified all other 'Id' arguments should be omitted.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			if id != "" {
				u, err := url.Parse(id)
				parts := strings.Split(strings.Trim(u.Path, "/"), "/")
				if err != nil || !strings.HasSuffix(u.Host, vaultSuffix) || len(parts) < 2 || parts[0] != "secrets" {
					return nil, usageError("argument --id: invalid secret id '%s'", id)
				}
				vaultName, name = strings.TrimSuffix(u.Host, vaultSuffix), parts[1]
				if len(parts) > 2 {
					version = parts[2]
				}
			}
			if vaultName == "" || name == "" {
				return nil, usageError("usage error: --id ID | --vault-name VAULT --name NAME [--version VERSION]")
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			path := "/secrets/" + url.PathEscape(name)
			if version != "" {
				path += "/" + url.PathEscape(version)
			}
			v, err := c.vault(a.ctx, http.MethodGet, vaultName, path, nil, nil)
			if err != nil {
				return nil, err
			}
			return secretBundle(v, true), nil
		},
	})
	var maxResults int
	a.add(secret, command{
		use: "list", short: "List secrets in a specified key vault.",
		required: []string{"vault-name"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&vaultName, "vault-name", "", "Name of the Key Vault.")
			fs.IntVar(&maxResults, "maxresults", 0, "Maximum number of results to return in a page.")
			fs.Bool("include-managed", false, "Include managed secrets (there are none here).")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			q := url.Values{}
			if maxResults > 0 {
				q.Set("maxresults", strconv.Itoa(maxResults))
			}
			out := []any{}
			v, err := c.vault(a.ctx, http.MethodGet, vaultName, "/secrets", q, nil)
			for err == nil {
				for _, item := range list(v, "value") {
					out = append(out, secretBundle(item, false))
				}
				next := get(v, "nextLink")
				if next == "" || (maxResults > 0 && len(out) >= maxResults) {
					break
				}
				v, err = c.call(a.ctx, request{method: http.MethodGet, url: next, scope: vaultScope})
			}
			return out, err
		}),
	})
}

// readSecretFile reads --file as az does with --encoding: the stored value is text.
func readSecretFile(path, encoding string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", failure("%v", err)
	}
	switch strings.ToLower(encoding) {
	case "utf-8", "ascii":
		return string(raw), nil
	case "base64":
		return base64.StdEncoding.EncodeToString(raw), nil
	case "hex":
		return hex.EncodeToString(raw), nil
	}
	return "", usageError("argument --encoding/-e: invalid choice: '%s' (choose from 'ascii', 'base64', 'hex', 'utf-8')", encoding)
}

// secretBundle is az's view of a Key Vault secret: attributes with ISO times, the name and, for a
// full bundle, the value and kid.
func secretBundle(v any, full bool) map[string]any {
	attrs := obj(v, "attributes")
	out := map[string]any{
		"attributes": map[string]any{
			"created":       isoTime(attrs["created"]),
			"enabled":       attrs["enabled"],
			"expires":       isoTime(attrs["exp"]),
			"notBefore":     isoTime(attrs["nbf"]),
			"recoveryLevel": attrs["recoveryLevel"],
			"updated":       isoTime(attrs["updated"]),
		},
		"contentType": nilIfEmpty(get(v, "contentType")),
		"id":          get(v, "id"),
		"managed":     nil,
		"name":        secretName(get(v, "id")),
		"tags":        obj(v, "tags"),
	}
	m, _ := v.(map[string]any)
	if m["managed"] != nil {
		out["managed"] = m["managed"]
	}
	if full {
		out["kid"] = nilIfEmpty(get(v, "kid"))
		out["value"] = m["value"]
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// secretName is the name in https://<vault>.vault.azure.net/secrets/<name>[/<version>].
func secretName(id string) any {
	parts := strings.Split(id, "/")
	if len(parts) > 4 {
		return parts[4]
	}
	return nil
}

// isoTime renders Key Vault's Unix seconds the way az prints a datetime.
func isoTime(v any) any {
	f, ok := v.(float64)
	if !ok {
		return nil
	}
	return time.Unix(int64(f), 0).UTC().Format("2006-01-02T15:04:05+00:00")
}
