package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/argon2"

	"sluice/cgo/xts"
	"sluice/engine/bdev"
)

const (
	dataKeyLen = xts.KeySize256 // Key1 || Key2, two AES-256 keys
	kekLen     = 32             // an AES-256 key for GCM
	saltLen    = 32
	nonceLen   = 12 // GCM's standard nonce
	// maxKeyFileBytes bounds what is read of a key file: 64 hex digits and a newline,
	// with room for a CRLF or stray whitespace.
	maxKeyFileBytes = 4096
)

// DefaultKDF are the argon2id parameters of new passphrase-wrapped volumes: RFC 9106's
// second recommended option (section 4: t=3, 64 MiB, 4 lanes), about 0.4 s on the project's
// 2-core machines: paid once per open or rekey, never per I/O. It is a variable so that
// tests can format quickly; the parameters a volume was wrapped with are in its header, so
// changing them never locks a volume out.
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// ErrWrongKey reports that the key-encryption key does not open the volume: GCM's
// authentication of the wrapped data key failed on an intact header. It matches
// fs.ErrPermission, so that an RPC client gets EACCES.
var ErrWrongKey = &wrongKeyError{}

type wrongKeyError struct{}

func (*wrongKeyError) Error() string {
	return "crypt: wrong key-encryption key (the wrapped data key does not authenticate)"
}

// Is makes errors.Is(err, fs.ErrPermission) hold.
func (*wrongKeyError) Is(target error) bool { return target == fs.ErrPermission }

// Secret is a passphrase: a string that never prints. fmt's verbs, slog and %#v all show
// "<redacted>", so that a params struct logged by mistake does not carry it; JSON still
// decodes it, since it arrives by RPC.
type Secret string

// String hides the passphrase.
func (Secret) String() string { return "<redacted>" }

// GoString hides the passphrase from %#v.
func (Secret) GoString() string { return `"<redacted>"` }

// Format hides the passphrase from every fmt verb.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, "<redacted>") }

// LogValue hides the passphrase from slog's handlers, the JSON one included. JSON
// encoding itself is left alone: a Go RPC client must send the real passphrase, and a
// redacted one would format a volume under the word "<redacted>".
func (Secret) LogValue() slog.Value { return slog.StringValue("<redacted>") }

// kek is a key-encryption key, with where it came from.
type kek struct {
	key    [kekLen]byte
	source KEKSource
	kdf    KDFParams
	salt   [saltLen]byte
}

// wipe clears the key. Go may have copied it (the garbage collector moves nothing, but
// argon2's and GCM's internals keep their own copies until collected); this shortens how
// long the copy that is ours lives.
func (k *kek) wipe() { clear(k.key[:]) }

// keyFromFile reads a KEK from path: exactly 32 bytes, or 64 hex digits with optional
// surrounding whitespace (what `openssl rand -hex 32` writes). The file must be a regular
// file that only its owner may read, as ssh demands of private keys.
func keyFromFile(path string) (*kek, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file: %w", path, bdev.ErrInvalid)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %#o: only its owner may read it "+
			"(chmod 600): %w", path, perm, fs.ErrPermission)
	}
	buf := make([]byte, maxKeyFileBytes+1)
	defer clear(buf)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("key file: %w", err)
	}
	k := &kek{source: KEKKeyFile}
	raw := buf[:n]
	if n == kekLen {
		copy(k.key[:], raw)
		return k, nil
	}
	txt := bytes.TrimSpace(raw)
	if len(txt) == 2*kekLen {
		if _, err := hex.Decode(k.key[:], txt); err == nil {
			return k, nil
		}
		k.wipe()
	}
	return nil, fmt.Errorf("key file %s holds %d bytes: want 32 raw bytes or 64 hex digits: %w",
		path, n, bdev.ErrInvalid)
}

// keyFromPassphrase stretches a passphrase with argon2id under salt and params.
func keyFromPassphrase(pass Secret, salt [saltLen]byte, params KDFParams) (*kek, error) {
	if pass == "" {
		return nil, fmt.Errorf("empty passphrase: %w", bdev.ErrInvalid)
	}
	if err := params.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", err, bdev.ErrInvalid)
	}
	p := []byte(pass)
	defer clear(p)
	out := argon2.IDKey(p, salt[:], params.Time, params.MemoryKiB, params.Threads, kekLen)
	defer clear(out)
	k := &kek{source: KEKPassphrase, kdf: params, salt: salt}
	copy(k.key[:], out)
	return k, nil
}

// checkKeyFilePlace refuses a key file kept beside the data: inside the daemon's data
// directory (dataDir, "" when unknown) or in the directory, or below it, of the file that
// backs the volume (baseFile, "" when the base is not a file). A key stored with the
// ciphertext it protects protects nothing: whoever copies the one copies the other.
func checkKeyFilePlace(path, dataDir, baseFile string) error {
	if !filepath.IsAbs(path) {
		// A relative path would mean something else to a daemon started elsewhere,
		// and save_config records it.
		return fmt.Errorf("key file %q: want an absolute path: %w", path, bdev.ErrInvalid)
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if dataDir != "" && within(resolved, resolveDir(dataDir)) {
		return fmt.Errorf("key file %s is inside the data directory %s: keep the "+
			"key-encryption key apart from the data it protects: %w",
			path, dataDir, bdev.ErrInvalid)
	}
	if baseFile != "" && within(filepath.Dir(resolved), resolveDir(filepath.Dir(baseFile))) {
		return fmt.Errorf("key file %s is beside the volume's file %s: keep the "+
			"key-encryption key apart from the data it protects: %w",
			path, baseFile, bdev.ErrInvalid)
	}
	return nil
}

// resolveDir is dir with its symbolic links resolved when it exists, else cleaned.
func resolveDir(dir string) string {
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return r
	}
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return filepath.Clean(dir)
}

// within reports whether p is root or lies below it.
func within(p, root string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// baseFileOf names the file under base, looking through layers, or "".
func baseFileOf(base *bdev.Bdev) string {
	for b := base; b != nil; b = b.Base() {
		if fp, ok := b.Params().(bdev.FileParams); ok {
			return fp.Filename
		}
	}
	return ""
}

// newDataKey draws a volume's data key: two independent AES-256 keys. Equal halves are
// drawn again; xts.New would refuse them (and 2^-256 says it never happens).
func newDataKey() ([]byte, error) {
	k := make([]byte, dataKeyLen)
	for range 4 {
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("draw data key: %w", err)
		}
		if subtle.ConstantTimeCompare(k[:dataKeyLen/2], k[dataKeyLen/2:]) == 0 {
			return k, nil
		}
	}
	return nil, errors.New("crypt: the random source keeps drawing equal key halves")
}

func newGCM(k *kek) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(k.key[:])
	if err != nil {
		return nil, fmt.Errorf("crypt: kek cipher: %w", err)
	}
	return cipher.NewGCM(blk)
}

// wrap seals dek under k into h: it records k's source and KDF parameters, draws a fresh
// nonce, and authenticates the record's fields with the key. A nonce is random because a
// KEK wraps a handful of keys in its life, far from GCM's 2^32 random-nonce bound.
func wrap(k *kek, h *Header, dek []byte) error {
	if len(dek) != dataKeyLen {
		panic(fmt.Sprintf("crypt: wrap of a %d-byte data key", len(dek)))
	}
	h.KEK, h.KDF, h.Salt = k.source, k.kdf, k.salt
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		return fmt.Errorf("draw nonce: %w", err)
	}
	g, err := newGCM(k)
	if err != nil {
		return err
	}
	out := g.Seal(h.WrappedKey[:0], h.Nonce[:], dek, h.aad())
	if len(out) != wrappedKeyLen {
		panic("crypt: GCM sealed a wrapped key of an unexpected length")
	}
	return nil
}

// unwrap opens h's wrapped data key with k. An authentication failure is ErrWrongKey.
//
// Postconditions: the caller wipes the returned key once it has keyed its cipher.
func unwrap(k *kek, h *Header) ([]byte, error) {
	if k.source != h.KEK {
		return nil, fmt.Errorf("the volume's key is wrapped under a %v, not a %v: %w",
			h.KEK, k.source, bdev.ErrInvalid)
	}
	g, err := newGCM(k)
	if err != nil {
		return nil, err
	}
	dek, err := g.Open(make([]byte, 0, dataKeyLen), h.Nonce[:], h.WrappedKey[:], h.aad())
	if err != nil {
		return nil, ErrWrongKey
	}
	return dek, nil
}

// kekFor builds the KEK the operator gave for an existing header: from the key file, or
// from the passphrase under the header's salt and parameters.
func kekFor(h *Header, keyFile string, pass Secret) (*kek, error) {
	switch {
	case h.KEK == KEKPassphrase && pass == "":
		return nil, fmt.Errorf("the volume's key is wrapped with a passphrase (argon2id), "+
			"which is never stored: give passphrase: %w", bdev.ErrInvalid)
	case h.KEK == KEKKeyFile && keyFile == "":
		return nil, fmt.Errorf("the volume's key is wrapped with a key file: give key_file: %w",
			bdev.ErrInvalid)
	case h.KEK == KEKPassphrase:
		return keyFromPassphrase(pass, h.Salt, h.KDF)
	}
	return keyFromFile(keyFile)
}

// newKEK builds a KEK for a new wrapping: the key file's, or the passphrase's under a
// fresh salt and DefaultKDF.
func newKEK(keyFile string, pass Secret) (*kek, error) {
	if keyFile != "" {
		return keyFromFile(keyFile)
	}
	var salt [saltLen]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, fmt.Errorf("draw salt: %w", err)
	}
	return keyFromPassphrase(pass, salt, DefaultKDF)
}
