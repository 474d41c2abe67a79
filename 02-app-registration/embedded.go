//go:build !nolocalcloud

package main

// Not part of the lesson, and not in what you deploy (build with -tags nolocalcloud to leave
// it and the local cloud out). With no Azure vault configured (AZURE_KEYVAULT_URL unset), this
// file runs the step on an embedded local cloud. It does what you would do on Azure with
// `az ad sp create-for-rbac` and `az role assignment create`: register the app, give its
// service principal Key Vault Secrets User on the vault, and hand the credential to the app
// in its environment.

import (
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/launch"
)

func init() {
	launch.Embedded("02-app-registration", func(c *localcloud.Cloud) (launch.Child, error) {
		app, err := c.RegisterApp("keyvault-bootstrapping-step02")
		if err != nil {
			return launch.Child{}, err
		}
		if _, err := c.AssignRole(app.ObjectID, "Key Vault Secrets User", localcloud.VaultResourceID(localcloud.VaultName)); err != nil {
			return launch.Child{}, err
		}
		return launch.Child{Env: []string{
			"AZURE_TENANT_ID=" + localcloud.TenantID,
			"AZURE_CLIENT_ID=" + app.ClientID,
			"AZURE_CLIENT_SECRET=" + app.ClientSecret,
		}}, nil
	})
}
