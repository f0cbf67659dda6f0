package replication

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"sluice/engine/bdev"
	"sluice/engine/bdev/crypt"
)

// The key exchange (US10944819 claim 1 (c)). The crypt header at the start of A's base
// holds the volume's data key wrapped under A's KEK, and it replicates with the data;
// what B lacks to serve the copy after a failover is a way to unwrap it. A sends, over
// the keys link inside the tunnel (never on a socket of its own), the KEK source the
// operator gave A's crypt bdev: the key file's 32 bytes, or the passphrase. B wraps it
// at once under B's own KEK (B's operator's key file, AES-256-GCM, the copy's identity
// as additional data) and stores only that. At promotion B unwraps it in memory, opens
// the copy with it through crypt itself, and rekeys the copy's header to B's KEK with
// crypt's own rekey, so that from then on B's disk holds the data key wrapped under
// B's KEK only, and the volume format has one implementation.
//
// Why the KEK and not the data key re-wrapped: A never knows B's KEK (a symmetric key of
// B's operator), so a re-wrapped key could only be made on B, from the clear data key,
// and B would then need crypt's header writer, which crypt keeps to itself; the KEK
// lets B reuse crypt's open and rekey unchanged. The cost: B learns A's KEK, which
// unwraps every volume A wrapped under the same key file. Give replicated volumes a key
// file of their own, and rekey A's volumes after a failover.

const (
	keyFileMagic = "SLREPKY1"
	kekLen       = 32
	// kekSourceFile and kekSourcePassphrase are crypt's KEK source codes.
	kekSourceFile       = 1
	kekSourcePassphrase = 2
)

// keyMaterial is what A sends for one encrypted volume.
type keyMaterial struct {
	kind       uint32
	secret     []byte
	uuid       [16]byte // the crypt volume's UUID (its header's)
	crypt      string   // the crypt bdev's name on A
	generation uint64   // the crypt header's generation the KEK opens
}

func (km *keyMaterial) wipe() { clear(km.secret) }

// keyEntry is B's stored record of one volume's key: wrapped, never clear.
type keyEntry struct {
	kind    uint32
	uuid    [16]byte
	wrapped []byte // nonce || GCM(KEK_B, secret)
}

// encryption finds the crypt bdev stacked on replica bdev v and reads the KEK it was
// opened with. A base that holds a crypt header with no crypt bdev open on it is
// refused: its keys cannot be sent, and its data must not go before them (R3).
func (s *Service) encryption(v *volume) (*keyMaterial, error) {
	for _, b := range s.bdevs.List() {
		if b.Module() != crypt.Module || b.Base() == nil || b.Base().Name() != v.name {
			continue
		}
		info, err := crypt.GetKeyInfo(s.bdevs, b.Name())
		if err != nil {
			return nil, err
		}
		km := &keyMaterial{uuid: b.UUID(), crypt: b.Name(), generation: info.HeaderGeneration}
		switch info.KEKSource {
		case "key_file":
			km.kind = kekSourceFile
			if km.secret, err = readKEK(info.KeyFile); err != nil {
				return nil, err
			}
		default:
			att := v.att.Load()
			if att == nil || len(att.passphrase) == 0 {
				return nil, fmt.Errorf("crypt volume %q is keyed by a passphrase, which is "+
					"never stored: give passphrase to replication_volume_start: %w", b.Name(), ErrInvalid)
			}
			km.kind = kekSourcePassphrase
			km.secret = bytes.Clone(att.passphrase)
		}
		return km, nil
	}
	head := make([]byte, v.blockSize)
	if err := s.baseIO(context.Background(), v.base, bdev.IORead, 0, head); err != nil {
		return nil, err
	}
	if bytes.HasPrefix(head, []byte("SLUICECR")) {
		return nil, fmt.Errorf("volume %q holds a crypt header but no crypt bdev is open on "+
			"it: its keys cannot be exchanged: %w", v.name, ErrInvalid)
	}
	return nil, nil
}

// readKEK reads a 32-byte key from a key file (raw, or 64 hex digits), which only its
// owner may read, as crypt demands of its key files.
func readKEK(path string) ([]byte, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("key file %q: want an absolute path: %w", path, ErrInvalid)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s: want a regular file of mode 0600: %w", path, fs.ErrPermission)
	}
	buf := make([]byte, 4097)
	defer clear(buf)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n == kekLen {
		return bytes.Clone(buf[:n]), nil
	}
	if txt := bytes.TrimSpace(buf[:n]); len(txt) == 2*kekLen {
		k := make([]byte, kekLen)
		if _, err := hex.Decode(k, txt); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("key file %s: want 32 raw bytes or 64 hex digits: %w", path, ErrInvalid)
}

// exchangeKeys sends the volume's key material on the keys link and waits for B to
// say it stored it. Until it has, no data frame of the volume leaves A (R3).
func exchangeKeys(ctx context.Context, tc *tunnelClient, p *Partnership, v *volume, km *keyMaterial) error {
	defer km.wipe()
	link, err := tc.open(LinkKeys, v.name)
	if err != nil {
		return err
	}
	defer link.Close()
	frames := []Frame{
		{Type: FrameHello, Text: p.name, Flags: uint32(LinkKeys), Seq: ProtocolVersion},
		{Type: FrameKeyOffer, Volume: v.name, UUID: km.uuid[:], Flags: km.kind, Data: km.secret},
	}
	var scratch []byte
	defer func() { clear(scratch) }()
	for i := range frames {
		if scratch, err = writeFrame(link, scratch, &frames[i]); err != nil {
			return err
		}
	}
	f, err := readWithin(ctx, link, openTimeout)
	if err != nil {
		return fmt.Errorf("key exchange: %w", err)
	}
	if f.Type == FrameError {
		return fmt.Errorf("key exchange refused: %s: %w", f.Text, errRefused)
	}
	if f.Type != FrameKeyAck || f.Volume != v.name {
		return fmt.Errorf("key exchange answered with %v: %w", f.Type, ErrFrame)
	}
	v.keysExchanged.Store(true)
	v.keyGeneration.Store(km.generation)
	return nil
}

// rekeyed reports whether the crypt volume on v was rekeyed (bdev_crypt_rekey) since
// its keys were exchanged: the copy's header, replicated like any block, is then
// wrapped under a KEK B does not have, and the new one must follow.
func (s *Service) rekeyed(v *volume, km *keyMaterial) bool {
	info, err := crypt.GetKeyInfo(s.bdevs, km.crypt)
	return err == nil && info.HeaderGeneration != v.keyGeneration.Load()
}

// serveKeys is B's end of the keys link: it wraps what A sent under B's KEK and
// stores the wrapped record before it acknowledges.
func (p *Partnership) serveKeys(c *linkConn, fr *frameReader) {
	f, err := fr.Read()
	defer clear(f.Data)
	refuse := func(code uint32, err error) {
		_, _ = writeFrame(c, nil, &Frame{Type: FrameError, Status: code, Text: err.Error()})
	}
	if err != nil {
		return
	}
	if f.Type != FrameKeyOffer || len(f.UUID) != 16 || !safeName(f.Volume) ||
		(f.Flags != kekSourceFile && f.Flags != kekSourcePassphrase) {
		refuse(errnoInvalid, fmt.Errorf("bad key offer"))
		return
	}
	if p.kekPath == "" {
		refuse(errnoAccess, fmt.Errorf("partnership %q has no key_file to protect received keys", p.name))
		return
	}
	e := keyEntry{kind: f.Flags}
	copy(e.uuid[:], f.UUID)
	if err := p.storeKey(f.Volume, e, f.Data); err != nil {
		refuse(errnoIO, err)
		return
	}
	_, _ = writeFrame(c, nil, &Frame{Type: FrameKeyAck, Volume: f.Volume})
}

// keyAAD binds a wrapped key to its partnership, volume, crypt volume and kind, so that
// a record copied to another name does not open.
func keyAAD(partnership, volume string, e keyEntry) []byte {
	b := []byte("sluice-replication-key\x00" + partnership + "\x00" + volume + "\x00")
	b = append(b, e.uuid[:]...)
	return append(b, byte(e.kind))
}

func (p *Partnership) gcm() (cipher.AEAD, error) {
	k, err := readKEK(p.kekPath)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

func (p *Partnership) storeKey(volume string, e keyEntry, secret []byte) error {
	g, err := p.gcm()
	if err != nil {
		return err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	e.wrapped = g.Seal(nonce, nonce, secret, keyAAD(p.name, volume, e))
	if dir := p.keysDir(); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		rec := append([]byte(keyFileMagic), byte(e.kind), 0, 0, 0)
		rec = append(append(rec, e.uuid[:]...), e.wrapped...)
		if err := writeFileSync(filepath.Join(dir, volume+".key"), rec, 0o600); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[volume] = e
	return nil
}

// unwrapKey opens the stored key of volume with B's KEK.
//
// Postconditions: the caller wipes the secret.
func (p *Partnership) unwrapKey(volume string) (keyEntry, []byte, error) {
	p.mu.Lock()
	e, ok := p.keys[volume]
	p.mu.Unlock()
	if !ok {
		return keyEntry{}, nil, fmt.Errorf("no key of %q was received: %w", volume, ErrNotFound)
	}
	g, err := p.gcm()
	if err != nil {
		return keyEntry{}, nil, err
	}
	ns := g.NonceSize()
	if len(e.wrapped) < ns {
		return keyEntry{}, nil, fmt.Errorf("stored key of %q: %w", volume, ErrInvalid)
	}
	secret, err := g.Open(nil, e.wrapped[:ns], e.wrapped[ns:], keyAAD(p.name, volume, e))
	if err != nil {
		return keyEntry{}, nil, fmt.Errorf("stored key of %q does not open with key_file %s: %w",
			volume, p.kekPath, fs.ErrPermission)
	}
	return e, secret, nil
}

func (p *Partnership) keysDir() string {
	if p.svc.env.DataDir == "" {
		return ""
	}
	return filepath.Join(p.svc.env.DataDir, "replication", "keys", p.name)
}

func (p *Partnership) hasKey(volume string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.keys[volume]
	return ok
}

// loadKeys reads the wrapped keys a previous run stored.
func (p *Partnership) loadKeys() error {
	dir := p.keysDir()
	if dir == "" {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, ent := range ents {
		name, ok := strings.CutSuffix(ent.Name(), ".key")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			return err
		}
		if len(b) < 28 || string(b[:8]) != keyFileMagic {
			return fmt.Errorf("key record %s: %w", ent.Name(), ErrInvalid)
		}
		e := keyEntry{kind: uint32(b[8]), wrapped: b[28:]}
		copy(e.uuid[:], b[12:28])
		p.mu.Lock()
		p.keys[name] = e
		p.mu.Unlock()
	}
	return nil
}

func (p *Partnership) forgetKey(volume string) {
	p.mu.Lock()
	delete(p.keys, volume)
	p.mu.Unlock()
	if dir := p.keysDir(); dir != "" {
		_ = os.Remove(filepath.Join(dir, volume+".key"))
	}
}

// PromoteParams are replication_promote's parameters: make the copy of Volume, held
// for Partnership, this node's own volume. Name is the bdev to create for an encrypted
// copy (default: the volume's name). Force promotes a copy a pass left inconsistent.
type PromoteParams struct {
	Partnership string `json:"partnership" rpc:"required"`
	Volume      string `json:"volume" rpc:"required"`
	Name        string `json:"name,omitempty"`
	Force       bool   `json:"force,omitempty"`
}

// PromoteResult names the bdev to export.
type PromoteResult struct {
	Bdev      string `json:"bdev"`
	Encrypted bool   `json:"encrypted"`
	Complete  bool   `json:"complete"`
}

// Promote fences the copy (A's frames for it are refused from now on), releases it,
// and for an encrypted copy opens it with the exchanged key and rekeys its header to
// this node's KEK. The result is exported like any bdev (nvmf_subsystem_add_ns).
func (s *Service) Promote(ctx context.Context, pp PromoteParams) (PromoteResult, error) {
	res, err := s.promote(ctx, pp)
	if err != nil {
		return PromoteResult{}, fmt.Errorf("replication_promote %s/%s: %w", pp.Partnership, pp.Volume, err)
	}
	return res, nil
}

func (s *Service) promote(ctx context.Context, pp PromoteParams) (PromoteResult, error) {
	p, err := s.partnership(pp.Partnership)
	if err != nil {
		return PromoteResult{}, err
	}
	t, err := p.target(pp.Volume)
	if err != nil {
		return PromoteResult{}, err
	}
	st := t.state()
	if st.Promoted {
		return PromoteResult{}, fmt.Errorf("already promoted: %w", ErrState)
	}
	if !st.Complete && !pp.Force {
		return PromoteResult{}, fmt.Errorf("the copy is inconsistent (a resync was under way); "+
			"force promotes it anyway: %w", ErrState)
	}
	if st.Encrypted && !p.hasKey(pp.Volume) {
		return PromoteResult{}, fmt.Errorf("the copy is encrypted and no key was received: %w", ErrState)
	}
	if err := t.update(func(s *targetState) { s.Promoted = true }); err != nil {
		return PromoteResult{}, err
	}
	t.mu.Lock()
	ts := t.active
	t.mu.Unlock()
	if ts != nil {
		ts.link.Close()
		<-ts.done
	}
	t.release(false)
	res := PromoteResult{Bdev: st.Bdev, Encrypted: st.Encrypted, Complete: st.Complete}
	if !st.Encrypted {
		return res, nil
	}
	name := pp.Name
	if name == "" {
		name = pp.Volume
	}
	if err := p.openCopy(ctx, name, st.Bdev, pp.Volume); err != nil {
		return PromoteResult{}, err
	}
	p.forgetKey(pp.Volume)
	res.Bdev = name
	return res, nil
}

// openCopy opens the encrypted copy on base as crypt bdev name with A's KEK source,
// then rekeys it to B's key file. A key file's bytes reach crypt through a file on a
// memory file system (crypt reads KEKs from files), mode 0600, removed at once.
func (p *Partnership) openCopy(ctx context.Context, name, base, volume string) error {
	if p.kekPath == "" {
		return fmt.Errorf("partnership %q has no key_file to rekey the copy to: %w", p.name, ErrInvalid)
	}
	e, secret, err := p.unwrapKey(volume)
	if err != nil {
		return err
	}
	defer clear(secret)
	s := p.svc
	cp := crypt.CreateParams{Name: name, BaseBdevName: base}
	rp := crypt.RekeyParams{Name: name, NewKeyFile: p.kekPath}
	if e.kind == kekSourcePassphrase {
		cp.Passphrase, rp.Passphrase = crypt.Secret(secret), crypt.Secret(secret)
	} else {
		path, cleanup, err := memKeyFile(secret)
		if err != nil {
			return err
		}
		defer cleanup()
		cp.KeyFile, rp.KeyFile = path, path
	}
	if _, err := crypt.Create(ctx, s.bdevs, s.cryptEnv(), cp); err != nil {
		return err
	}
	if err := crypt.Rekey(ctx, s.bdevs, s.cryptEnv(), rp); err != nil {
		_ = s.bdevs.Delete(ctx, name, crypt.Module)
		return err
	}
	return nil
}

// memKeyFile writes key as hex to a fresh file on a memory file system, never a disk.
//
// Postconditions: the caller runs cleanup, which overwrites and removes the file.
func memKeyFile(key []byte) (string, func(), error) {
	for _, root := range []string{"/dev/shm", "/run"} {
		var st unix.Statfs_t
		if unix.Statfs(root, &st) != nil || (st.Type != unix.TMPFS_MAGIC && st.Type != unix.RAMFS_MAGIC) {
			continue
		}
		dir, err := os.MkdirTemp(root, "sluice-promote-")
		if err != nil {
			continue
		}
		path := filepath.Join(dir, "kek")
		h := make([]byte, hex.EncodedLen(len(key)))
		hex.Encode(h, key)
		err = os.WriteFile(path, h, 0o600)
		clear(h)
		cleanup := func() {
			_ = os.WriteFile(path, make([]byte, 2*kekLen), 0o600)
			os.RemoveAll(dir)
		}
		if err != nil {
			cleanup()
			return "", nil, err
		}
		return path, cleanup, nil
	}
	return "", nil, fmt.Errorf("no memory file system (/dev/shm, /run) to hand the key to crypt: %w",
		ErrInvalid)
}
