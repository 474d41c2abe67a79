package arm

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/appservice"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

// BlobHost is the storage account az acr build uploads its source to and reads its log from:
// the front door routes it to BlobHandler.
const BlobHost = "localcloudbuilds.blob.core.windows.net"

const (
	// maxBlobBytes caps an uploaded build context, streamed to a file as it arrives.
	maxBlobBytes = 256 << 20
	sasLifetime  = time.Hour
	blobVersion  = "2021-12-02"
)

// blobURL is a SAS URL for one blob of the build account: permission "w" to upload, "r" to read.
func (s *Service) blobURL(path, permission string) string {
	expiry := s.now().UTC().Add(sasLifetime).Truncate(time.Second).Format(time.RFC3339)
	q := url.Values{"sv": {blobVersion}, "sr": {"b"}, "sp": {permission}, "se": {expiry}, "sig": {s.sasSignature(path, permission, expiry)}}
	return "https://" + BlobHost + "/" + path + "?" + q.Encode()
}

func (s *Service) sasSignature(path, permission, expiry string) string {
	m := hmac.New(sha256.New, s.blobKey)
	m.Write([]byte(permission + "\n" + path + "\n" + expiry))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// checkSAS verifies a request's SAS: signed by this service, for this blob, with the permission,
// and not expired.
func (s *Service) checkSAS(q url.Values, path, permission string) *blobError {
	refused := &blobError{status: http.StatusForbidden, code: "AuthenticationFailed",
		message: "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."}
	sig, expiry := q.Get("sig"), q.Get("se")
	if sig == "" || !strings.Contains(q.Get("sp"), permission) {
		return refused
	}
	want := s.sasSignature(path, q.Get("sp"), expiry)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return refused
	}
	se, err := time.Parse(time.RFC3339, expiry)
	if err != nil || !s.now().Before(se) {
		refused.message = "Signed expiry time [" + reqlog.Limit(expiry) + "] must be after the current time."
		return refused
	}
	return nil
}

func logBlobPath(registry, runID string) string {
	return "logs/" + strings.ToLower(registry) + "/" + runID + ".txt"
}

// blobError is Azure Storage's XML error.
type blobError struct {
	status  int
	code    string
	message string
}

// BlobHandler serves the build blob host: PUT of a build context to source/… (as az acr build
// uploads it, x-ms-blob-type: BlockBlob) and GET or HEAD of a run's log at logs/…, each with the
// SAS that listBuildSourceUploadUrl or listLogSasUrl handed out.
func (s *Service) BlobHandler() http.Handler { return http.HandlerFunc(s.serveBlob) }

func (s *Service) serveBlob(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := reqlog.NewStatusRecorder(w)
	reqID := uuid.NewString()
	rec.Header().Set("x-ms-request-id", reqID)
	rec.Header().Set("x-ms-version", blobVersion)
	if berr := s.blob(rec, r); berr != nil {
		rec.Header().Set("x-ms-error-code", berr.code)
		rec.Header().Set("Content-Type", "application/xml")
		rec.WriteHeader(berr.status)
		if r.Method != http.MethodHead {
			var b strings.Builder
			b.WriteString(xml.Header)
			_ = xml.NewEncoder(&b).Encode(struct {
				XMLName xml.Name `xml:"Error"`
				Code    string   `xml:"Code"`
				Message string   `xml:"Message"`
			}{Code: berr.code, Message: berr.message + "\nRequestId:" + reqID + "\nTime:" + s.now().UTC().Format("2006-01-02T15:04:05.0000000Z")})
			_, _ = io.WriteString(rec, b.String())
		}
	}
	// The query holds the SAS signature: the log gets the path only.
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("service", "blob"), slog.String("method", r.Method),
		slog.String("path", r.URL.Path), slog.Int("status", rec.Status), slog.Duration("duration", time.Since(start)))
}

func (s *Service) blob(w http.ResponseWriter, r *http.Request) *blobError {
	path := strings.TrimPrefix(r.URL.Path, "/")
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut && strings.HasPrefix(path, "source/"):
		if berr := s.checkSAS(q, path, "w"); berr != nil {
			return berr
		}
		return s.putSourceBlob(w, r, path)
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(path, "logs/"):
		if berr := s.checkSAS(q, path, "r"); berr != nil {
			return berr
		}
		return s.getLogBlob(w, r, path)
	case r.Method != http.MethodPut && r.Method != http.MethodGet && r.Method != http.MethodHead:
		return &blobError{status: http.StatusMethodNotAllowed, code: "UnsupportedHttpVerb", message: "The resource doesn't support specified Http Verb."}
	}
	return &blobError{status: http.StatusNotFound, code: "BlobNotFound", message: "The specified blob does not exist."}
}

func (s *Service) putSourceBlob(w http.ResponseWriter, r *http.Request, path string) *blobError {
	if !strings.EqualFold(r.Header.Get("x-ms-blob-type"), "BlockBlob") {
		return &blobError{status: http.StatusBadRequest, code: "MissingRequiredHeader",
			message: "An HTTP header that's mandatory for this request is not specified: x-ms-blob-type (BlockBlob)."}
	}
	if r.ContentLength > maxBlobBytes {
		return blobTooLarge()
	}
	sum := md5.New()
	body := io.TeeReader(http.MaxBytesReader(w, r.Body, maxBlobBytes), sum)
	if err := s.apps.PutSource(path, body); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge), errors.Is(err, appservice.ErrInvalidArgument):
			return blobTooLarge()
		default:
			return &blobError{status: http.StatusBadRequest, code: "InvalidInput", message: fmt.Sprintf("The upload could not be kept: %v.", err)}
		}
	}
	h := w.Header()
	h.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum.Sum(nil)))
	h.Set("ETag", `"0x`+strings.ToUpper(fmt.Sprintf("%x", sum.Sum(nil)[:8]))+`"`)
	h.Set("Last-Modified", s.now().UTC().Format(http.TimeFormat))
	h.Set("x-ms-request-server-encrypted", "true")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func blobTooLarge() *blobError {
	return &blobError{status: http.StatusRequestEntityTooLarge, code: "RequestBodyTooLarge",
		message: fmt.Sprintf("The request body is too large and exceeds the maximum permissible limit (%d MiB for a build context here; add a .dockerignore).", maxBlobBytes>>20)}
}

// getLogBlob serves a run's log, with Range support; its metadata says it is complete, which is
// what az acr build's log streaming waits for.
func (s *Service) getLogBlob(w http.ResponseWriter, r *http.Request, path string) *blobError {
	notFound := &blobError{status: http.StatusNotFound, code: "BlobNotFound", message: "The specified blob does not exist."}
	rest := strings.TrimSuffix(strings.TrimPrefix(path, "logs/"), ".txt")
	registry, runID, ok := strings.Cut(rest, "/")
	if !ok {
		return notFound
	}
	run, ok := s.apps.Run(registry, runID)
	if !ok {
		return notFound
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-meta-Complete", "successful")
	h.Set("ETag", fmt.Sprintf(`"0x%X"`, run.Finish.UnixNano()))
	http.ServeContent(w, r, "", run.Finish, strings.NewReader(run.Log))
	return nil
}
