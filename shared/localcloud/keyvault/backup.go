package keyvault

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// backupHeader starts every blob: a format name and version, authenticated with the contents so
// a future format can tell its blobs apart.
var backupHeader = []byte("localcloud-keyvault-secret-backup/1\n")

// backupPayload is what a blob holds: the whole secret, every version, as Azure's backups do.
type backupPayload struct {
	Name     string     `json:"name"`
	Versions []*version `json:"versions"`
}

// seal encrypts and authenticates a payload with AES-GCM under the local cloud's backup key.
func (s *Service) seal(p backupPayload) ([]byte, error) {
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, s.backup.NonceSize())
	rand.Read(nonce)
	out := append(append([]byte{}, backupHeader...), nonce...)
	return s.backup.Seal(out, nonce, plain, backupHeader), nil
}

var errCorruptBackup = badParameter("Backup blob contains invalid or corrupt version: it was not made by this local cloud, or it was changed.")

func (s *Service) open(blob []byte) (backupPayload, error) {
	var p backupPayload
	rest, ok := bytes.CutPrefix(blob, backupHeader)
	if !ok || len(rest) < s.backup.NonceSize() {
		return p, errCorruptBackup
	}
	nonce, sealed := rest[:s.backup.NonceSize()], rest[s.backup.NonceSize():]
	plain, err := s.backup.Open(nil, nonce, sealed, backupHeader)
	if err != nil {
		return p, errCorruptBackup
	}
	if err := json.Unmarshal(plain, &p); err != nil || !ValidSecretName(p.Name) || len(p.Versions) == 0 {
		return p, errCorruptBackup
	}
	return p, nil
}

func (s *Service) backupSecret(vault, name string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return nil, err
	}
	sec := vs.Secrets[strings.ToLower(name)]
	if sec == nil {
		return nil, secretNotFound(name, "")
	}
	return s.seal(backupPayload{Name: sec.Name, Versions: sec.Versions})
}

// restoreSecret restores a backup into any vault of this local cloud, under the name it was
// backed up with, keeping its versions and their IDs.
func (s *Service) restoreSecret(vault string, blob []byte) (SecretBundle, error) {
	p, err := s.open(blob)
	if err != nil {
		return SecretBundle{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, err := s.vaultFor(vault)
	if err != nil {
		return SecretBundle{}, err
	}
	key := strings.ToLower(p.Name)
	if vs.Secrets[key] != nil {
		return SecretBundle{}, &apiError{status: http.StatusConflict, code: "Conflict",
			message: fmt.Sprintf("Secret %s already exists in this key vault: a backup restores only under a name that is not in use.", p.Name)}
	}
	if vs.deleted(key, s.now()) != nil {
		return SecretBundle{}, deletedButRecoverable(p.Name)
	}
	live := &secret{Name: p.Name, Versions: p.Versions}
	if err := s.commit(vs.put(key, live, nil)); err != nil {
		return SecretBundle{}, err
	}
	return vs.bundle(live.Name, live.current(), false), nil
}
