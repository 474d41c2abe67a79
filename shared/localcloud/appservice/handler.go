package appservice

import (
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
)

// Handler serves https://{name}.azurewebsites.net: a reverse proxy to the web app's process,
// with the headers App Service's front ends add. An unknown app answers 404, a stopped one 403,
// one with nothing deployed App Service's placeholder page, and one that is not serving (its
// image could not be pulled, it exited or never listened) 503 "Application Error". A request
// that arrives while the app starts waits for it.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveSite) }

func (s *Service) serveSite(w http.ResponseWriter, r *http.Request) {
	key, ok := siteKey(r.Host)
	var st siteState
	var p *process
	if ok {
		s.mu.Lock()
		if found, exists := s.st.Sites[key]; exists {
			st = *found
			p = s.sites[key].proc
		} else {
			ok = false
		}
		s.mu.Unlock()
	}
	switch {
	case !ok:
		page(w, http.StatusNotFound, "404 Web Site not found", "Error 404 - Web app not found.",
			"This web app does not exist, or it has been deleted. Check the address: web app names are global, and the app is https://&lt;name&gt;."+DNSSuffix+".")
		return
	case st.State == StateStopped:
		page(w, http.StatusForbidden, "403 - This web app is stopped.", "Error 403 - This web app is stopped.",
			"The web app you have attempted to reach is currently stopped and does not accept any requests. Start it: "+
				"<code>go run ./shared/cmd/azlocal webapp start "+siteArgs(st.Spec)+"</code>")
		return
	case st.Spec.Image == "":
		page(w, http.StatusOK, "Microsoft Azure App Service - Welcome", "Your web app is running and waiting for your content",
			"Nothing is deployed to this web app yet: set its container image (az webapp config container set).")
		return
	case p == nil:
		s.applicationError(w, st.Spec)
		return
	}
	select {
	case <-p.ready:
	case <-r.Context().Done():
		return
	}
	if p.isGone() {
		s.applicationError(w, st.Spec)
		return
	}
	p.proxy.ServeHTTP(w, r)
}

// siteKey finds the web app's name in a {name}.azurewebsites.net host.
func siteKey(host string) (string, bool) {
	host = strings.ToLower(host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	name, ok := strings.CutSuffix(host, "."+DNSSuffix)
	if !ok || name == "" || strings.Contains(name, ".") {
		return "", false
	}
	return name, true
}

// newProxy forwards to the app on loopback. The app sees the host its users asked for and the
// X-Forwarded-* headers, as behind App Service's front ends.
func (s *Service) newProxy(key, resourceID string, port int) *httputil.ReverseProxy {
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	_, group := resourceGroupOf(resourceID)
	spec := SiteSpec{Name: key, ResourceID: resourceID}
	return &httputil.ReverseProxy{
		Transport: s.transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			pr.Out.Header.Set("X-Original-Host", pr.In.Host)
			pr.Out.Header.Set("X-Original-URL", pr.In.URL.RequestURI())
			if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
				pr.Out.Header.Set("X-Client-IP", ip)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("forwarding to the web app failed", "site", key, "resource_group", group, "err", err)
			s.applicationError(w, spec)
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// applicationError is App Service's page for an app that is not serving.
func (s *Service) applicationError(w http.ResponseWriter, spec SiteSpec) {
	page(w, http.StatusServiceUnavailable, "Application Error", ":( Application Error",
		"If you are the application administrator, you can access the diagnostic resources. "+
			"See why the app is not serving in its log: <code>go run ./shared/cmd/azlocal webapp log tail "+siteArgs(spec)+"</code>")
}

func siteArgs(spec SiteSpec) string {
	_, group := resourceGroupOf(spec.ResourceID)
	return "--name " + html.EscapeString(spec.Name) + " --resource-group " + html.EscapeString(group)
}

// page writes one of the platform's HTML pages; body is HTML, already escaped.
func page(w http.ResponseWriter, status int, title, heading, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>%s</title></head>\n<body><h1>%s</h1>\n<p>%s</p>\n<p><small>Local cloud App Service</small></p></body></html>\n",
		html.EscapeString(title), html.EscapeString(heading), body)
}
