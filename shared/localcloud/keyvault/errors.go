package keyvault

import (
	"fmt"
	"net/http"
)

// apiError is an error as Key Vault reports it:
// {"error":{"code":…,"message":…,"innererror":{"code":…}}} with an HTTP status.
type apiError struct {
	status  int
	code    string
	message string
	inner   string // innererror.code, "" for none
}

func (e *apiError) Error() string {
	if e.inner != "" {
		return fmt.Sprintf("%d %s (%s): %s", e.status, e.code, e.inner, e.message)
	}
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message)
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code       string     `json:"code"`
	Message    string     `json:"message"`
	InnerError *innerCode `json:"innererror,omitempty"`
}

type innerCode struct {
	Code string `json:"code"`
}

func (e *apiError) body() errorBody {
	b := errorBody{Error: errorDetail{Code: e.code, Message: e.message}}
	if e.inner != "" {
		b.Error.InnerError = &innerCode{Code: e.inner}
	}
	return b
}

func badParameter(message string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "BadParameter", message: message}
}

func secretNotFound(name, version string) *apiError {
	id := name
	if version != "" {
		id += "/" + version
	}
	return &apiError{status: http.StatusNotFound, code: "SecretNotFound", message: fmt.Sprintf(
		"A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", id)}
}

func deletedSecretNotFound(name string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "SecretNotFound", message: "Deleted Secret not found: " + name}
}

// vaultNotFound answers for a host whose vault does not exist. On Azure its name would not even
// resolve; here the local cloud says so, and how to make one.
func vaultNotFound(name string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "VaultNotFound", message: fmt.Sprintf(
		"The vault %q does not exist in the local cloud (on Azure, %s.%s would not resolve). Create it first, for example with: go run ./shared/cmd/azlocal keyvault create --name %s --resource-group <group>",
		name, name, DNSSuffix, name)}
}

// deletedButRecoverable refuses a name held by a soft-deleted secret: soft delete reserves it
// until the secret is recovered or purged.
func deletedButRecoverable(name string) *apiError {
	return &apiError{status: http.StatusConflict, code: "Conflict", inner: "ObjectIsDeletedButRecoverable", message: fmt.Sprintf(
		"Secret %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.", name)}
}
