package bdev

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"

	"sluice/engine/mem"
	"sluice/engine/reactor"
	"sluice/engine/rpc"
)

// IOType is the kind of an I/O.
type IOType uint8

// I/O types. Unmap is NVMe's Dataset Management deallocate and SCSI's UNMAP.
const (
	IORead IOType = iota
	IOWrite
	IOFlush
	IOWriteZeroes
	IOUnmap
	numIOTypes
)

func (t IOType) String() string {
	switch t {
	case IORead:
		return "read"
	case IOWrite:
		return "write"
	case IOFlush:
		return "flush"
	case IOWriteZeroes:
		return "write_zeroes"
	case IOUnmap:
		return "unmap"
	}
	return fmt.Sprintf("IOType(%d)", uint8(t))
}

// Status is the outcome of an I/O. Protocol targets map it to their wire statuses.
type Status uint8

// I/O statuses.
const (
	StatusSuccess     Status = iota
	StatusIOError            // the medium failed (EIO and other errnos)
	StatusNoSpace            // the backing store is full (ENOSPC)
	StatusOutOfRange         // beyond the end of the device or misaligned
	StatusUnsupported        // the bdev does not serve this I/O type
	StatusNoMemory           // transient lack of resources; the host may retry
	StatusAborted            // the channel was closed under the I/O
)

func (s Status) String() string {
	switch s {
	case StatusSuccess:
		return "success"
	case StatusIOError:
		return "io_error"
	case StatusNoSpace:
		return "no_space"
	case StatusOutOfRange:
		return "out_of_range"
	case StatusUnsupported:
		return "unsupported"
	case StatusNoMemory:
		return "no_memory"
	case StatusAborted:
		return "aborted"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// IO is one block I/O. Its owner (a protocol request context) preallocates it, sets
// Done once, and reuses it for every request, so submitting allocates nothing.
type IO struct {
	Type   IOType
	FUA    bool   // write, write zeroes, unmap: durable before completion
	Offset uint64 // bytes, a multiple of the block size
	Length uint64 // bytes, a multiple of the block size
	Buf    []byte // read/write data, len(Buf) == Length; off-heap memory
	// FixedBuf is 1 + the index of the io_uring fixed buffer that holds all of Buf,
	// among the buffers the Manager's registrar registers (mem.Buf.FixedBuffer()+1
	// for memory of the registered domain); 0 says none, so that owners that know
	// nothing of fixed buffers are unaffected. A backend without registered buffers
	// ignores it; a wrong index costs a retry, never a failed I/O. Owners and layers
	// set it through SetBuf, from the allocator buffer that holds Buf, so that none
	// of them needs to know it is io_uring's.
	FixedBuf uint32

	Status Status
	Errno  int32 // the OS error behind StatusIOError/StatusNoSpace, for diagnostics

	// Done is called exactly once, on the submitting reactor, possibly before
	// Submit returns.
	Done func(*IO)

	ch       *Channel
	startNs  int64
	inFlight bool // between Submit and Complete: catches a double submit or completion
}

// Caps says what a bdev serves beyond read and write.
type Caps struct {
	Flush       bool // FLUSH reaches stable storage
	FUA         bool // FUA writes are durable at completion
	WriteZeroes bool
	Unmap       bool
	// UnmapReadsZero: blocks read as zeros after Unmap (NVMe DLFEAT=001b, SCSI LBPRZ).
	UnmapReadsZero bool
	// VolatileCache: writes may sit in a volatile cache until FLUSH (NVMe VWC, SCSI WCE).
	VolatileCache bool
}

// Backend is what a bdev module implements (SPDK's bdev function table).
type Backend interface {
	// NewChannel makes the backend's per-reactor I/O state. Called on r.
	NewChannel(r *reactor.Reactor) (BackendChannel, error)
	// Close releases the backend once no channel is open.
	Close() error
}

// BackendChannel serves I/Os on one reactor. Submit receives only valid I/Os of
// supported types; it completes each one, now or later on the same reactor, by calling
// io.Complete.
type BackendChannel interface {
	Submit(io *IO)
	// Close aborts nothing: the generic layer closes a channel only when idle.
	Close()
}

// SyncCounter is implemented by backend channels that issue fdatasync, so that the
// statistics can show that FLUSH and FUA reach the disk.
type SyncCounter interface {
	SyncOps() uint64
}

// FixedBufferCounter is implemented by backend channels that can use io_uring fixed
// buffers, so that the statistics show whether they do: ops counts the I/Os served
// with them, faults the I/Os redone without them because the kernel refused the
// buffer they named.
type FixedBufferCounter interface {
	FixedBufferOps() (ops, faults uint64)
}

// BufferRegistrar registers the data path's memory as fixed buffers with the io_uring
// instance ringFD (mem.Domain.RegisterFixedBuffers), so that IO.FixedBuf indexes name
// buffers of that ring.
type BufferRegistrar func(ringFD int) error

// Config describes a bdev to Manager.Register.
type Config struct {
	Name      string
	Module    string // "null", "malloc", "file", ...
	BlockSize uint32
	NumBlocks uint64
	UUID      [16]byte // zero: derived from module and name, stable across restarts
	Caps      Caps
	// Params are the module's creation parameters, echoed by save_config.
	Params any
	// Base is the bdev a layer module stacks on (claimed exclusively by the module);
	// nil for a leaf.
	Base *Bdev
}

// ClaimKind says how a claim shares the bdev with other claims.
type ClaimKind uint8

const (
	// ClaimExclusive: the holder is the only writer and knows of no other (a layer
	// stacked on the bdev: delay, error, crypt, replica). It excludes every other claim.
	ClaimExclusive ClaimKind = iota + 1
	// ClaimNVMeExport and ClaimSCSIExport: the volume exported as an NVMe namespace or
	// a SCSI logical unit. One export per protocol; the two protocols' exports of one
	// volume share it, agreeing on its identity and its reservation state, so that a
	// host cannot write through one around a reservation held through the other.
	ClaimNVMeExport
	ClaimSCSIExport
)

func (k ClaimKind) String() string {
	switch k {
	case ClaimExclusive:
		return "exclusive"
	case ClaimNVMeExport:
		return "nvme export"
	case ClaimSCSIExport:
		return "scsi export"
	}
	return fmt.Sprintf("ClaimKind(%d)", uint8(k))
}

type claim struct {
	kind  ClaimKind
	owner string
}

// Bdev is a registered block device.
type Bdev struct {
	cfg     Config
	backend Backend
	base    *Bdev // the bdev a layer is stacked on; nil for a leaf

	mu       sync.Mutex
	channels map[*reactor.Reactor]*Channel // +checklocks:mu; open or releasing
	claims   []claim                       // +checklocks:mu
	retired  IOStat                        // +checklocks:mu; stats of closed channels
	closed   bool                          // +checklocks:mu
	deleting bool                          // +checklocks:mu; Delete is waiting for channels
	// openBackends counts backend channels not yet closed, including those whose
	// close is queued on their reactor; drained is signalled when it drops to zero.
	openBackends int           // +checklocks:mu
	drained      chan struct{} // +checklocks:mu
}

// Errors returned by the bdev layer. They are the RPC layer's sentinels, so that a
// wrapped bdev error reaches a client with the right JSON-RPC code.
var (
	ErrNotFound = rpc.ErrNotFound
	ErrExists   = rpc.ErrExists
	ErrClaimed  = rpc.ErrBusy
	ErrInvalid  = rpc.ErrInvalid
	ErrClosed   = rpc.ErrInvalidState
	ErrNoMemory = rpc.ErrNoMemory
)

func newBdev(cfg Config, be Backend) (*Bdev, error) {
	switch {
	case cfg.Name == "":
		return nil, fmt.Errorf("bdev name is empty: %w", ErrInvalid)
	case len(cfg.Name) > 128:
		return nil, fmt.Errorf("bdev name %q longer than 128 bytes: %w", cfg.Name, ErrInvalid)
	case cfg.BlockSize < 512 || cfg.BlockSize > 65536 || cfg.BlockSize&(cfg.BlockSize-1) != 0:
		return nil, fmt.Errorf("bdev %q: block size %d is not a power of two in [512, 65536]: %w",
			cfg.Name, cfg.BlockSize, ErrInvalid)
	case cfg.NumBlocks == 0:
		return nil, fmt.Errorf("bdev %q: zero blocks: %w", cfg.Name, ErrInvalid)
	}
	if cfg.UUID == [16]byte{} {
		cfg.UUID = DeriveUUID(cfg.Module, cfg.Name)
	}
	return &Bdev{cfg: cfg, backend: be, base: cfg.Base, channels: map[*reactor.Reactor]*Channel{}}, nil
}

// DeriveUUID makes a stable RFC 4122 version-5-style UUID from a module and a name, so
// that a bdev created from the same config keeps its identity across restarts.
func DeriveUUID(module, name string) [16]byte {
	h := sha256.Sum256([]byte("sluice-bdev\x00" + module + "\x00" + name))
	var u [16]byte
	copy(u[:], h[:16])
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}

// Name is the bdev's unique name.
func (b *Bdev) Name() string { return b.cfg.Name }

// Module names the backend module.
func (b *Bdev) Module() string { return b.cfg.Module }

// BlockSize is the logical block size in bytes.
func (b *Bdev) BlockSize() uint32 { return b.cfg.BlockSize }

// NumBlocks is the capacity in blocks.
func (b *Bdev) NumBlocks() uint64 { return b.cfg.NumBlocks }

// SizeBytes is the capacity in bytes.
func (b *Bdev) SizeBytes() uint64 { return b.cfg.NumBlocks * uint64(b.cfg.BlockSize) }

// UUID is the bdev's identity.
func (b *Bdev) UUID() [16]byte { return b.cfg.UUID }

// NGUID is the volume's 128-bit identifier, the same through every protocol that
// exports it (NVMe NGUID, the SCSI NAA designator's identifier, the reservation state's
// key): the UUID's bytes, so that it is stable across restarts.
func (b *Bdev) NGUID() [16]byte { return b.cfg.UUID }

// EUI64 is the volume's 64-bit identifier (NVMe EUI64, SCSI EUI-64 designator): the
// second half of the UUID, whose first half carries its version and variant bits.
func (b *Bdev) EUI64() [8]byte {
	var e [8]byte
	copy(e[:], b.cfg.UUID[8:])
	return e
}

// Caps says what the bdev serves.
func (b *Bdev) Caps() Caps { return b.cfg.Caps }

// Params are the module's creation parameters.
func (b *Bdev) Params() any { return b.cfg.Params }

// Supports reports whether the bdev serves an I/O type.
func (b *Bdev) Supports(t IOType) bool {
	switch t {
	case IORead, IOWrite:
		return true
	case IOFlush:
		// A bdev without a volatile cache completes FLUSH at once.
		return true
	case IOWriteZeroes:
		return b.cfg.Caps.WriteZeroes
	case IOUnmap:
		return b.cfg.Caps.Unmap
	}
	return false
}

// Claim marks the bdev as used by owner so that it cannot be deleted, and so that two
// writers that know nothing of each other cannot both use it: an exclusive claim
// excludes every other, and an export claim excludes another of its own kind.
func (b *Bdev) Claim(kind ClaimKind, owner string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.deleting {
		return fmt.Errorf("bdev %q is being deleted: %w", b.cfg.Name, ErrClosed)
	}
	for _, c := range b.claims {
		if c.owner == owner {
			return fmt.Errorf("bdev %q already claimed by %s: %w", b.cfg.Name, owner, ErrClaimed)
		}
		if kind == ClaimExclusive || c.kind == ClaimExclusive || kind == c.kind {
			return fmt.Errorf("bdev %q already used by %s (%v claim): %w", b.cfg.Name, c.owner, c.kind, ErrClaimed)
		}
	}
	b.claims = append(b.claims, claim{kind: kind, owner: owner})
	return nil
}

// Release drops the claim made by owner.
func (b *Bdev) Release(owner string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, c := range b.claims {
		if c.owner == owner {
			b.claims = append(b.claims[:i], b.claims[i+1:]...)
			return
		}
	}
}

// ClaimedBy names the claim holders, comma separated, or "".
func (b *Bdev) ClaimedBy() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.claimedByLocked()
}

// +checklocks:b.mu
func (b *Bdev) claimedByLocked() string {
	var sb strings.Builder
	for i, c := range b.claims {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c.owner)
	}
	return sb.String()
}

// Base is the bdev a layer is stacked on, or nil.
func (b *Bdev) Base() *Bdev { return b.base }

// Backend is the module's backend, so that a module living in its own package (crypt,
// replica) reaches its state from a bdev it registered, as SPDK's modules do through
// spdk_bdev's ctxt: its RPCs name bdevs, not backends. Other callers must not use it.
func (b *Bdev) Backend() Backend { return b.backend }

// GetChannel returns the reactor's channel for this bdev, opening it on first use.
// Channels are shared by every user on a reactor and reference counted; a channel
// whose last user left while its I/O drains is taken back into use.
//
// Preconditions: called on r. Postconditions: the caller owes a Put.
func (b *Bdev) GetChannel(r *reactor.Reactor) (*Channel, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.deleting {
		return nil, fmt.Errorf("bdev %q: %w", b.cfg.Name, ErrClosed)
	}
	if ch := b.channels[r]; ch != nil {
		ch.refs++
		ch.releasing = false
		return ch, nil
	}
	bc, err := b.backend.NewChannel(r)
	if err != nil {
		return nil, fmt.Errorf("bdev %q: open channel on reactor %d: %w", b.cfg.Name, r.ID(), err)
	}
	ch := &Channel{bdev: b, r: r, be: bc, refs: 1, caps: b.cfg.Caps,
		sizeBytes: b.SizeBytes(), blockMask: uint64(b.cfg.BlockSize - 1)}
	b.channels[r] = ch
	b.openBackends++
	return ch, nil
}

// putChannel drops a reference. The last one releases the channel once its I/O has
// drained (SPDK's spdk_put_io_channel): at once when nothing is in flight, otherwise
// when the last I/O completes.
//
// Preconditions: on ch.r.
func (b *Bdev) putChannel(ch *Channel) {
	b.mu.Lock()
	if ch.refs <= 0 {
		b.mu.Unlock()
		panic(fmt.Sprintf("bdev %q: Put of a channel with %d references", b.cfg.Name, ch.refs))
	}
	ch.refs--
	if ch.refs > 0 {
		b.mu.Unlock()
		return
	}
	if ch.inflight > 0 {
		ch.releasing = true
		b.mu.Unlock()
		return
	}
	b.retireLocked(ch)
	b.mu.Unlock()
	ch.scheduleClose()
}

// releaseDrained finishes a deferred release once the channel's last I/O completed,
// unless a user took the channel back meanwhile.
//
// Preconditions: on ch.r; ch.inflight == 0.
func (b *Bdev) releaseDrained(ch *Channel) {
	b.mu.Lock()
	if ch.refs > 0 || !ch.releasing {
		b.mu.Unlock()
		return
	}
	ch.releasing = false
	b.retireLocked(ch)
	b.mu.Unlock()
	ch.scheduleClose()
}

// +checklocks:b.mu
func (b *Bdev) retireLocked(ch *Channel) {
	delete(b.channels, ch.r)
	b.retired.add(ch.snapshot())
}

// backendClosed accounts for a closed backend channel and wakes a waiting Delete.
func (b *Bdev) backendClosed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.openBackends--
	if b.openBackends == 0 && b.drained != nil {
		close(b.drained)
		b.drained = nil
	}
}

// IOStat reads the bdev's I/O statistics: closed channels plus a racy-but-atomic
// snapshot of the open ones.
func (b *Bdev) IOStat() IOStat {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.retired
	for _, ch := range b.channels {
		s.add(ch.snapshot())
	}
	s.Name = b.cfg.Name
	return s
}

// beginDelete refuses a claimed bdev and otherwise stops new claims and channels. It
// returns a channel that is closed once every backend channel is closed (nil when
// none is open).
func (b *Bdev) beginDelete() (<-chan struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.deleting {
		return nil, fmt.Errorf("bdev %q is being deleted: %w", b.cfg.Name, ErrClosed)
	}
	if len(b.claims) > 0 {
		return nil, fmt.Errorf("bdev %q is used by %s: %w", b.cfg.Name, b.claimedByLocked(), ErrClaimed)
	}
	b.deleting = true
	if b.openBackends == 0 {
		return nil, nil
	}
	if b.drained == nil {
		b.drained = make(chan struct{})
	}
	return b.drained, nil
}

// cancelDelete undoes beginDelete when the wait gave up: the bdev is usable again.
func (b *Bdev) cancelDelete() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deleting = false
}

// OpenChannels is how many backend channels are still open.
func (b *Bdev) OpenChannels() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openBackends
}

// closeBackend closes the backend once nothing uses it any more.
func (b *Bdev) closeBackend() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	if b.openBackends > 0 {
		n := b.openBackends
		b.mu.Unlock()
		return fmt.Errorf("bdev %q has %d open channels: %w", b.cfg.Name, n, ErrClaimed)
	}
	b.closed = true
	b.mu.Unlock()
	return b.backend.Close()
}

// depth is how many layers stand below b: 0 for a leaf.
func (b *Bdev) depth() int {
	n := 0
	for x := b.base; x != nil; x = x.base {
		n++
	}
	return n
}

// SetBuf names the I/O's data: buf, which lies inside the allocator buffer m, or the zero
// Buf for memory that is not the allocator's (Go memory, a RAM disk region). The IO then
// carries what backends derive from where the memory comes from (today the file bdev's
// io_uring fixed-buffer index) rather than one backend's detail chosen by its owner, and a
// layer that substitutes a buffer of its own (crypt's ciphertext) replaces the hint with
// its buffer's instead of forwarding one that names the caller's memory.
//
// Preconditions: io is not in flight; buf is m's memory, or m is zero.
func (io *IO) SetBuf(buf []byte, m mem.Buf) {
	io.Buf = buf
	io.FixedBuf = 0
	if !m.IsZero() {
		io.FixedBuf = uint32(m.FixedBuffer()) + 1
	}
}

// InFlight reports whether io was submitted and has not completed yet.
func (io *IO) InFlight() bool { return io.inFlight }

// durable reports whether the I/O must be on stable storage when it completes: a
// write, write zeroes or unmap with FUA (a deallocation is a change of contents too:
// with the host's write cache off, a punched hole must survive a power loss).
func (io *IO) durable() bool {
	return io.FUA && (io.Type == IOWrite || io.Type == IOWriteZeroes || io.Type == IOUnmap)
}
