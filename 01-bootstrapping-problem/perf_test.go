package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

// TestTenThousandRequestsCostOneSignIn proves the app keeps its secret and its token: serving
// requests never calls Entra ID (or the vault) again.
func TestTenThousandRequestsCostOneSignIn(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t, func(o *localcloud.Options) { o.Logger = nil })
	app := startApp(t, cloud)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	for i := range 10_000 {
		resp, err := client.Get(app.URL + "/api/SecretTest")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	if n := cloud.Entra.TokenRequests(); n != 1 {
		t.Fatalf("10,000 requests made %d token requests, want 1 (the one at start-up)", n)
	}
}

// BenchmarkSecretTest serves /api/SecretTest from the cached secret, and a bare net/http handler
// writing the same bytes, through the same kind of server and client: compare their ns/op.
func BenchmarkSecretTest(b *testing.B) {
	secret := &cachedSecret{name: secretName, log: slog.New(slog.DiscardHandler),
		value: localcloud.SecretValue, version: "v1", loadedAt: time.Now()}
	rec := httptest.NewRecorder()
	secret.serveSecretTest(rec, nil)
	body := rec.Body.Bytes()
	bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(body)
	})
	cached := http.NewServeMux()
	cached.HandleFunc("GET /api/SecretTest", secret.serveSecretTest)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"cached", cached}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := httptest.NewServer(bc.h)
			defer srv.Close()
			url := srv.URL + "/api/SecretTest"
			b.RunParallel(func(pb *testing.PB) {
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
				for pb.Next() {
					resp, err := client.Get(url)
					if err != nil {
						panic(fmt.Sprint(err))
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
