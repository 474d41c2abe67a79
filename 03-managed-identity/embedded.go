//go:build !nolocalcloud

package main

// Not part of the lesson, and not in what you deploy (build with -tags nolocalcloud to leave
// it and the local cloud out). With no Azure vault configured (AZURE_KEYVAULT_URL unset), this
// file runs the step on an embedded local cloud. It plays App Service: it turns on the web
// app's system-assigned managed identity (`az webapp identity assign`), gives it Key Vault
// Secrets User on the vault, starts the identity endpoint, and starts the app with
// IDENTITY_ENDPOINT and IDENTITY_HEADER in its environment.

import (
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/launch"
)

func init() {
	launch.Embedded("03-managed-identity", func(c *localcloud.Cloud) (launch.Child, error) {
		return launch.AppService(c, "app-step03")
	})
}
