package entra

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// aadError is a refusal in Entra ID's terms: the HTTP status, the OAuth 2.0 error, and the
// AADSTS code with its message, which is what a developer reads in azidentity's error.
type aadError struct {
	status int
	oauth  string // invalid_request, invalid_client, unauthorized_client, ...
	code   int    // AADSTS number
	msg    string // the text after "AADSTSnnn: "
}

func newAADError(status int, oauth string, code int, format string, args ...any) *aadError {
	return &aadError{status: status, oauth: oauth, code: code, msg: fmt.Sprintf(format, args...)}
}

func (e *aadError) Error() string { return "AADSTS" + strconv.Itoa(e.code) + ": " + e.msg }

// errorBody is Entra ID's error JSON.
type errorBody struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	ErrorURI      string `json:"error_uri"`
}

// entraTimestamp is how Entra ID writes times in errors: "2024-05-01 12:34:56Z".
const entraTimestamp = "2006-01-02 15:04:05Z"

// requestIDs are the trace ID Entra gives every request and the correlation ID, which is the
// client's client-request-id header (MSAL sends one) when it is a GUID, so logs on both sides match.
func requestIDs(r *http.Request) (trace, correlation string) {
	trace = uuid.NewString()
	if id, err := uuid.Parse(r.Header.Get("client-request-id")); err == nil {
		return trace, id.String()
	}
	return trace, uuid.NewString()
}

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, e *aadError) {
	trace, corr := requestIDs(r)
	ts := s.now().UTC().Format(entraTimestamp)
	body := errorBody{
		Error:         e.oauth,
		Description:   e.Error() + "\r\nTrace ID: " + trace + "\r\nCorrelation ID: " + corr + "\r\nTimestamp: " + ts,
		Codes:         []int{e.code},
		Timestamp:     ts,
		TraceID:       trace,
		CorrelationID: corr,
		ErrorURI:      "https://" + Host + "/error?code=" + strconv.Itoa(e.code),
	}
	w.Header().Set("x-ms-request-id", trace)
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own fixed types are marshalled here; failing is a programming error.
		panic(err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// assertionTime is how Entra ID writes times in AADSTS700024: "2024-10-02T22:05:03.6755165Z".
func assertionTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }
