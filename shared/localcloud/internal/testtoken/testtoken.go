// Package testtoken gives the local cloud's package tests principals and real, signed access
// tokens for them, with one signing key shared by every test in a package.
package testtoken

import (
	"sync"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
)

// Signer is the signer the tests share: an RSA key takes tens of milliseconds to make.
var Signer = sync.OnceValue(func() *entra.Signer {
	s, err := entra.NewSigner()
	if err != nil {
		panic(err)
	}
	return s
})

// Principal registers an application with a service principal in tenant.
func Principal(t testing.TB, dir *directory.Directory, tenant, name string) directory.ServicePrincipal {
	t.Helper()
	app, err := dir.CreateApplication(tenant, name, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := dir.CreateServicePrincipal(tenant, app.AppID)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// Token is an access token for sp and audience, as a client-secret sign-in gets it.
func Token(t testing.TB, issuer *entra.Service, sp directory.ServicePrincipal, audience string) string {
	t.Helper()
	tok, err := issuer.IssueAccessToken(sp, audience, entra.ACRSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}
