package entra

import "testing"

func BenchmarkIssueAccessToken(b *testing.B) {
	e := newEnv(b)
	for b.Loop() {
		if _, err := e.svc.IssueAccessToken(e.sp, vaultResource, ACRSecret); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateAccessToken(b *testing.B) {
	e := newEnv(b)
	at, err := e.svc.IssueAccessToken(e.sp, vaultResource, ACRSecret)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := e.svc.ValidateAccessToken(at.Token, vaultResource); err != nil {
			b.Fatal(err)
		}
	}
}
