// Package localcloudtest gives tests a local cloud in one line, the way httptest gives them a
// server: in-process, in memory, on free loopback ports, closed when the test ends.
package localcloudtest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
)

// Start starts a local cloud seeded with the well-known values and closes it at the end of t.
// Its per-request log goes to t.Log, so a failing test shows the flow.
func Start(t testing.TB, opts ...func(*localcloud.Options)) *localcloud.Cloud {
	t.Helper()
	o := localcloud.Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, f := range opts {
		f(&o)
	}
	c, err := localcloud.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("starting the local cloud: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the local cloud: %v", err)
		}
	})
	return c
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
