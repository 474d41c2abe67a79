package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

// apiError is a refusal in ARM's terms: the status and the {"error":{"code","message"}} body.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, code, format, args...)
}

func notFound(code, format string, args ...any) *apiError {
	return newError(http.StatusNotFound, code, format, args...)
}

func conflict(code, format string, args ...any) *apiError {
	return newError(http.StatusConflict, code, format, args...)
}

func groupNotFound(name string) *apiError {
	return notFound("ResourceGroupNotFound", "Resource group '%s' could not be found.", name)
}

func resourceNotFound(typ, name, group string) *apiError {
	return notFound("ResourceNotFound", "The Resource '%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", typ, name, group)
}

func methodNotAllowed(method string, allowed ...string) *apiError {
	return newError(http.StatusMethodNotAllowed, "MethodNotAllowed",
		"The requested resource does not support http method '%s'. It supports %s.", reqlog.Limit(method), strings.Join(allowed, ", "))
}

func internal(err error) *apiError {
	return newError(http.StatusInternalServerError, "InternalServerError",
		"The local cloud could not complete the request, so nothing changed: %v", err)
}

// asAPIError keeps an apiError as it is and treats anything else as the local cloud's own failure.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return internal(err)
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	var b errorBody
	b.Error.Code, b.Error.Message = e.code, e.message
	w.Header().Set("x-ms-failure-cause", "gateway")
	writeJSON(w, e.status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "-1")
	w.WriteHeader(status)
	if v == nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only this package's own types are written; failing is a programming error.
		panic(err)
	}
	_, _ = w.Write(b)
}

// maxBodyBytes caps a JSON request body, as ARM does (4 MB).
const maxBodyBytes = 4 << 20

// decodeBody reads a capped JSON body into v. An empty body decodes as {} when emptyOK.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) *apiError {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return newError(http.StatusRequestEntityTooLarge, "RequestContentTooLarge",
			"The request content size exceeds the maximum of %d bytes.", maxBodyBytes)
	case err != nil:
		return badRequest("InvalidRequestContent", "The request content could not be read.")
	case len(strings.TrimSpace(string(b))) == 0:
		if emptyOK {
			return nil
		}
		return badRequest("InvalidRequestContent", "The request content was invalid and could not be deserialized: the body is empty.")
	}
	if err := json.Unmarshal(b, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return badRequest("InvalidRequestContent",
				"The request content was invalid and could not be deserialized: property '%s' cannot be a JSON %s.", typeErr.Field, typeErr.Value)
		}
		return badRequest("InvalidRequestContent", "The request content was invalid and could not be deserialized: it is not valid JSON.")
	}
	return nil
}
