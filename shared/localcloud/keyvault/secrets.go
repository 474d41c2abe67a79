package keyvault

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// SecretAttributes are a secret version's attributes on the wire; times are Unix seconds.
type SecretAttributes struct {
	Enabled         bool   `json:"enabled"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created"`
	Updated         int64  `json:"updated"`
	RecoveryLevel   string `json:"recoveryLevel"`
	RecoverableDays int    `json:"recoverableDays"`
}

// SecretBundle is a secret version as Key Vault returns it. Value is nil in the responses that
// carry no value (update, recover, restore).
type SecretBundle struct {
	Value       *string           `json:"value,omitempty"`
	ID          string            `json:"id"` // https://<vault>.vault.azure.net/secrets/<name>/<version>
	ContentType string            `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Attributes  SecretAttributes  `json:"attributes"`
}

// DeletedSecretBundle is a soft-deleted secret's current version.
type DeletedSecretBundle struct {
	SecretBundle
	RecoveryID         string `json:"recoveryId"` // https://<vault>.vault.azure.net/deletedsecrets/<name>
	DeletedDate        int64  `json:"deletedDate"`
	ScheduledPurgeDate int64  `json:"scheduledPurgeDate"`
}

// SecretItem is an entry of a list: metadata only. Its ID has no version in a list of secrets,
// and has one in a list of versions.
type SecretItem struct {
	ID          string            `json:"id"`
	ContentType string            `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Attributes  SecretAttributes  `json:"attributes"`
}

// DeletedSecretItem is an entry of the list of deleted secrets.
type DeletedSecretItem struct {
	SecretItem
	RecoveryID         string `json:"recoveryId"`
	DeletedDate        int64  `json:"deletedDate"`
	ScheduledPurgeDate int64  `json:"scheduledPurgeDate"`
}

// requestAttributes are the attributes a client may set; absent fields keep their value.
type requestAttributes struct {
	Enabled   *bool  `json:"enabled"`
	NotBefore *int64 `json:"nbf"`
	Expires   *int64 `json:"exp"`
}

// setParams is the body of PUT /secrets/{name}.
type setParams struct {
	Value       *string            `json:"value"`
	ContentType *string            `json:"contentType"`
	Tags        map[string]string  `json:"tags"`
	Attributes  *requestAttributes `json:"attributes"`
}

// updateParams is the body of PATCH /secrets/{name}/{version}.
type updateParams struct {
	ContentType *string            `json:"contentType"`
	Tags        map[string]string  `json:"tags"`
	Attributes  *requestAttributes `json:"attributes"`
}

// ValidSecretName reports whether Key Vault accepts name: 1–127 letters, digits and hyphens.
func ValidSecretName(name string) bool {
	if len(name) == 0 || len(name) > maxSecretName {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isLetter(c) && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

func checkSecretName(name string) error {
	if !ValidSecretName(name) {
		return badParameter(fmt.Sprintf("The secret name %q is invalid: a secret name is 1-127 characters of letters, digits and dashes (^[0-9a-zA-Z-]+$).", name))
	}
	return nil
}

func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return badParameter(fmt.Sprintf("A secret can have at most %d tags; the request has %d.", maxTags, len(tags)))
	}
	for k, v := range tags {
		if len(k) > maxTagKey || len(v) > maxTagValue {
			return badParameter(fmt.Sprintf("A tag name can have at most %d characters and a tag value at most %d.", maxTagKey, maxTagValue))
		}
	}
	return nil
}

func newVersionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// vaultFor returns a vault's state; callers hold s.mu.
func (s *Service) vaultFor(name string) (*vaultState, error) {
	vs, ok := s.st.Vaults[strings.ToLower(name)]
	if !ok {
		return nil, vaultNotFound(name)
	}
	return vs, nil
}

// deleted returns a soft-deleted secret that is still recoverable: one past its scheduled purge
// date counts as purged, as the service purges it then.
func (vs *vaultState) deleted(key string, now time.Time) *secret {
	d := vs.Deleted[key]
	if d == nil || now.Unix() >= d.ScheduledPurgeDate {
		return nil
	}
	return d
}

// put replaces what a vault holds under key, live and deleted (nil removes), and returns the
// function that puts the old entries back.
func (vs *vaultState) put(key string, live, deleted *secret) (undo func()) {
	oldLive, oldDeleted := vs.Secrets[key], vs.Deleted[key]
	setOrDelete(vs.Secrets, key, live)
	setOrDelete(vs.Deleted, key, deleted)
	return func() {
		setOrDelete(vs.Secrets, key, oldLive)
		setOrDelete(vs.Deleted, key, oldDeleted)
	}
}

func setOrDelete(m map[string]*secret, key string, s *secret) {
	if s == nil {
		delete(m, key)
	} else {
		m[key] = s
	}
}

func (vs *vaultState) secretID(name string) string {
	return strings.TrimSuffix(vs.URI, "/") + "/secrets/" + name
}
func (vs *vaultState) recoveryID(name string) string {
	return strings.TrimSuffix(vs.URI, "/") + "/deletedsecrets/" + name
}

func attributesOf(v *version) SecretAttributes {
	return SecretAttributes{
		Enabled: v.Enabled, NotBefore: v.NotBefore, Expires: v.Expires, Created: v.Created, Updated: v.Updated,
		RecoveryLevel: recoveryLevel, RecoverableDays: recoverableDays,
	}
}

// bundle renders a version; withValue adds its value.
func (vs *vaultState) bundle(name string, v *version, withValue bool) SecretBundle {
	b := SecretBundle{
		ID: vs.secretID(name) + "/" + v.ID, ContentType: v.ContentType,
		Tags: maps.Clone(v.Tags), Attributes: attributesOf(v),
	}
	if withValue {
		value := v.Value
		b.Value = &value
	}
	return b
}

func (vs *vaultState) deletedBundle(d *secret) DeletedSecretBundle {
	return DeletedSecretBundle{
		SecretBundle: vs.bundle(d.Name, d.current(), false),
		RecoveryID:   vs.recoveryID(d.Name), DeletedDate: d.DeletedDate, ScheduledPurgeDate: d.ScheduledPurgeDate,
	}
}

func (vs *vaultState) item(id string, v *version) SecretItem {
	return SecretItem{ID: id, ContentType: v.ContentType, Tags: maps.Clone(v.Tags), Attributes: attributesOf(v)}
}

// findVersion returns a version of a live secret; "" is the current one.
func (vs *vaultState) findVersion(name, ver string) (*secret, int, error) {
	sec := vs.Secrets[strings.ToLower(name)]
	if sec == nil {
		return nil, 0, secretNotFound(name, ver)
	}
	if ver == "" {
		return sec, len(sec.Versions) - 1, nil
	}
	for i, v := range sec.Versions {
		if strings.EqualFold(v.ID, ver) {
			return sec, i, nil
		}
	}
	return nil, 0, secretNotFound(name, ver)
}

// ---- operations, shared by the HTTP handler and the Go API

func (s *Service) setSecret(vault, name string, p setParams) (SecretBundle, error) {
	if err := checkSecretName(name); err != nil {
		return SecretBundle{}, err
	}
	if p.Value == nil {
		return SecretBundle{}, badParameter("The request body must contain the secret's value: {\"value\": \"...\"}.")
	}
	if n := len(*p.Value); n > maxValueBytes {
		return SecretBundle{}, badParameter(fmt.Sprintf("The secret value is %d bytes; Key Vault accepts at most %d bytes (25 KB).", n, maxValueBytes))
	}
	if err := checkTags(p.Tags); err != nil {
		return SecretBundle{}, err
	}
	now := s.now().Unix()
	v := &version{ID: newVersionID(), Value: *p.Value, Tags: maps.Clone(p.Tags), Enabled: true, Created: now, Updated: now}
	if p.ContentType != nil {
		v.ContentType = *p.ContentType
	}
	if a := p.Attributes; a != nil {
		if a.Enabled != nil {
			v.Enabled = *a.Enabled
		}
		v.NotBefore, v.Expires = a.NotBefore, a.Expires
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return SecretBundle{}, err
	}
	key := strings.ToLower(name)
	if vs.deleted(key, s.now()) != nil {
		return SecretBundle{}, deletedButRecoverable(name)
	}
	next := &secret{Name: name}
	if old := vs.Secrets[key]; old != nil {
		// Appending in place is safe: the old secret's slice keeps its length, so undo still sees
		// exactly the old versions.
		next.Name, next.Versions = old.Name, append(old.Versions, v)
	} else {
		next.Versions = []*version{v}
	}
	if err := s.commit(vs.put(key, next, nil)); err != nil {
		return SecretBundle{}, err
	}
	return vs.bundle(next.Name, v, true), nil
}

// getSecret returns a version with its value; a disabled version is refused as on Azure.
// Its nbf and exp are deliberately not enforced: the service doesn't either.
func (s *Service) getSecret(vault, name, ver string) (SecretBundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return SecretBundle{}, err
	}
	sec, i, err := vs.findVersion(name, ver)
	if err != nil {
		return SecretBundle{}, err
	}
	v := sec.Versions[i]
	if !v.Enabled {
		return SecretBundle{}, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "SecretDisabled",
			message: "Operation get is not allowed on a disabled secret."}
	}
	return vs.bundle(sec.Name, v, true), nil
}

func (s *Service) updateSecret(vault, name, ver string, p updateParams) (SecretBundle, error) {
	if p.Tags != nil {
		if err := checkTags(p.Tags); err != nil {
			return SecretBundle{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return SecretBundle{}, err
	}
	sec, i, err := vs.findVersion(name, ver)
	if err != nil {
		return SecretBundle{}, err
	}
	v := *sec.Versions[i]
	if p.ContentType != nil {
		v.ContentType = *p.ContentType
	}
	if p.Tags != nil {
		v.Tags = maps.Clone(p.Tags)
	}
	if a := p.Attributes; a != nil {
		if a.Enabled != nil {
			v.Enabled = *a.Enabled
		}
		if a.NotBefore != nil {
			v.NotBefore = a.NotBefore
		}
		if a.Expires != nil {
			v.Expires = a.Expires
		}
	}
	v.Updated = s.now().Unix()
	next := &secret{Name: sec.Name, Versions: slices.Clone(sec.Versions)}
	next.Versions[i] = &v
	if err := s.commit(vs.put(strings.ToLower(sec.Name), next, nil)); err != nil {
		return SecretBundle{}, err
	}
	return vs.bundle(sec.Name, &v, false), nil
}

func (s *Service) deleteSecret(vault, name string) (DeletedSecretBundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return DeletedSecretBundle{}, err
	}
	key := strings.ToLower(name)
	sec := vs.Secrets[key]
	if sec == nil {
		return DeletedSecretBundle{}, secretNotFound(name, "")
	}
	now := s.now()
	d := &secret{Name: sec.Name, Versions: sec.Versions, DeletedDate: now.Unix(),
		ScheduledPurgeDate: now.AddDate(0, 0, recoverableDays).Unix()}
	if err := s.commit(vs.put(key, nil, d)); err != nil {
		return DeletedSecretBundle{}, err
	}
	return vs.deletedBundle(d), nil
}

func (s *Service) getDeletedSecret(vault, name string) (DeletedSecretBundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return DeletedSecretBundle{}, err
	}
	d := vs.deleted(strings.ToLower(name), s.now())
	if d == nil {
		return DeletedSecretBundle{}, deletedSecretNotFound(name)
	}
	return vs.deletedBundle(d), nil
}

func (s *Service) recoverSecret(vault, name string) (SecretBundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return SecretBundle{}, err
	}
	key := strings.ToLower(name)
	d := vs.deleted(key, s.now())
	if d == nil {
		return SecretBundle{}, deletedSecretNotFound(name)
	}
	live := &secret{Name: d.Name, Versions: d.Versions}
	if err := s.commit(vs.put(key, live, nil)); err != nil {
		return SecretBundle{}, err
	}
	return vs.bundle(live.Name, live.current(), false), nil
}

func (s *Service) purgeSecret(vault, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return err
	}
	key := strings.ToLower(name)
	if vs.deleted(key, s.now()) == nil {
		return deletedSecretNotFound(name)
	}
	return s.commit(vs.put(key, vs.Secrets[key], nil))
}

// ---- lists. A page holds the entries whose sort key follows the marker of the previous page,
// so paging stays consistent while secrets come and go.

type page[T any] struct {
	items []T
	next  string // the marker to continue from; "" on the last page
}

func paginate[T any](keys []string, item func(i int) T, after string, size int) page[T] {
	start, _ := slices.BinarySearch(keys, after)
	if start < len(keys) && keys[start] == after {
		start++
	}
	var p page[T]
	end := min(start+size, len(keys))
	for i := start; i < end; i++ {
		p.items = append(p.items, item(i))
	}
	if end < len(keys) {
		p.next = keys[end-1]
	}
	return p
}

func (s *Service) listSecrets(vault, after string, size int) (page[SecretItem], error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return page[SecretItem]{}, err
	}
	keys := slices.Sorted(maps.Keys(vs.Secrets))
	return paginate(keys, func(i int) SecretItem {
		sec := vs.Secrets[keys[i]]
		return vs.item(vs.secretID(sec.Name), sec.current())
	}, after, size), nil
}

func (s *Service) listVersions(vault, name, after string, size int) (page[SecretItem], error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return page[SecretItem]{}, err
	}
	sec := vs.Secrets[strings.ToLower(name)]
	if sec == nil {
		// A name the vault does not hold has no versions: an empty list, not an error.
		return page[SecretItem]{}, nil
	}
	keys := make([]string, len(sec.Versions))
	for i := range keys {
		keys[i] = fmt.Sprintf("%010d", i) // creation order
	}
	return paginate(keys, func(i int) SecretItem {
		v := sec.Versions[i]
		return vs.item(vs.secretID(sec.Name)+"/"+v.ID, v)
	}, after, size), nil
}

func (s *Service) listDeletedSecrets(vault, after string, size int) (page[DeletedSecretItem], error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return page[DeletedSecretItem]{}, err
	}
	now := s.now()
	var keys []string
	for k := range vs.Deleted {
		if vs.deleted(k, now) != nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return paginate(keys, func(i int) DeletedSecretItem {
		d := vs.Deleted[keys[i]]
		return DeletedSecretItem{
			SecretItem: vs.item(vs.secretID(d.Name), d.current()),
			RecoveryID: vs.recoveryID(d.Name), DeletedDate: d.DeletedDate, ScheduledPurgeDate: d.ScheduledPurgeDate,
		}
	}, after, size), nil
}
