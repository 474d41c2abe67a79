package frontdoor

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/testsync"
)

func TestTransportSpeaksHTTP2(t *testing.T) {
	p := startProxy(t, nil)
	client := &http.Client{Transport: p.Transport()}
	defer client.CloseIdleConnections()

	resp, body := get(t, client, "https://x.vault.azure.net/secrets/SecretPassword")
	if resp.ProtoMajor != 2 {
		t.Errorf("proto = %s, want HTTP/2", resp.Proto)
	}
	mustContain(t, "body", body, "proto=HTTP/2.0", "host=x.vault.azure.net", `alpn="h2"`, "tls=true")

	// The same tunnel carries later requests: that is how Go clients behave (PROTOCOLS.md).
	for range 3 {
		resp, _ := get(t, client, "https://x.vault.azure.net/secrets/SecretPassword")
		if resp.ProtoMajor != 2 {
			t.Errorf("proto = %s, want HTTP/2", resp.Proto)
		}
	}
}

func TestHTTP1Clients(t *testing.T) {
	p := startProxy(t, nil)
	for _, tc := range []struct {
		name       string
		nextProtos []string
		wantALPN   string
	}{
		{"alpn http/1.1", []string{"http/1.1"}, "http/1.1"},
		// Node offers no ALPN at all.
		{"no alpn", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := p.Transport()
			tr.ForceAttemptHTTP2 = false
			tr.TLSClientConfig.NextProtos = tc.nextProtos
			client := &http.Client{Transport: tr}
			defer client.CloseIdleConnections()
			resp, body := get(t, client, "https://login.microsoftonline.com/common/discovery/instance")
			if resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
				t.Errorf("proto = %s, want HTTP/1.1", resp.Proto)
			}
			mustContain(t, "body", body, "proto=HTTP/1.1", "host=login.microsoftonline.com", fmt.Sprintf("alpn=%q", tc.wantALPN))
		})
	}
}

// An app configured only through HTTPS_PROXY and SSL_CERT_FILE trusts the leaf through ca.pem alone.
func TestLeafVerifiesAgainstCAFile(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{CA: ca})
	p.Handle("*.vault.azure.net", echoHandler)
	if _, err := p.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	pemBytes, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("ca.pem holds no certificate")
	}
	tr := &http.Transport{
		Proxy:             http.ProxyURL(p.URL()),
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	const host = "myvault.vault.azure.net"
	resp, _ := get(t, &http.Client{Transport: tr}, "https://"+host+"/")

	leaf := resp.TLS.PeerCertificates[0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != host {
		t.Errorf("SAN = %v, want [%s]", leaf.DNSNames, host)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("leaf key = %T, want ECDSA P-256", leaf.PublicKey)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if root := chains[0][len(chains[0])-1]; !root.Equal(ca.Certificate()) {
		t.Errorf("chain ends at %s, want the local cloud CA", root.Subject)
	}
	if leaf.NotAfter.After(ca.Certificate().NotAfter) {
		t.Errorf("leaf outlives the CA: %v > %v", leaf.NotAfter, ca.Certificate().NotAfter)
	}

	// Without the CA the same request must fail verification.
	untrusting := &http.Transport{Proxy: http.ProxyURL(p.URL()), TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}
	defer untrusting.CloseIdleConnections()
	if _, err := (&http.Client{Transport: untrusting}).Get("https://" + host + "/"); err == nil {
		t.Error("a client that does not trust the CA accepted the leaf")
	}
}

func TestRefusals(t *testing.T) {
	p := startProxy(t, nil)
	for _, tc := range []struct {
		name   string
		raw    string
		status int
		want   []string
	}{
		{
			name:   "unregistered host",
			raw:    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			status: http.StatusForbidden,
			want:   []string{"refusing CONNECT to example.com:443", "login.microsoftonline.com, *.vault.azure.net", "nothing leaves this machine"},
		},
		{
			name:   "loopback target",
			raw:    "CONNECT 127.0.0.1:8080 HTTP/1.1\r\n\r\n",
			status: http.StatusForbidden,
			want:   []string{"refusing CONNECT to 127.0.0.1:8080"},
		},
		{
			name:   "wildcard covers one label only",
			raw:    "CONNECT a.b.vault.azure.net:443 HTTP/1.1\r\n\r\n",
			status: http.StatusForbidden,
			want:   []string{"refusing CONNECT to a.b.vault.azure.net:443"},
		},
		{
			name:   "wildcard needs a label",
			raw:    "CONNECT vault.azure.net:443 HTTP/1.1\r\n\r\n",
			status: http.StatusForbidden,
			want:   []string{"refusing CONNECT to vault.azure.net:443"},
		},
		{
			name:   "wrong port",
			raw:    "CONNECT x.vault.azure.net:80 HTTP/1.1\r\n\r\n",
			status: http.StatusForbidden,
			want:   []string{"port 443 only"},
		},
		{
			name:   "no port",
			raw:    "CONNECT x.vault.azure.net HTTP/1.1\r\n\r\n",
			status: http.StatusBadRequest,
			want:   []string{"host:443"},
		},
		{
			name:   "absolute-form GET",
			raw:    "GET http://169.254.169.254/metadata/identity/oauth2/token HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
			status: http.StatusMethodNotAllowed,
			want:   []string{"HTTPS proxy", "only CONNECT host:443", "*.vault.azure.net"},
		},
		{
			name:   "plain GET",
			raw:    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
			status: http.StatusMethodNotAllowed,
			want:   []string{"only CONNECT host:443"},
		},
		{
			name:   "garbage",
			raw:    "\x00\x01\x02 garbage\r\n\r\n",
			status: http.StatusBadRequest,
			want:   []string{"malformed proxy request"},
		},
		{
			name:   "TLS spoken to the proxy port",
			raw:    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
			status: http.StatusBadRequest,
			want:   []string{"malformed proxy request"},
		},
		{
			name:   "oversized header",
			raw:    "CONNECT x.vault.azure.net:443 HTTP/1.1\r\nX-Big: " + strings.Repeat("a", maxProxyHeaderBytes) + "\r\n\r\n",
			status: http.StatusRequestHeaderFieldsTooLarge,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawProxyRequest(t, p, tc.raw)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %s, want %d; body %q", resp.Status, tc.status, body)
			}
			mustContain(t, "body", body, tc.want...)
			if tc.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != http.MethodConnect {
				t.Errorf("Allow = %q, want CONNECT", resp.Header.Get("Allow"))
			}
		})
	}
}

// Go's client reports only the status line of a refused CONNECT, so the reason must carry the story.
func TestGoClientSeesRefusalReason(t *testing.T) {
	p := startProxy(t, nil)
	client := &http.Client{Transport: p.Transport()}
	_, err := client.Get("https://example.com/")
	if err == nil {
		t.Fatal("request to example.com succeeded")
	}
	mustContain(t, "error", err.Error(), "refusing CONNECT to example.com:443", "*.vault.azure.net")
}

func TestHostMatching(t *testing.T) {
	exact, wild := tagHandler("exact"), tagHandler("wild")
	var rt routes
	rt.add("*.Vault.Azure.NET", wild)
	rt.add("special.vault.azure.net", exact)
	rt.add("LOGIN.microsoftonline.com", exact)
	for _, tc := range []struct {
		host string
		want http.Handler
	}{
		{"myvault.vault.azure.net", wild},
		{"special.vault.azure.net", exact},
		{"login.microsoftonline.com", exact},
		{"a.b.vault.azure.net", nil},
		{"vault.azure.net", nil},
		{".vault.azure.net", nil},
		{"myvault.vault.azure.net.evil.com", nil},
		{"x.login.microsoftonline.com", nil},
		{"", nil},
	} {
		got := rt.lookup(tc.host)
		if got != tc.want {
			t.Errorf("lookup(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	if got, want := strings.Join(rt.list(), " "), "*.vault.azure.net special.vault.azure.net login.microsoftonline.com"; got != want {
		t.Errorf("patterns = %q, want %q", got, want)
	}

	for _, bad := range []string{"", "*", "*.", "a.*.b", "**.b", "host:443", "https://x", "a..b", "a b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle(%q) did not panic", bad)
				}
			}()
			rt.add(bad, exact)
		}()
	}

	// CONNECT matching is case-insensitive, and the leaf is for the lower-cased name.
	p := startProxy(t, nil)
	c := dialTunnel(t, p, "MyVault.VAULT.azure.net:443")
	tc := tls.Client(c, &tls.Config{ServerName: "myvault.vault.azure.net", RootCAs: p.CA().Pool()})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
}

// tagHandler is a comparable handler, so lookups can be checked with ==.
type tagHandler string

func (tagHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

func TestHandleWhileServing(t *testing.T) {
	p := startProxy(t, nil)
	client := &http.Client{Transport: p.Transport()}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { p.Handle(fmt.Sprintf("app%d.azurewebsites.net", i), echoHandler) })
		wg.Go(func() {
			resp, err := client.Get("https://x.vault.azure.net/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	_, body := get(t, client, "https://app7.azurewebsites.net/api/SecretTest")
	mustContain(t, "body", body, "host=app7.azurewebsites.net")
}

func TestSNIMismatchRefused(t *testing.T) {
	var logs testsync.Buffer
	p := startProxy(t, debugLogger(&logs))
	roots := p.CA().Pool()

	// Control: the matching name completes the handshake on the same kind of tunnel.
	ok := tls.Client(dialTunnel(t, p, "a.vault.azure.net:443"), &tls.Config{ServerName: "a.vault.azure.net", RootCAs: roots})
	if err := ok.Handshake(); err != nil {
		t.Fatalf("matching SNI: %v", err)
	}

	other := tls.Client(dialTunnel(t, p, "a.vault.azure.net:443"), &tls.Config{ServerName: "b.vault.azure.net", RootCAs: roots})
	if err := other.Handshake(); err == nil {
		t.Fatal("handshake with SNI b.vault.azure.net on a tunnel for a.vault.azure.net succeeded")
	}
	// Without SNI the proxy cannot know which leaf to serve; the client skips verification to get that far.
	none := tls.Client(dialTunnel(t, p, "a.vault.azure.net:443"), &tls.Config{InsecureSkipVerify: true})
	if err := none.Handshake(); err == nil {
		t.Fatal("handshake without SNI succeeded")
	}
	p.Close()
	mustContain(t, "log", logs.String(), "SNI differs from CONNECT host", "sni=b.vault.azure.net", `sni=""`)
}

func TestMisdirectedRequest(t *testing.T) {
	p := startProxy(t, nil)
	client := &http.Client{Transport: p.Transport()}
	defer client.CloseIdleConnections()
	for _, host := range []string{"b.vault.azure.net", "login.microsoftonline.com", "example.com"} {
		req, err := http.NewRequest(http.MethodGet, "https://a.vault.azure.net/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host // the tunnel is opened for the URL's host; the request claims another
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("Host %s on a tunnel for a.vault.azure.net: %s, want 421", host, resp.Status)
		}
		mustContain(t, "body", string(body), "opened for a.vault.azure.net")
	}
	// A Host with the default port is the same host.
	req, _ := http.NewRequest(http.MethodGet, "https://a.vault.azure.net/", nil)
	req.Host = "a.vault.azure.net:443"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("Host with :443: %s, want 200", resp.Status)
	}
}

func TestGarbageInsideTunnel(t *testing.T) {
	p := startProxy(t, nil)

	// Not TLS at all: the handshake fails and the proxy closes the tunnel.
	c := dialTunnel(t, p, "x.vault.azure.net:443")
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x.vault.azure.net\r\n\r\n")
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("reading from a broken tunnel: %v", err)
	}

	// TLS, then garbage instead of HTTP: the internal server answers 400 and closes.
	c = dialTunnel(t, p, "x.vault.azure.net:443")
	tc := tls.Client(c, &tls.Config{ServerName: "x.vault.azure.net", RootCAs: p.CA().Pool(), NextProtos: []string{"http/1.1"}})
	fmt.Fprint(tc, "\x00\x01garbage\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage HTTP in tunnel: %s, want 400", resp.Status)
	}

	// Garbage h2 frames after a valid preface: the connection ends, the proxy keeps serving.
	c = dialTunnel(t, p, "x.vault.azure.net:443")
	tc = tls.Client(c, &tls.Config{ServerName: "x.vault.azure.net", RootCAs: p.CA().Pool(), NextProtos: []string{"h2"}})
	fmt.Fprint(tc, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff")
	if _, err := io.ReadAll(tc); err != nil && !isReset(err) {
		t.Fatalf("reading after bad h2 frames: %v", err)
	}

	client := &http.Client{Transport: p.Transport()}
	defer client.CloseIdleConnections()
	if resp, _ := get(t, client, "https://x.vault.azure.net/"); resp.StatusCode != http.StatusOK {
		t.Errorf("after garbage: %s", resp.Status)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()

	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{CA: ca})
	p.Handle("*.vault.azure.net", echoHandler)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(l) }()

	client := &http.Client{Transport: p.Transport()}
	waitServing(t, client)
	get(t, client, "https://x.vault.azure.net/")
	tr1 := p.Transport()
	tr1.ForceAttemptHTTP2 = false
	get(t, &http.Client{Transport: tr1}, "https://y.vault.azure.net/")

	// Connections parked in every phase: before the request, before the handshake, in a tunnel.
	idle, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	preHandshake := dialTunnel(t, p, "z.vault.azure.net:443")
	tunnel := tls.Client(dialTunnel(t, p, "w.vault.azure.net:443"), &tls.Config{ServerName: "w.vault.azure.net", RootCAs: ca.Pool()})
	if err := tunnel.Handshake(); err != nil {
		t.Fatal(err)
	}

	// Close must not wait for the 10s header, handshake or idle timeouts of the parked connections.
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("Close still waiting after 5s:\n%s", buf[:runtime.Stack(buf, true)])
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
	for name, c := range map[string]net.Conn{"idle": idle, "pre-handshake": preHandshake, "tunnel": tunnel} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s connection still open after Close: %v", name, err)
		}
		c.Close()
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("listener still accepts after Close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Close = %v, want http.ErrServerClosed", err)
	}

	client.CloseIdleConnections()
	tr1.CloseIdleConnections()
	waitGoroutines(t, before)
}

// waitServing retries until Serve, started in another goroutine, has registered its listener.
func waitServing(t *testing.T, client *http.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://x.vault.azure.net/", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("proxy never started serving: %v", err)
		case <-tick.C:
		}
	}
}

func TestTransportNeverDialsDirectly(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{CA: ca})
	p.Handle("*.vault.azure.net", echoHandler)
	defer p.Close()
	// Not serving yet: a nil proxy URL would make the transport dial the host itself.
	_, err = (&http.Client{Transport: p.Transport()}).Get("https://x.vault.azure.net/")
	if err == nil || !strings.Contains(err.Error(), "not serving") {
		t.Errorf("request before Start: %v, want a not-serving error", err)
	}
}
