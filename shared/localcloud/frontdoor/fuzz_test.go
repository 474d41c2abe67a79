package frontdoor

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// memConn is a net.Conn over fixed input: reads end with io.EOF, writes are recorded. It keeps
// each fuzz iteration synchronous and free of real timeouts.
type memConn struct {
	mu     sync.Mutex
	in     *bytes.Reader
	out    bytes.Buffer
	closed bool
}

func (c *memConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.in.Read(b)
}

func (c *memConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.out.Write(b)
}

func (c *memConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// clientHello returns the first flight a TLS client sends for serverName.
func clientHello(serverName string) []byte {
	c := &memConn{in: bytes.NewReader(nil)}
	// The handshake fails at the first read; by then the ClientHello has been written.
	_ = tls.Client(c, &tls.Config{ServerName: serverName, NextProtos: []string{"h2", "http/1.1"}}).Handshake()
	return c.out.Bytes()
}

func FuzzProxyRequest(f *testing.F) {
	ca, err := NewCA()
	if err != nil {
		f.Fatal(err)
	}
	p := New(Options{CA: ca})
	p.Handle("login.microsoftonline.com", echoHandler)
	p.Handle("*.vault.azure.net", echoHandler)
	defer p.Close()

	connect := "CONNECT x.vault.azure.net:443 HTTP/1.1\r\nHost: x.vault.azure.net:443\r\n\r\n"
	for _, seed := range []string{
		connect,
		connect + string(clientHello("x.vault.azure.net")),
		connect + string(clientHello("y.vault.azure.net")),
		connect + "garbage that is not TLS",
		"CONNECT login.microsoftonline.com:443 HTTP/1.0\r\n\r\n",
		"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		"CONNECT x.vault.azure.net:80 HTTP/1.1\r\n\r\n",
		"CONNECT x.vault.azure.net HTTP/1.1\r\n\r\n",
		"CONNECT /path HTTP/1.1\r\nHost: x.vault.azure.net:443\r\n\r\n",
		"GET http://169.254.169.254/metadata HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		string(clientHello("x.vault.azure.net")),
		"",
		"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, in []byte) {
		c := &memConn{in: bytes.NewReader(in)}
		p.handleConn(c)
		if !c.closed {
			t.Fatal("connection left open")
		}
		out := c.out.Bytes()
		if len(out) == 0 {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), &http.Request{Method: http.MethodConnect})
		if err != nil {
			t.Fatalf("proxy wrote an invalid HTTP response %q: %v", out, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusRequestHeaderFieldsTooLarge:
			if !resp.Close {
				t.Errorf("refusal without Connection: close: %q", out)
			}
			body, _ := io.ReadAll(resp.Body)
			if int64(len(body)) != resp.ContentLength && !bytes.HasPrefix(in, []byte("HEAD ")) {
				t.Errorf("body is %d bytes, Content-Length says %d", len(body), resp.ContentLength)
			}
		default:
			t.Errorf("unexpected status %s", resp.Status)
		}
	})
}
