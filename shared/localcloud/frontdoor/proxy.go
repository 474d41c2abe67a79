// Package frontdoor is the local cloud's way in: it stands in for the public internet and
// Azure's TLS front ends. Apps reach it as their HTTPS_PROXY; it accepts CONNECT host:443 only for
// host names a local service has registered (login.microsoftonline.com, *.vault.azure.net, …),
// terminates TLS with a leaf certificate minted from its own CA, and hands each request to the
// service registered for the host. Because the app's SDK still dials Azure's real host names,
// verifies a real certificate chain and speaks HTTP/2, lesson code runs unchanged.
//
// It leaves out everything else the real front ends do: DNS, anycast, DDoS protection, WAF,
// regional routing, certificate transparency, OCSP. It never dials out: a CONNECT to any other
// host is refused with an explanation, so nothing leaves the machine.
package frontdoor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// headerReadTimeout bounds reading the CONNECT request, so idle or slow clients cannot pin goroutines.
	headerReadTimeout = 10 * time.Second
	// handshakeTimeout bounds the 200 reply plus the TLS handshake inside the tunnel.
	handshakeTimeout = 10 * time.Second
	// idleTimeout exceeds Go's client idle timeout (90s), so the client, not the server, retires idle tunnels.
	idleTimeout = 2 * time.Minute
	// maxProxyHeaderBytes caps a CONNECT request; real ones are a few hundred bytes.
	maxProxyHeaderBytes = 16 << 10
	// maxHeaderBytes caps request headers inside the tunnel; bearer tokens are a few KiB.
	maxHeaderBytes = 64 << 10
)

// Options configures a Proxy.
type Options struct {
	CA     *CA          // required: signs the leaf certificates
	Logger *slog.Logger // nil discards logs
}

// Proxy is the HTTPS front door. Create it with New, register hosts with Handle, and run it with
// Start or Serve; Close stops it.
type Proxy struct {
	ca     *CA
	log    *slog.Logger
	routes routes

	// srv serves every tunnel after the TLS handshake, so HTTP/1.1 and HTTP/2 come from net/http.
	srv     *http.Server
	tunnels *tunnelListener

	// ctx is cancelled by Close; it aborts handshakes and cancels in-flight requests.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	ln        net.Listener
	innerDone chan struct{} // closed when srv.Serve returns
	closed    bool
	conns     map[net.Conn]struct{} // proxy-side conns not yet handed to srv
	// wg counts the accept loop, srv.Serve, per-connection goroutines and srv's connections.
	wg sync.WaitGroup
}

// New returns a Proxy with no routes. It panics if opts.CA is nil.
func New(opts Options) *Proxy {
	if opts.CA == nil {
		panic("frontdoor: Options.CA is nil")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ca:      opts.CA,
		log:     log,
		tunnels: newTunnelListener(),
		ctx:     ctx,
		cancel:  cancel,
		conns:   make(map[net.Conn]struct{}),
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serveTunneled),
		Protocols:         &protocols,
		ReadHeaderTimeout: headerReadTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnState:         p.trackServed,
	}
	return p
}

// Handle registers h for a host pattern: an exact host ("login.microsoftonline.com") or a
// one-label wildcard ("*.vault.azure.net" matches "myvault.vault.azure.net", but neither
// "a.b.vault.azure.net" nor "vault.azure.net"). Matching is case-insensitive and an exact pattern
// wins over a wildcard. Registering a pattern again replaces its handler. Handle may be called
// while serving. It panics on a malformed pattern or a nil handler.
func (p *Proxy) Handle(pattern string, h http.Handler) { p.routes.add(pattern, h) }

// Patterns returns the registered host patterns in registration order.
func (p *Proxy) Patterns() []string { return p.routes.list() }

// CA returns the CA the proxy mints leaves from.
func (p *Proxy) CA() *CA { return p.ca }

// Start listens on addr (for example "127.0.0.1:0") and serves in the background until Close.
// It returns the bound address, so Addr, URL and Transport work as soon as it returns.
func (p *Proxy) Start(addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("frontdoor: %w", err)
	}
	if err := p.begin(l); err != nil {
		return nil, err
	}
	go func() {
		defer p.wg.Done()
		if err := p.acceptLoop(l); !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("frontdoor: stopped accepting", "err", err)
		}
	}()
	return l.Addr(), nil
}

// Serve accepts proxy connections on l until Close, then returns http.ErrServerClosed. It takes
// ownership of l and may be called once per Proxy (or Start, not both).
func (p *Proxy) Serve(l net.Listener) error {
	if err := p.begin(l); err != nil {
		return err
	}
	defer p.wg.Done()
	return p.acceptLoop(l)
}

// begin records l as the proxy's listener and starts the internal server. On success the caller
// owns one wg count for its accept loop.
func (p *Proxy) begin(l net.Listener) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		l.Close()
		return http.ErrServerClosed
	}
	if p.ln != nil {
		l.Close()
		return errors.New("frontdoor: proxy is already serving")
	}
	p.ln = l
	p.innerDone = make(chan struct{})
	p.wg.Add(2)
	go func(done chan struct{}) {
		defer p.wg.Done()
		defer close(done)
		// It only returns once tunnels is closed by Close; that error carries no information.
		_ = p.srv.Serve(p.tunnels)
	}(p.innerDone)
	return nil
}

func (p *Proxy) acceptLoop(l net.Listener) error {
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			if p.isClosed() {
				return http.ErrServerClosed
			}
			return fmt.Errorf("frontdoor: accept: %w", err)
		}
		if !p.track(c) {
			c.Close()
			continue
		}
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.handleConn(c)
		}()
	}
}

// Addr returns the proxy's listening address, or nil before Start or Serve.
func (p *Proxy) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// URL returns the value for HTTPS_PROXY ("http://127.0.0.1:PORT"), or nil before Start or Serve.
// An unspecified listening address is reported as loopback, which is where clients reach it.
func (p *Proxy) URL() *url.URL {
	addr, ok := p.Addr().(*net.TCPAddr)
	if !ok {
		return nil
	}
	ip := addr.IP
	switch {
	case ip == nil || ip.Equal(net.IPv4zero):
		ip = net.IPv4(127, 0, 0, 1)
	case ip.Equal(net.IPv6unspecified):
		ip = net.IPv6loopback
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))}
}

// Transport returns an http.Transport for in-process clients and tests: it goes through this
// proxy, trusts only this proxy's CA and offers HTTP/2. It refuses to dial anything but the proxy.
func (p *Proxy) Transport() *http.Transport {
	return &http.Transport{
		Proxy: func(*http.Request) (*url.URL, error) {
			// Returning nil would mean "dial directly", which must never happen.
			if u := p.URL(); u != nil {
				return u, nil
			}
			return nil, errors.New("frontdoor: proxy is not serving")
		},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if u := p.URL(); u == nil || addr != u.Host {
				return nil, fmt.Errorf("frontdoor: transport dials only the local cloud proxy, not %s", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: handshakeTimeout,
		IdleConnTimeout:     90 * time.Second,
	}
}

// Close stops the proxy: it closes the listener and every tunnel and waits for the goroutines
// serving them. HTTP/2 handlers still running see their request context cancelled. Calling it
// again does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	ln, innerDone := p.ln, p.innerDone
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()

	p.cancel()
	var err error
	if ln != nil {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	for _, c := range conns {
		c.Close()
	}
	p.tunnels.Close()
	// srv.Close must follow the end of srv.Serve: a conn accepted after srv.Close would not be closed.
	if innerDone != nil {
		<-innerDone
	}
	p.srv.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// track registers a proxy-side conn so Close can cut it; it takes a wg count for its goroutine.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// trackServed counts srv's connections in wg, so Close also waits for their goroutines.
// StateNew runs inside srv.Serve, which holds a wg count, so the Add never races with Wait.
func (p *Proxy) trackServed(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		p.wg.Add(1)
	case http.StateClosed, http.StateHijacked:
		p.wg.Done()
	}
}

// handleConn reads one proxy request from c. A valid CONNECT to a registered host gets
// "200 Connection established", a TLS handshake, and is handed to srv; anything else gets a
// refusal and is closed.
func (p *Proxy) handleConn(c net.Conn) {
	handedOff := false
	defer func() {
		if !handedOff {
			c.Close()
		}
	}()
	client := c.RemoteAddr().String()

	c.SetDeadline(time.Now().Add(headerReadTimeout))
	lr := &headerLimitReader{r: c, n: maxProxyHeaderBytes}
	br := bufio.NewReader(lr)
	req, err := http.ReadRequest(br)
	if err != nil {
		p.refuseUnreadable(c, lr, err, client)
		return
	}
	if req.Method != http.MethodConnect {
		p.log.Warn("frontdoor: refusing non-CONNECT request", "method", req.Method, "host", req.Host, "client", client)
		body := fmt.Sprintf("localcloud: this is an HTTPS proxy (HTTPS_PROXY); it accepts only CONNECT host:443 "+
			"for the emulated Azure hosts (%s). It does not proxy plain HTTP; nothing leaves this machine.\n",
			p.describePatterns())
		writeResponse(c, http.StatusMethodNotAllowed, "", "Allow: CONNECT\r\n", body, req.Method != http.MethodHead)
		return
	}
	target := req.URL.Host
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" {
		p.log.Warn("frontdoor: refusing CONNECT without host:port", "client", client)
		writeResponse(c, http.StatusBadRequest, "", "",
			"localcloud: CONNECT needs a target of the form host:443.\n", true)
		return
	}
	host = strings.ToLower(host)
	var refusal string
	switch {
	case p.routes.lookup(host) == nil:
		refusal = fmt.Sprintf("localcloud: refusing CONNECT to %s: the local cloud emulates only %s; nothing leaves this machine.",
			target, p.describePatterns())
	case port != "443":
		refusal = fmt.Sprintf("localcloud: refusing CONNECT to %s: emulated hosts are served on port 443 only; nothing leaves this machine.",
			target)
	}
	if refusal != "" {
		p.log.Warn("frontdoor: refusing CONNECT", "target", target, "client", client)
		// The reason phrase repeats the explanation because Go's client reports only the status line.
		writeResponse(c, http.StatusForbidden, refusal, "", refusal+"\n", true)
		return
	}

	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	tunnel := c
	if n := br.Buffered(); n > 0 {
		// The client sent its ClientHello without waiting for the 200; keep the bytes bufio read ahead.
		early, _ := br.Peek(n)
		tunnel = &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(bytes.Clone(early)), c)}
	}
	tlsConn := tls.Server(tunnel, p.tunnelTLSConfig(host, client))
	if err := tlsConn.HandshakeContext(p.ctx); err != nil {
		p.log.Debug("frontdoor: TLS handshake failed", "host", host, "client", client, "err", err)
		return
	}
	c.SetDeadline(time.Time{})
	p.log.Debug("frontdoor: tunnel", "host", host, "client", client, "alpn", tlsConn.ConnectionState().NegotiatedProtocol)
	handedOff = p.tunnels.deliver(tlsConn)
}

// refuseUnreadable answers a request that could not be parsed. Connections that fail on I/O
// (reset, timeout, closed by Close) or that close before sending anything are dropped silently.
func (p *Proxy) refuseUnreadable(c net.Conn, lr *headerLimitReader, err error, client string) {
	switch {
	case errors.Is(err, errHeaderTooLarge):
		p.log.Warn("frontdoor: refusing oversized proxy request", "client", client)
		writeResponse(c, http.StatusRequestHeaderFieldsTooLarge, "", "",
			"localcloud: proxy request headers are too large.\n", true)
	case lr.err != nil && !errors.Is(lr.err, io.EOF), lr.read == 0:
		p.log.Debug("frontdoor: proxy connection ended before a request", "client", client, "err", err)
	default:
		p.log.Warn("frontdoor: refusing malformed proxy request", "client", client)
		body := fmt.Sprintf("localcloud: malformed proxy request; this is an HTTPS proxy that accepts only "+
			"CONNECT host:443 for the emulated Azure hosts (%s).\n", p.describePatterns())
		writeResponse(c, http.StatusBadRequest, "", "", body, true)
	}
}

func (p *Proxy) describePatterns() string {
	patterns := p.routes.list()
	if len(patterns) == 0 {
		return "no hosts yet (none are registered)"
	}
	return strings.Join(patterns, ", ")
}

// tunnelTLSConfig serves the CONNECT host's leaf and refuses any other SNI, so a tunnel opened for
// one host cannot be used to impersonate another.
func (p *Proxy) tunnelTLSConfig(host, client string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if !strings.EqualFold(hello.ServerName, host) {
				p.log.Warn("frontdoor: refusing TLS handshake: SNI differs from CONNECT host",
					"connect_host", host, "sni", hello.ServerName, "client", client)
				return nil, fmt.Errorf("frontdoor: SNI %q does not match CONNECT host %q", hello.ServerName, host)
			}
			return p.ca.LeafFor(host)
		},
	}
}

// serveTunneled routes a request that arrived through a tunnel to the handler for its Host.
func (p *Proxy) serveTunneled(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	// The handshake guaranteed ServerName equals the CONNECT host.
	tunnelHost := strings.ToLower(r.TLS.ServerName)
	h := p.routes.lookup(host)
	if host != tunnelHost || h == nil {
		p.log.Warn("frontdoor: misdirected request", "host", host, "tunnel_host", tunnelHost)
		http.Error(w, fmt.Sprintf("localcloud: this connection was opened for %s; a request for %q needs its own CONNECT.",
			tunnelHost, host), http.StatusMisdirectedRequest)
		return
	}
	h.ServeHTTP(w, r)
}

// writeResponse writes a complete plain-text response that closes the connection. An empty
// reason uses the standard status text; extraHeaders are CRLF-terminated lines.
func writeResponse(w io.Writer, status int, reason, extraHeaders, body string, withBody bool) {
	if reason == "" {
		reason = http.StatusText(status)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n",
		status, sanitizeReason(reason), len(body), extraHeaders)
	if withBody {
		b.WriteString(body)
	}
	// The connection is closed next either way; a failed write needs no handling.
	_, _ = io.WriteString(w, b.String())
}

// sanitizeReason keeps client-supplied text in a reason phrase from breaking the status line.
func sanitizeReason(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

var errHeaderTooLarge = errors.New("frontdoor: proxy request headers too large")

// headerLimitReader caps the bytes read while parsing the CONNECT request and remembers the
// connection's own read error, to tell a broken connection from a malformed request.
type headerLimitReader struct {
	r    io.Reader
	n    int   // bytes still allowed
	read int   // bytes read so far
	err  error // first error from r
}

func (l *headerLimitReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if len(b) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= n
	l.read += n
	if err != nil && l.err == nil {
		l.err = err
	}
	return n, err
}

// prefixConn replays bytes read ahead of the TLS handshake before reading from the conn.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// tunnelListener feeds handshaken tunnels to srv, which serves them like any TLS listener's conns.
type tunnelListener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newTunnelListener() *tunnelListener {
	return &tunnelListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *tunnelListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *tunnelListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *tunnelListener) Addr() net.Addr { return tunnelAddr{} }

// deliver hands c to srv; it reports false once the listener is closed.
func (l *tunnelListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

type tunnelAddr struct{}

func (tunnelAddr) Network() string { return "tunnel" }
func (tunnelAddr) String() string  { return "localcloud-tunnels" }
