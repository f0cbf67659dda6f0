package host

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"sluice/engine/proto/nvme"
)

// Defaults for Options' zero values.
const (
	// DefaultKATO is the keep-alive timeout sent in the admin Connect when
	// Options.KATO is 0. The Linux host's default is 5 s; 10 s leaves room for a
	// loaded test machine running the race detector.
	DefaultKATO = 10 * time.Second
	// DefaultQueueSize is the I/O queue size (the Linux and SPDK default).
	DefaultQueueSize = 128
	// DefaultAdminQueueSize is the admin queue size (NVME_AQ_DEPTH in Linux).
	DefaultAdminQueueSize = 32
	// DefaultNumIOQueues is how many I/O queues Set Features 07h asks for.
	DefaultNumIOQueues = 8
	// DefaultTimeout bounds each command, the ICResp wait and CSTS polling.
	DefaultTimeout = 30 * time.Second
	// MaxQueueSize bounds QueueSize: CIDs carry the slot in 12 bits and a 4-bit
	// generation, so that a completion for a recycled CID is caught.
	MaxQueueSize = 1 << slotBits
	// AdminMaxICD is the in-capsule data the admin queue uses: the Linux host sizes
	// admin capsules as 64 + 8 KiB (NVME_TCP_ADMIN_CCSZ), and targets accept that
	// much whatever their I/O IOCCSZ (PROTOCOLS.md §1.3).
	AdminMaxICD = 8192
)

// Dialer opens the TCP connections; *net.Dialer satisfies it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options configure a controller association. The zero value is usable.
type Options struct {
	// HostNQN is sent in every Connect. Empty: DefaultHostNQN(), unless Anonymous.
	HostNQN string
	// Anonymous sends an empty host NQN, as SPDK's initiator does when it is given
	// none: targets admit such a host only where any host is allowed. HostID then
	// defaults to a random one, as SPDK's is.
	Anonymous bool
	// HostID is the 128-bit host identifier sent in every Connect. Zero: the UUID of
	// DefaultHostNQN (so the pair is stable on one machine, as nvme-cli's is).
	HostID [16]byte
	// HeaderDigest and DataDigest are asked for in ICReq; the controller must grant
	// exactly these.
	HeaderDigest, DataDigest bool
	// KATO is the keep-alive timeout sent in the admin Connect. 0 means DefaultKATO;
	// negative sends 0 (keep-alive disabled) and starts no keep-alive goroutine.
	// Discovery ignores it and always sends 0, as non-persistent Linux discovery does.
	KATO time.Duration
	// ManualKeepAlive sends KATO in Connect but starts no keep-alive goroutine: the
	// caller sends KeepAlive itself, or lets the controller's timer expire (tests).
	ManualKeepAlive bool
	// QueueSize is the number of entries of each I/O queue (Connect SQSIZE+1) and so
	// the number of tags. 0 means DefaultQueueSize; it is lowered to CAP.MQES+1 and to
	// MAXCMD as the Linux host does.
	QueueSize int
	// AdminQueueSize is the admin queue's size. 0 means DefaultAdminQueueSize.
	AdminQueueSize int
	// NumIOQueues is the I/O queue count asked for in Set Features 07h. 0 means
	// DefaultNumIOQueues.
	NumIOQueues int
	// DisableSQFlow sets Connect CATTR bit 2 (SQ flow control disable) on every queue,
	// which lets the controller complete reads with C2HData SUCCESS and no
	// CapsuleResp. With flow control on, SUCCESS is a protocol violation.
	DisableSQFlow bool
	// MaxICD caps in-capsule data on I/O queues. 0 uses what the controller's IOCCSZ
	// allows (IOCCSZ*16 - 64); negative never uses in-capsule data, so every write
	// goes through R2T and H2CData.
	MaxICD int
	// Timeout bounds each command and the ICResp wait. 0 means DefaultTimeout;
	// negative means no limit (the context still applies).
	Timeout time.Duration
	// Dialer opens connections. Nil means a *net.Dialer.
	Dialer Dialer
	// AcceptAnySQID accepts completions whose SQID is not their queue's, as the Linux
	// host does (it never reads the field). SPDK's target (v23.01) answers every
	// command with SQID 0; the benchmark sets this to drive it. Off, a wrong SQID is a
	// protocol violation.
	AcceptAnySQID bool
}

const (
	slotBits = 12
	slotMask = 1<<slotBits - 1
	genMask  = 0xF
)

// withDefaults fills zero values and validates the rest.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Anonymous && o.HostNQN != "":
		return o, errors.New("nvme/tcp host: Anonymous with a host NQN")
	case o.Anonymous:
		if o.HostID == ([16]byte{}) {
			if _, err := rand.Read(o.HostID[:]); err != nil {
				return o, fmt.Errorf("host id: %w", err)
			}
		}
	default:
		if o.HostNQN == "" {
			o.HostNQN = DefaultHostNQN()
		}
		if err := nvme.ValidateNQN(o.HostNQN); err != nil {
			return o, fmt.Errorf("host nqn: %w", err)
		}
		if o.HostID == ([16]byte{}) {
			o.HostID = hostIDFor(o.HostNQN)
		}
	}
	if o.KATO == 0 {
		o.KATO = DefaultKATO
	}
	if o.KATO > 0 && o.KATO < time.Millisecond {
		return o, errors.New("nvme/tcp host: kato below 1 ms")
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.AdminQueueSize == 0 {
		o.AdminQueueSize = DefaultAdminQueueSize
	}
	for _, q := range []int{o.QueueSize, o.AdminQueueSize} {
		if q < 2 || q > MaxQueueSize {
			return o, fmt.Errorf("nvme/tcp host: queue size %d outside 2..%d", q, MaxQueueSize)
		}
	}
	if o.NumIOQueues == 0 {
		o.NumIOQueues = DefaultNumIOQueues
	}
	if o.NumIOQueues < 1 || o.NumIOQueues > 0xFFFF {
		return o, fmt.Errorf("nvme/tcp host: %d I/O queues outside 1..65535", o.NumIOQueues)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{}
	}
	return o, nil
}

// katoMs is the KATO field of the admin Connect, in milliseconds.
func (o *Options) katoMs() uint32 {
	if o.KATO <= 0 {
		return 0
	}
	return uint32(o.KATO / time.Millisecond)
}

// DefaultHostNQN returns a host NQN of the UUID form that is stable on one machine: the
// UUID is a name-based (version 5 style, SHA-1) UUID of the host name, so repeated runs
// present the same identity without writing state anywhere.
func DefaultHostNQN() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "localhost"
	}
	return nvme.UUIDNQNPrefix + formatUUID(nameUUID("sluice-host:"+name))
}

func nameUUID(name string) [16]byte {
	sum := sha1.Sum([]byte(name))
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0F | 0x50 // version 5
	u[8] = u[8]&0x3F | 0x80 // RFC 4122 variant
	return u
}

func formatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// hostIDFor returns the UUID inside a UUID-form NQN, or a name-based UUID of the NQN.
func hostIDFor(nqn string) [16]byte {
	if len(nqn) == len(nvme.UUIDNQNPrefix)+36 && nqn[:len(nvme.UUIDNQNPrefix)] == nvme.UUIDNQNPrefix {
		s := nqn[len(nvme.UUIDNQNPrefix):]
		h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
		var u [16]byte
		if n, err := hex.Decode(u[:], []byte(h)); err == nil && n == 16 {
			return u
		}
	}
	return nameUUID("sluice-hostid:" + nqn)
}
