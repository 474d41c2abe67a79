//go:build !nolocalcloud

package main

// Not part of the lesson, and not in what you deploy (build with -tags nolocalcloud to leave
// it and the local cloud out). With no Azure vault configured (AZURE_KEYVAULT_URL unset), this
// file runs the step on an embedded local cloud. The well-known local values already hold
// everything step 01 needs: the vault, SecretPassword, and the app registration whose secret
// main.go carries, with Key Vault Secrets User on the vault.

import (
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/launch"
)

func init() {
	launch.Embedded("01-bootstrapping-problem", func(*localcloud.Cloud) (launch.Child, error) {
		return launch.Child{}, nil
	})
}
