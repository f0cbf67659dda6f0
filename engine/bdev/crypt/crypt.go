package crypt

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"sluice/cgo/xts"
	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/reactor"
)

// Module is the crypt bdevs' module name.
const Module = "crypt"

// Env is what the crypt module needs of the daemon.
type Env struct {
	// Mem returns the memory core of reactor i (reactor.Reactor.ID): a channel on
	// that reactor takes its ciphertext buffers from it, on that reactor only, as the
	// core's owner. Its domain is the one the file bdev registers as fixed buffers.
	Mem func(i int) *mem.Core
	// Control runs header I/O for the control plane (create, rekey). The call waits
	// for it on its own goroutine; the reactor only submits and completes.
	Control *reactor.Reactor
	// DataDir is the daemon's data directory ("" when unknown): key files inside it
	// are refused.
	DataDir string
}

// CreateParams are bdev_crypt_create's parameters.
//
//   - Exactly one of KeyFile (an absolute path to 32 raw bytes or 64 hex digits, mode
//     0600 or stricter, outside the data directory and the base file's directory) and
//     Passphrase (stretched with argon2id) gives the key-encryption key.
//   - Format makes a new volume: a fresh data key, wrapped and written to the header.
//     It refuses a base that already holds a header unless Force: overwriting it
//     destroys the old volume's key, so its data is gone for good.
//   - BlockSize (format only; 0 = the base's) is the volume's block size and XTS data
//     unit: a multiple of the base's. 4096 on a 512-byte base halves the cipher's
//     per-sector cost and exposes a 4Kn volume.
//   - AllowUnmap passes deallocation to the base (see the package doc), at the cost of
//     revealing which blocks are in use.
//   - UUID: format records it (default: random) in the header; open checks it.
type CreateParams struct {
	Name         string `json:"name" rpc:"required"`
	BaseBdevName string `json:"base_bdev_name" rpc:"required"`
	KeyFile      string `json:"key_file,omitempty"`
	Passphrase   Secret `json:"passphrase,omitempty"`
	Format       bool   `json:"format,omitempty"`
	Force        bool   `json:"force,omitempty"`
	BlockSize    uint32 `json:"block_size,omitempty"`
	AllowUnmap   bool   `json:"allow_unmap,omitempty"`
	UUID         string `json:"uuid,omitempty"`
}

// Validate checks the parameters that do not need the base. Opening without a KEK passes
// here and fails at open, saying which KEK the header asks for: that is a passphrase
// volume's save_config record, which must stay a valid call for save_config to succeed.
func (p *CreateParams) Validate() error {
	if p.KeyFile != "" && p.Passphrase != "" {
		return fmt.Errorf("give key_file or passphrase, not both: %w", bdev.ErrInvalid)
	}
	if p.Format {
		if err := oneKEK(p.KeyFile, p.Passphrase, ""); err != nil {
			return err
		}
	}
	if p.Force && !p.Format {
		return fmt.Errorf("force without format: %w", bdev.ErrInvalid)
	}
	if p.BlockSize != 0 && !p.Format {
		return fmt.Errorf("block_size is chosen at format; a volume keeps its own: %w",
			bdev.ErrInvalid)
	}
	return nil
}

func oneKEK(keyFile string, pass Secret, prefix string) error {
	if (keyFile == "") == (pass == "") {
		return fmt.Errorf("give exactly one of %skey_file and %spassphrase: %w",
			prefix, prefix, bdev.ErrInvalid)
	}
	return nil
}

// Params are what a crypt bdev shows of its creation (bdev_get_bdevs' driver_specific)
// and what save_config records: bdev_crypt_create's parameters that reopen the volume,
// without a passphrase, and never with format or force, which on replay would destroy it.
// A passphrase volume's record therefore fails to replay until the operator adds the
// passphrase: that is the point of a passphrase.
type Params struct {
	Name         string `json:"name"`
	BaseBdevName string `json:"base_bdev_name"`
	KeyFile      string `json:"key_file,omitempty"`
	AllowUnmap   bool   `json:"allow_unmap,omitempty"`
	UUID         string `json:"uuid"`
}

// liveParams are a bdev's Params, which a rekey changes (the key file), read by JSON
// encoding on any goroutine.
type liveParams struct {
	mu sync.Mutex
	p  Params // +checklocks:mu
}

func (lp *liveParams) get() Params {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.p
}

// MarshalJSON encodes the current Params.
func (lp *liveParams) MarshalJSON() ([]byte, error) { return json.Marshal(lp.get()) }

// backend is one open volume. The master cipher is only cloned (a channel per reactor);
// it and the header are shared by the control plane and channel setup, under mu.
type backend struct {
	name    string
	env     Env
	base    bdev.LayerBase
	bs      uint32
	dataOff uint64
	params  *liveParams

	// rekeyMu serializes what writes the header: one rekey at a time (each reads, then
	// rewrites it), and Close waits for a rekey under way before it gives the base back.
	rekeyMu sync.Mutex
	closed  bool // +checklocks:rekeyMu

	mu     sync.Mutex
	master *xts.Cipher // +checklocks:mu; nil once closed
	hdr    Header      // +checklocks:mu; as last written or read
}

// Create opens a crypt bdev over p.BaseBdevName, which it claims, after formatting it when
// p.Format. It reads (and on format writes) the header through env.Control and fails,
// creating nothing, when the KEK does not open the volume (ErrWrongKey).
func Create(ctx context.Context, m *bdev.Manager, env Env, p CreateParams) (*bdev.Bdev, error) {
	b, err := create(ctx, m, env, p)
	if err != nil {
		return nil, fmt.Errorf("bdev_crypt_create %q: %w", p.Name, err)
	}
	return b, nil
}

func create(ctx context.Context, m *bdev.Manager, env Env, p CreateParams) (
	_ *bdev.Bdev, err error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if env.Mem == nil || env.Control == nil {
		return nil, fmt.Errorf("crypt module without memory cores or control reactor: %w",
			bdev.ErrInvalid)
	}
	if _, err := m.Get(p.Name); err == nil {
		return nil, bdev.ErrExists
	}
	var u [16]byte
	if p.UUID != "" {
		if u, err = bdev.ParseUUID(p.UUID); err != nil {
			return nil, err
		}
	}
	lb, err := bdev.ClaimBase(m, Module, p.Name, p.BaseBdevName)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lb.Release()
		}
	}()
	if p.AllowUnmap && !lb.Bdev.Caps().Unmap {
		return nil, fmt.Errorf("allow_unmap: base %q does not serve unmap: %w",
			lb.Bdev.Name(), bdev.ErrInvalid)
	}
	if p.KeyFile != "" {
		if err := checkKeyFilePlace(p.KeyFile, env.DataDir, baseFileOf(lb.Bdev)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, headerTimeout)
	defer cancel()
	region, err := readRegion(ctx, env.Control, lb.Bdev)
	if err != nil {
		return nil, err
	}
	var h Header
	var dek []byte
	if p.Format {
		h, dek, err = format(ctx, env, lb.Bdev, region, p, u)
	} else {
		h, dek, err = open(lb.Bdev, region, p, u)
	}
	defer clear(dek)
	if err != nil {
		return nil, err
	}
	be, cfg, err := newBackend(env, lb, h, dek, p)
	if err != nil {
		return nil, err
	}
	// The backend owns the claim from here: Register closes it on failure, which
	// releases the base.
	lb = bdev.LayerBase{}
	return m.Register(cfg, be)
}

// newBackend keys the master cipher and describes the bdev over lb.
func newBackend(env Env, lb bdev.LayerBase, h Header, dek []byte, p CreateParams) (
	*backend, bdev.Config, error) {
	bc := lb.Bdev.Caps()
	master, err := xts.New(dek)
	if err != nil {
		return nil, bdev.Config{}, err
	}
	be := &backend{name: p.Name, env: env, base: lb, bs: h.BlockSize, dataOff: h.DataOffset,
		master: master, hdr: h, params: &liveParams{p: Params{Name: p.Name,
			BaseBdevName: p.BaseBdevName, KeyFile: p.KeyFile, AllowUnmap: p.AllowUnmap,
			UUID: bdev.FormatUUID(h.UUID)}}}
	// Write Zeroes is served here as encrypted zeros; unmapped blocks read as noise, so
	// deallocation never claims to read back zeros.
	caps := bdev.Caps{Flush: bc.Flush, FUA: bc.FUA, WriteZeroes: true, Unmap: p.AllowUnmap,
		VolatileCache: bc.VolatileCache}
	cfg := bdev.Config{Name: p.Name, Module: Module, BlockSize: h.BlockSize,
		NumBlocks: (lb.Bdev.SizeBytes() - h.DataOffset) / uint64(h.BlockSize), UUID: h.UUID,
		Caps: caps, Params: be.params, Base: lb.Bdev}
	return be, cfg, nil
}

// format makes a new volume on base: a data key, wrapped under the operator's KEK, in a
// header written to both copies.
func format(ctx context.Context, env Env, base *bdev.Bdev, region []byte, p CreateParams,
	u [16]byte) (Header, []byte, error) {
	bs := p.BlockSize
	if bs == 0 {
		bs = base.BlockSize()
	}
	if bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 || bs < base.BlockSize() {
		return Header{}, nil, fmt.Errorf("block size %d: want a power of two in [%d, %d], "+
			"at least the base's %d: %w", bs, minBlockSize, maxBlockSize, base.BlockSize(),
			bdev.ErrInvalid)
	}
	stride := strideFor(bs)
	if need := 2*uint64(stride) + uint64(bs); base.SizeBytes() < need {
		return Header{}, nil, fmt.Errorf("base %q has %d bytes, less than the header and one "+
			"block (%d): %w", base.Name(), base.SizeBytes(), need, bdev.ErrInvalid)
	}
	if !p.Force && anyMagic(region) {
		return Header{}, nil, fmt.Errorf("base %q already holds a crypt header; format with "+
			"force destroys that volume's key and so its data: %w", base.Name(), bdev.ErrExists)
	}
	if u == ([16]byte{}) {
		if _, err := rand.Read(u[:]); err != nil {
			return Header{}, nil, err
		}
		u[6] = u[6]&0x0f | 0x40 // RFC 4122 version 4
		u[8] = u[8]&0x3f | 0x80
	}
	k, err := newKEK(p.KeyFile, p.Passphrase)
	if err != nil {
		return Header{}, nil, err
	}
	defer k.wipe()
	dek, err := newDataKey()
	if err != nil {
		return Header{}, nil, err
	}
	h := Header{Generation: 1, BlockSize: bs, Stride: stride, DataOffset: 2 * uint64(stride),
		UUID: u}
	if err := wrap(k, &h, dek); err != nil {
		clear(dek)
		return Header{}, nil, err
	}
	if err := wipeStaleCopies(ctx, env.Control, base, region, stride); err != nil {
		clear(dek)
		return Header{}, nil, err
	}
	if err := writeHeader(ctx, env.Control, base, &h); err != nil {
		clear(dek)
		return Header{}, nil, err
	}
	return h, dek, nil
}

// wipeStaleCopies zeroes the copies B a former volume of another block size left where
// the new volume will not write its own (its data area): were the new copy A damaged,
// open would otherwise find the old copy B, with a higher generation, and take it.
func wipeStaleCopies(ctx context.Context, r *reactor.Reactor, base *bdev.Bdev, region []byte,
	stride uint32) error {
	bs := uint64(base.BlockSize())
	zeros := make([]byte, bs)
	for s := uint64(minStride); s <= maxBlockSize && s < uint64(len(region)); s *= 2 {
		if s == uint64(stride) || s%bs != 0 || !hasMagic(region[s:]) {
			continue
		}
		if err := baseIO(ctx, r, base, bdev.IOWrite, s, zeros, true); err != nil {
			return err
		}
	}
	return nil
}

// anyMagic reports whether region holds a header copy, valid or not, at any place a
// copy may be.
func anyMagic(region []byte) bool {
	if hasMagic(region) {
		return true
	}
	for s := minStride; s <= maxBlockSize && s < len(region); s *= 2 {
		if hasMagic(region[s:]) {
			return true
		}
	}
	return false
}

// open reads an existing volume's header from region and unwraps its data key.
func open(base *bdev.Bdev, region []byte, p CreateParams, u [16]byte) (Header, []byte, error) {
	h, err := pickHeader(region)
	if errors.Is(err, ErrNoHeader) {
		return Header{}, nil, fmt.Errorf("base %q holds no crypt header (create with format "+
			"for a new volume): %w", base.Name(), bdev.ErrInvalid)
	}
	if err != nil {
		return Header{}, nil, fmt.Errorf("base %q: %w", base.Name(), err)
	}
	switch {
	case h.BlockSize < base.BlockSize():
		return Header{}, nil, fmt.Errorf("volume block size %d below base %q's %d: %w",
			h.BlockSize, base.Name(), base.BlockSize(), bdev.ErrInvalid)
	case base.SizeBytes() < h.DataOffset+uint64(h.BlockSize):
		return Header{}, nil, fmt.Errorf("base %q has %d bytes, no data after the %d-byte "+
			"header: %w", base.Name(), base.SizeBytes(), h.DataOffset, bdev.ErrInvalid)
	case u != ([16]byte{}) && u != h.UUID:
		return Header{}, nil, fmt.Errorf("uuid %s, but base %q holds volume %s: %w",
			bdev.FormatUUID(u), base.Name(), bdev.FormatUUID(h.UUID), bdev.ErrInvalid)
	}
	k, err := kekFor(&h, p.KeyFile, p.Passphrase)
	if err != nil {
		return Header{}, nil, err
	}
	defer k.wipe()
	dek, err := unwrap(k, &h)
	if err != nil {
		return Header{}, nil, err
	}
	return h, dek, nil
}

// NewChannel gives the reactor its own cipher (a clone: OpenSSL contexts are not shared
// between threads) and the base's channel.
func (be *backend) NewChannel(r *reactor.Reactor) (bdev.BackendChannel, error) {
	core := be.env.Mem(r.ID())
	if core == nil {
		return nil, fmt.Errorf("crypt %q: no memory core for reactor %d: %w",
			be.name, r.ID(), bdev.ErrNoMemory)
	}
	be.mu.Lock()
	x, err := be.master.Clone()
	be.mu.Unlock()
	if err != nil {
		return nil, err
	}
	base, err := be.base.Bdev.GetChannel(r)
	if err != nil {
		x.Close()
		return nil, err
	}
	return newChannel(be, r, core, x, base), nil
}

// Close runs once no channel is open: the master's key material is cleansed and the base
// given back.
func (be *backend) Close() error {
	be.rekeyMu.Lock()
	be.closed = true
	be.rekeyMu.Unlock()
	be.mu.Lock()
	if be.master != nil {
		be.master.Close()
		be.master = nil
	}
	be.mu.Unlock()
	be.base.Release()
	return nil
}

func (be *backend) header() Header {
	be.mu.Lock()
	defer be.mu.Unlock()
	return be.hdr
}

// backendOf finds the crypt volume called name.
func backendOf(m *bdev.Manager, name string) (*backend, *bdev.Bdev, error) {
	b, err := m.Get(name)
	if err != nil {
		return nil, nil, err
	}
	be, ok := b.Backend().(*backend)
	if !ok {
		return nil, nil, fmt.Errorf("bdev %q is a %s bdev, not a crypt bdev: %w",
			name, b.Module(), bdev.ErrNotFound)
	}
	return be, b, nil
}

// RekeyParams are bdev_crypt_rekey's parameters: the current KEK (one of KeyFile and
// Passphrase), which must open the header, and the new one (one of NewKeyFile and
// NewPassphrase). Asking for the current KEK means a caller who can reach the RPC socket
// but does not know it cannot lock the owner out.
type RekeyParams struct {
	Name          string `json:"name" rpc:"required"`
	KeyFile       string `json:"key_file,omitempty"`
	Passphrase    Secret `json:"passphrase,omitempty"`
	NewKeyFile    string `json:"new_key_file,omitempty"`
	NewPassphrase Secret `json:"new_passphrase,omitempty"`
}

// Validate checks that each KEK is given exactly once.
func (p *RekeyParams) Validate() error {
	if err := oneKEK(p.KeyFile, p.Passphrase, ""); err != nil {
		return err
	}
	return oneKEK(p.NewKeyFile, p.NewPassphrase, "new_")
}

// Rekey wraps the volume's data key under a new KEK and rewrites both header copies. The
// data is untouched: rekeying costs two small writes however large the volume, and a
// volume in use stays in use. It does not re-encrypt, so it protects against a KEK that
// leaked, not against a data key that did.
func Rekey(ctx context.Context, m *bdev.Manager, env Env, p RekeyParams) error {
	if err := rekey(ctx, m, env, p); err != nil {
		return fmt.Errorf("bdev_crypt_rekey %q: %w", p.Name, err)
	}
	return nil
}

func rekey(ctx context.Context, m *bdev.Manager, env Env, p RekeyParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	be, _, err := backendOf(m, p.Name)
	if err != nil {
		return err
	}
	base := be.base.Bdev
	if p.NewKeyFile != "" {
		if err := checkKeyFilePlace(p.NewKeyFile, env.DataDir, baseFileOf(base)); err != nil {
			return err
		}
	}
	be.rekeyMu.Lock()
	defer be.rekeyMu.Unlock()
	if be.closed {
		return fmt.Errorf("bdev %q was deleted: %w", p.Name, bdev.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, headerTimeout)
	defer cancel()
	region, err := readRegion(ctx, env.Control, base)
	if err != nil {
		return err
	}
	h, err := pickHeader(region)
	if err != nil {
		return err
	}
	cur := be.header()
	if h.UUID != cur.UUID || h.BlockSize != cur.BlockSize || h.DataOffset != cur.DataOffset {
		return fmt.Errorf("the header on %q no longer describes the open volume: %w",
			base.Name(), ErrCorruptHeader)
	}
	k, err := kekFor(&h, p.KeyFile, p.Passphrase)
	if err != nil {
		return err
	}
	defer k.wipe()
	dek, err := unwrap(k, &h)
	if err != nil {
		return err
	}
	defer clear(dek)
	nk, err := newKEK(p.NewKeyFile, p.NewPassphrase)
	if err != nil {
		return err
	}
	defer nk.wipe()
	nh := h
	nh.Generation++
	if err := wrap(nk, &nh, dek); err != nil {
		return err
	}
	if err := writeHeader(ctx, env.Control, base, &nh); err != nil {
		return err
	}
	be.mu.Lock()
	be.hdr = nh
	be.mu.Unlock()
	be.params.mu.Lock()
	be.params.p.KeyFile = p.NewKeyFile
	be.params.mu.Unlock()
	return nil
}

// KeyInfo is bdev_crypt_get_key_info's answer: how the volume is keyed, never a key.
type KeyInfo struct {
	Name   string `json:"name"`
	Cipher string `json:"cipher"`
	// Tweak says what each block's XTS tweak is, so that another implementation
	// (dm-crypt, a recovery tool) can read the volume.
	Tweak            string     `json:"tweak"`
	BlockSize        uint32     `json:"block_size"`
	DataOffset       uint64     `json:"data_offset"`
	HeaderGeneration uint64     `json:"header_generation"`
	KEKSource        string     `json:"kek_source"`
	KeyFile          string     `json:"key_file,omitempty"`
	KDF              *KDFParams `json:"argon2id,omitempty"`
	Wrap             string     `json:"wrap"`
	// Backend is the XTS implementation linked: "openssl", or "go" in a build without
	// cgo, ten times slower.
	Backend string `json:"backend"`
}

// GetKeyInfo describes how the crypt bdev name is keyed.
func GetKeyInfo(m *bdev.Manager, name string) (KeyInfo, error) {
	be, _, err := backendOf(m, name)
	if err != nil {
		return KeyInfo{}, err
	}
	h := be.header()
	in := KeyInfo{Name: name, Cipher: "aes-256-xts",
		Tweak: fmt.Sprintf("plain64: the block's LBA on %q in %d-byte sectors, little-endian",
			name, h.BlockSize),
		BlockSize: h.BlockSize, DataOffset: h.DataOffset, HeaderGeneration: h.Generation,
		KEKSource: h.KEK.String(), KeyFile: be.params.get().KeyFile, Wrap: "aes-256-gcm",
		Backend: xts.Backend}
	if h.KEK == KEKPassphrase {
		kdf := h.KDF
		in.KDF = &kdf
	}
	return in, nil
}
