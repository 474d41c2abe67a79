package main

// Not part of the lesson: this file runs the step on an embedded local cloud when no Azure
// vault is configured (AZURE_KEYVAULT_URL unset). The well-known local values already hold
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
