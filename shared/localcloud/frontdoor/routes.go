package frontdoor

import (
	"net/http"
	"strings"
	"sync"
)

// routes maps host patterns to handlers. Lookups run on every CONNECT and every request, while
// registrations are rare, hence the RWMutex.
type routes struct {
	mu       sync.RWMutex
	exact    map[string]http.Handler // "login.microsoftonline.com"
	wildcard map[string]http.Handler // "vault.azure.net" for the pattern "*.vault.azure.net"
	patterns []string                // registration order, for refusal messages
}

// add registers h for pattern, replacing an earlier handler for the same pattern.
// It panics on a malformed pattern or a nil handler, like http.ServeMux, since both are programming errors.
func (rt *routes) add(pattern string, h http.Handler) {
	if h == nil {
		panic("frontdoor: nil handler for " + pattern)
	}
	p := strings.ToLower(pattern)
	suffix, isWildcard := strings.CutPrefix(p, "*.")
	if !validHostName(suffix) {
		panic("frontdoor: invalid host pattern " + `"` + pattern + `"` + ` (want "host.example" or "*.host.example")`)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	m := &rt.exact
	if isWildcard {
		m = &rt.wildcard
	}
	if *m == nil {
		*m = make(map[string]http.Handler)
	}
	if _, dup := (*m)[suffix]; !dup {
		rt.patterns = append(rt.patterns, p)
	}
	(*m)[suffix] = h
}

// lookup returns the handler for host (already lower-cased, no port), or nil. An exact pattern wins
// over a wildcard; a wildcard stands for exactly one non-empty label.
func (rt *routes) lookup(host string) http.Handler {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if h, ok := rt.exact[host]; ok {
		return h
	}
	label, rest, ok := strings.Cut(host, ".")
	if !ok || label == "" {
		return nil
	}
	return rt.wildcard[rest]
}

func (rt *routes) list() []string {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return append([]string(nil), rt.patterns...)
}

// validHostName accepts lower-case DNS names made of non-empty labels of letters, digits, '-' and '_'.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
