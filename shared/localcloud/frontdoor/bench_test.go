package frontdoor

import (
	"io"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkLeafMint measures the first handshake's extra cost for a new host: minting its leaf.
func BenchmarkLeafMint(b *testing.B) {
	ca, err := NewCA()
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if _, err := ca.LeafFor("v" + strconv.Itoa(i) + ".vault.azure.net"); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkTunnelRequest measures a request on a warm HTTP/2 tunnel, what every GetSecret after the first costs.
func BenchmarkTunnelRequest(b *testing.B) {
	p := startProxy(b, nil)
	client := &http.Client{Transport: p.Transport()}
	defer client.CloseIdleConnections()
	do := func() {
		resp, err := client.Get("https://x.vault.azure.net/secrets/SecretPassword")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			b.Fatalf("proto = %s, want HTTP/2", resp.Proto)
		}
	}
	do()
	for b.Loop() {
		do()
	}
}
