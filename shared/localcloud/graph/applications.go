package graph

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/reqlog"
)

type applicationJSON struct {
	Context             string                   `json:"@odata.context,omitempty"`
	ID                  string                   `json:"id"`
	AppID               string                   `json:"appId"`
	DisplayName         string                   `json:"displayName"`
	CreatedDateTime     string                   `json:"createdDateTime"`
	SignInAudience      string                   `json:"signInAudience"`
	IdentifierURIs      []string                 `json:"identifierUris"`
	Tags                []string                 `json:"tags"`
	PasswordCredentials []passwordCredentialJSON `json:"passwordCredentials"`
	KeyCredentials      []keyCredentialJSON      `json:"keyCredentials"`
}

type passwordCredentialJSON struct {
	Context             string  `json:"@odata.context,omitempty"`
	CustomKeyIdentifier *string `json:"customKeyIdentifier"`
	DisplayName         string  `json:"displayName"`
	EndDateTime         string  `json:"endDateTime"`
	Hint                string  `json:"hint"`
	KeyID               string  `json:"keyId"`
	SecretText          *string `json:"secretText"` // only in addPassword's answer
	StartDateTime       string  `json:"startDateTime"`
}

type keyCredentialJSON struct {
	CustomKeyIdentifier string  `json:"customKeyIdentifier"`
	DisplayName         string  `json:"displayName"`
	EndDateTime         string  `json:"endDateTime"`
	Key                 *string `json:"key"` // never returned, as Graph does on reads
	KeyID               string  `json:"keyId"`
	StartDateTime       string  `json:"startDateTime"`
	Type                string  `json:"type"`
	Usage               string  `json:"usage"`
}

func passwordJSON(p directory.PasswordCredential) passwordCredentialJSON {
	return passwordCredentialJSON{DisplayName: p.DisplayName, EndDateTime: graphTime(p.EndDateTime), Hint: p.Hint,
		KeyID: p.KeyID, StartDateTime: graphTime(p.StartDateTime)}
}

func appJSON(a directory.Application) applicationJSON {
	out := applicationJSON{
		ID: a.ObjectID, AppID: a.AppID, DisplayName: a.DisplayName, CreatedDateTime: graphTime(a.CreatedDateTime),
		SignInAudience: "AzureADMyOrg", IdentifierURIs: []string{}, Tags: []string{},
		PasswordCredentials: []passwordCredentialJSON{}, KeyCredentials: []keyCredentialJSON{},
	}
	for _, p := range a.PasswordCredentials {
		out.PasswordCredentials = append(out.PasswordCredentials, passwordJSON(p))
	}
	for _, k := range a.KeyCredentials {
		out.KeyCredentials = append(out.KeyCredentials, keyCredentialJSON{
			CustomKeyIdentifier: k.Thumbprint(), DisplayName: k.DisplayName, EndDateTime: graphTime(k.EndDateTime),
			KeyID: k.KeyID, StartDateTime: graphTime(k.StartDateTime), Type: k.Type, Usage: k.Usage,
		})
	}
	return out
}

// findApp finds an application of the caller's tenant by object ID, or by appId when byAppID.
func (s *Service) findApp(tenant, key string, byAppID bool) (directory.Application, bool) {
	if byAppID {
		return s.dir.Application(tenant, key)
	}
	for _, a := range s.dir.Applications(tenant) {
		if strings.EqualFold(a.ObjectID, key) {
			return a, true
		}
	}
	return directory.Application{}, false
}

// applications serves /applications, /applications/{id}[/action] and /applications(appId='…')[/action].
func (s *Service) applications(c *call, appID string, rest []string) *graphError {
	key, byApp := appID, appID != ""
	if !byApp {
		if len(rest) == 0 {
			return s.applicationCollection(c)
		}
		key, rest = rest[0], rest[1:]
	}
	a, ok := s.findApp(c.tenant, key, byApp)
	if !ok {
		return notFound(key)
	}
	switch {
	case len(rest) == 0:
		if err := only(c, http.MethodGet, http.MethodPatch, http.MethodDelete); err != nil {
			return err
		}
		switch c.r.Method {
		case http.MethodPatch:
			return s.patchApplication(c, a)
		case http.MethodDelete:
			if err := s.dir.DeleteApplication(c.tenant, a.AppID); err != nil {
				return dirError(err, key)
			}
			c.w.WriteHeader(http.StatusNoContent)
			return nil
		}
		out := appJSON(a)
		out.Context = baseURL + "/$metadata#applications/$entity"
		writeJSON(c.w, http.StatusOK, out)
		return nil
	case len(rest) == 1 && strings.EqualFold(rest[0], "addPassword"):
		if err := only(c, http.MethodPost); err != nil {
			return err
		}
		return s.addPassword(c, a)
	case len(rest) == 1 && strings.EqualFold(rest[0], "removePassword"):
		if err := only(c, http.MethodPost); err != nil {
			return err
		}
		return s.removePassword(c, a)
	}
	return badRequest("BadRequest", "Resource not found for the segment '%s'.", reqlog.Limit(rest[0]))
}

func (s *Service) applicationCollection(c *call) *graphError {
	if err := only(c, http.MethodGet, http.MethodPost); err != nil {
		return err
	}
	if c.r.Method == http.MethodPost {
		return s.createApplication(c)
	}
	f, err := parseFilter(c.query.Get("$filter"), false)
	if err != nil {
		return err
	}
	out := []applicationJSON{}
	for _, a := range s.dir.Applications(c.tenant) {
		if f.match(a.ObjectID, a.AppID, a.DisplayName, nil) {
			out = append(out, appJSON(a))
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"@odata.context": baseURL + "/$metadata#applications", "value": out})
	return nil
}

type keyCredentialBody struct {
	KeyID       string `json:"keyId"`
	Type        string `json:"type"`
	Usage       string `json:"usage"`
	Key         string `json:"key"`
	DisplayName string `json:"displayName"`
}

type applicationBody struct {
	DisplayName    *string              `json:"displayName"`
	KeyCredentials *[]keyCredentialBody `json:"keyCredentials"`
}

// createApplication registers an app (az ad app create). Properties other than displayName and
// keyCredentials are accepted and not kept, as the local directory has no place for them.
func (s *Service) createApplication(c *call) *graphError {
	var b applicationBody
	if err := decodeBody(c, &b, false); err != nil {
		return err
	}
	if b.DisplayName == nil || strings.TrimSpace(*b.DisplayName) == "" {
		return badRequest("Request_BadRequest", "Property 'displayName' is required and must not be empty.")
	}
	var certs []newCert
	if b.KeyCredentials != nil {
		var gerr *graphError
		if certs, gerr = parseNewCertificates(*b.KeyCredentials, nil); gerr != nil {
			return gerr
		}
	}
	a, err := s.dir.CreateApplication(c.tenant, *b.DisplayName, "")
	if err != nil {
		return dirError(err, "")
	}
	if gerr := s.addCertificates(c.tenant, a.AppID, certs); gerr != nil {
		return gerr
	}
	a, _ = s.dir.Application(c.tenant, a.AppID)
	out := appJSON(a)
	out.Context = baseURL + "/$metadata#applications/$entity"
	c.w.Header().Set("Location", baseURL+"/applications/"+a.ObjectID)
	writeJSON(c.w, http.StatusCreated, out)
	return nil
}

// patchApplication changes keyCredentials (the whole collection, as Graph does: entries naming
// an existing keyId without a key keep that certificate; entries with a key add one). A
// displayName equal to the current one is accepted; other properties are refused.
func (s *Service) patchApplication(c *call, a directory.Application) *graphError {
	var raw map[string]any
	if err := decodeBody(c, &raw, false); err != nil {
		return err
	}
	for k := range raw {
		if k != "keyCredentials" && k != "displayName" {
			return badRequest("Request_BadRequest", "Updating property '%s' is not emulated by the local Graph, which updates keyCredentials only.", reqlog.Limit(k))
		}
	}
	var b applicationBody
	if err := remarshal(raw, &b); err != nil {
		return badRequest("Request_BadRequest", "Invalid value for keyCredentials or displayName.")
	}
	if b.DisplayName != nil && *b.DisplayName != a.DisplayName {
		return badRequest("Request_BadRequest", "Renaming an application is not emulated by the local Graph.")
	}
	if b.KeyCredentials != nil {
		certs, gerr := parseNewCertificates(*b.KeyCredentials, a.KeyCredentials)
		if gerr != nil {
			return gerr
		}
		if gerr := s.addCertificates(c.tenant, a.AppID, certs); gerr != nil {
			return gerr
		}
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

type newCert struct {
	der         []byte
	displayName string
}

// parseNewCertificates validates a keyCredentials collection against the app's current one and
// returns the certificates to add. Every existing certificate must still be listed (by keyId):
// the local directory cannot remove one.
func parseNewCertificates(in []keyCredentialBody, existing []directory.KeyCredential) ([]newCert, *graphError) {
	listed := map[string]bool{}
	var out []newCert
	for i, k := range in {
		if k.Key == "" {
			if k.KeyID == "" {
				return nil, badRequest("Request_BadRequest", "keyCredentials[%d] has neither a key nor the keyId of an existing credential.", i)
			}
			listed[strings.ToLower(k.KeyID)] = true
			continue
		}
		if k.Type != "" && k.Type != "AsymmetricX509Cert" {
			return nil, badRequest("Request_BadRequest", "keyCredentials[%d].type '%s' is not supported: use AsymmetricX509Cert.", i, reqlog.Limit(k.Type))
		}
		if k.Usage != "" && k.Usage != "Verify" {
			return nil, badRequest("Request_BadRequest", "keyCredentials[%d].usage '%s' is not supported: use Verify.", i, reqlog.Limit(k.Usage))
		}
		der, err := certificateDER(k.Key)
		if err != nil {
			return nil, badRequest("Request_BadRequest", "keyCredentials[%d].key is not valid: %v.", i, err)
		}
		if k.KeyID != "" && keyIDIn(existing, k.KeyID) {
			listed[strings.ToLower(k.KeyID)] = true
			continue
		}
		out = append(out, newCert{der: der, displayName: k.DisplayName})
	}
	for _, e := range existing {
		if !listed[strings.ToLower(e.KeyID)] {
			return nil, badRequest("Request_BadRequest", "The local Graph cannot remove the key credential %s: list every existing keyId in keyCredentials.", e.KeyID)
		}
	}
	return out, nil
}

// remarshal turns a decoded JSON object into a typed one.
func remarshal(raw map[string]any, v any) error {
	b, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func keyIDIn(ks []directory.KeyCredential, id string) bool {
	for _, k := range ks {
		if strings.EqualFold(k.KeyID, id) {
			return true
		}
	}
	return false
}

// certificateDER decodes keyCredential.key: base64 of the certificate's DER, or of its PEM text.
func certificateDER(key string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(key))
	if err != nil {
		return nil, errors.New("not base64")
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	cert, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, errors.New("not an X.509 certificate")
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, errors.New("the certificate's key is not RSA; Entra ID needs an RSA key for client certificates")
	}
	return b, nil
}

func (s *Service) addCertificates(tenant, appID string, certs []newCert) *graphError {
	for _, nc := range certs {
		if _, err := s.dir.AddCertificate(tenant, appID, nc.der, nc.displayName); err != nil {
			return dirError(err, appID)
		}
	}
	return nil
}

type addPasswordBody struct {
	PasswordCredential *struct {
		DisplayName   string     `json:"displayName"`
		StartDateTime *time.Time `json:"startDateTime"`
		EndDateTime   *time.Time `json:"endDateTime"`
	} `json:"passwordCredential"`
}

// addPassword adds a client secret and answers with its text, the only time Graph shows it.
func (s *Service) addPassword(c *call, a directory.Application) *graphError {
	var b addPasswordBody
	if err := decodeBody(c, &b, true); err != nil {
		return err
	}
	var opts directory.SecretOptions
	if p := b.PasswordCredential; p != nil {
		opts.DisplayName = p.DisplayName
		if p.StartDateTime != nil {
			opts.Start = *p.StartDateTime
		}
		if p.EndDateTime != nil {
			opts.End = *p.EndDateTime
		}
	}
	pc, secret, err := s.dir.AddPassword(c.tenant, a.AppID, opts)
	if err != nil {
		return dirError(err, a.ObjectID)
	}
	out := passwordJSON(pc)
	out.Context = baseURL + "/$metadata#microsoft.graph.passwordCredential"
	out.SecretText = &secret
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (s *Service) removePassword(c *call, a directory.Application) *graphError {
	var b struct {
		KeyID string `json:"keyId"`
	}
	if err := decodeBody(c, &b, false); err != nil {
		return err
	}
	if _, err := uuid.Parse(b.KeyID); err != nil {
		return badRequest("Request_BadRequest", "Invalid value specified for property 'keyId' of resource 'PasswordCredential'.")
	}
	if err := s.dir.RemovePassword(c.tenant, a.AppID, b.KeyID); err != nil {
		if errors.Is(err, directory.ErrNotFound) {
			return badRequest("Request_BadRequest", "No password credential found with keyId '%s'.", b.KeyID)
		}
		return dirError(err, a.ObjectID)
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// dirError words a directory error in Graph's terms.
func dirError(err error, id string) *graphError {
	switch {
	case errors.Is(err, directory.ErrApplicationNotFound), errors.Is(err, directory.ErrNotFound):
		return notFound(id)
	case errors.Is(err, directory.ErrInvalidArgument), errors.Is(err, directory.ErrTenantNotFound):
		return badRequest("Request_BadRequest", "%v", err)
	}
	return internal(err)
}
