package replication

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Identity is a node's identifying key pair: its private key signs the SSH handshake
// (as a client on the replicating side, as the host key on the listening side), and
// its public key is what partners, proxies and agents are told.
type Identity struct {
	signer ssh.Signer
	priv   ed25519.PrivateKey // nil when loaded from a file: nothing re-marshals it
}

// NewIdentity draws a fresh Ed25519 key pair.
func NewIdentity() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	return &Identity{signer: s, priv: priv}, nil
}

// LoadIdentity reads the OpenSSH private key at path, creating it (mode 0600, in a
// directory of mode 0700) when absent, so that a node keeps its identity across
// restarts and partners need not be told a new key. A key file that others may read is
// refused, as ssh refuses one.
func LoadIdentity(path string) (*Identity, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createIdentity(path)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity key %s has mode %#o: only its owner may read it: %w",
			path, st.Mode().Perm(), fs.ErrPermission)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %v: %w", path, err, ErrInvalid)
	}
	return &Identity{signer: s}, nil
}

func createIdentity(path string) (*Identity, error) {
	id, err := NewIdentity()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	b, err := id.MarshalPrivate()
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return id, nil
}

// MarshalPrivate encodes a fresh identity's private key in OpenSSH's PEM format, for a
// key file (tests write one to give a node another identity).
func (id *Identity) MarshalPrivate() ([]byte, error) {
	if id.priv == nil {
		return nil, fmt.Errorf("identity loaded from a file is not re-marshalled: %w", ErrInvalid)
	}
	blk, err := ssh.MarshalPrivateKey(id.priv, "")
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(blk), nil
}

// PublicKey is the identity's public key.
func (id *Identity) PublicKey() ssh.PublicKey { return id.signer.PublicKey() }

// AuthorizedKey is the public key as one authorized_keys line without the newline: the
// form partners, proxies and the agent exchange.
func (id *Identity) AuthorizedKey() string { return FormatPublicKey(id.signer.PublicKey()) }

// FormatPublicKey writes k as an authorized_keys line without the newline.
func FormatPublicKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// ParsePublicKey reads one authorized_keys line ("ssh-ed25519 AAAA... comment").
func ParsePublicKey(s string) (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("public key %q: %v: %w", abbreviate(s), err, ErrInvalid)
	}
	return k, nil
}

// sameKey compares two public keys by their wire form.
func sameKey(a, b ssh.PublicKey) bool {
	return a != nil && b != nil && bytes.Equal(a.Marshal(), b.Marshal())
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// writeFileSync writes data to path through a temporary file, fsyncs it and renames it
// into place, so that a crash leaves the old file or the new one, never a torn one.
func writeFileSync(path string, data []byte, mode fs.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
