// Package reqlog holds what the local cloud's HTTP services share for their request logs and
// for echoing a caller's input: the status a handler answered, and input cut to a safe length.
package reqlog

import "net/http"

// StatusRecorder remembers the status a handler answered, for the request log line written
// after it returns.
type StatusRecorder struct {
	http.ResponseWriter
	Status int
}

// NewStatusRecorder wraps w; a handler that never calls WriteHeader answered 200.
func NewStatusRecorder(w http.ResponseWriter) *StatusRecorder {
	return &StatusRecorder{ResponseWriter: w, Status: http.StatusOK}
}

func (r *StatusRecorder) WriteHeader(code int) {
	r.Status = code
	r.ResponseWriter.WriteHeader(code)
}

// Limit shortens client-supplied text quoted in a message or a log line, so a huge name cannot
// flood either.
func Limit(s string) string {
	const n = 200
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
