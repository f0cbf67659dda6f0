package nvmf

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"sluice/engine/bdev"
	"sluice/engine/proto/nvme"
	"sluice/engine/reservation/manager"
	"sluice/engine/rpc"
)

// DiscoveryNQN is the well-known NQN of the discovery subsystem.
const DiscoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

// Errors of the control plane: the RPC layer's sentinels, so that wrapped errors
// reach clients with the right JSON-RPC code.
var (
	ErrNotFound = rpc.ErrNotFound
	ErrExists   = rpc.ErrExists
	ErrInvalid  = rpc.ErrInvalid
	ErrBusy     = rpc.ErrBusy
)

// Limits.
const (
	DefaultMaxNamespaces = 32
	maxNamespacesLimit   = 1024
	serialLen            = 20
	modelLen             = 40
	// maxReactors bounds the per-reactor statistics slots of a subsystem.
	maxReactors = 64
)

// Namespace is a bdev exported under an NSID. It is immutable once published; a
// change makes a new Namespace.
type Namespace struct {
	ID    uint32
	Bdev  *bdev.Bdev
	NGUID [16]byte
	UUID  [16]byte
	EUI64 [8]byte
	// vol is the volume's reservation state, shared with every other export of the
	// bdev and keyed by the bdev's own NGUID; nil when the target serves no reservations.
	vol *manager.Volume
}

// nsTable is the immutable snapshot of a subsystem's namespaces that I/O queues read
// without a lock.
type nsTable struct {
	byID   []*Namespace // index NSID-1; nil where no namespace
	active []uint32     // sorted NSIDs
}

func (t *nsTable) get(nsid uint32) *Namespace {
	if nsid == 0 || int(nsid) > len(t.byID) {
		return nil
	}
	return t.byID[nsid-1]
}

// subsysStats are a subsystem's I/O counters for the SMART / health log, one slot per
// reactor so that each is written by one thread and summed by readers.
type subsysStats struct {
	dataUnitsRead    atomic.Uint64 // 512-byte units
	dataUnitsWritten atomic.Uint64
	readCmds         atomic.Uint64
	writeCmds        atomic.Uint64
	mediaErrors      atomic.Uint64

	// Reactor-owned: I/O commands of this subsystem in flight on this reactor, and
	// the start of the next second that has not been counted busy yet (on the
	// target's epoch, in nanoseconds).
	outstanding int64
	nextSecNs   int64
	_           [16]byte // keep slots on separate cache lines
}

// busyClock counts Controller Busy Time: the seconds during which at least one I/O
// command was outstanding on any reactor. Each reactor claims a second at most once,
// and the shared lastSec makes a second counted once whichever reactors were busy in
// it: one atomic operation per reactor per busy second, none per I/O.
type busyClock struct {
	lastSec atomic.Int64
	secs    atomic.Uint64
}

// mark counts second sec busy unless it already is.
func (b *busyClock) mark(sec int64) {
	for {
		last := b.lastSec.Load()
		if last >= sec {
			return
		}
		if b.lastSec.CompareAndSwap(last, sec) {
			b.secs.Add(1)
			return
		}
	}
}

// Subsystem is an NVM subsystem (or the discovery subsystem).
type Subsystem struct {
	nqn       string
	discovery bool
	serial    string
	model     string
	maxNS     uint32

	ns    atomic.Pointer[nsTable]
	stats [maxReactors]subsysStats
	busy  busyClock

	mu           sync.Mutex
	allowAnyHost bool                  // +checklocks:mu
	hosts        map[string]struct{}   // +checklocks:mu
	listeners    []ListenAddress       // +checklocks:mu
	ctrlrs       map[uint16]*Ctrlr     // +checklocks:mu
	nextCntlid   uint16                // +checklocks:mu
	nsList       map[uint32]*Namespace // +checklocks:mu
	deleted      bool                  // +checklocks:mu; DeleteSubsystem took it off the target
}

// SubsystemParams are nvmf_create_subsystem's parameters.
type SubsystemParams struct {
	NQN           string `json:"nqn"`
	SerialNumber  string `json:"serial_number,omitempty"`
	ModelNumber   string `json:"model_number,omitempty"`
	AllowAnyHost  bool   `json:"allow_any_host,omitempty"`
	MaxNamespaces uint32 `json:"max_namespaces,omitempty"`
}

func newSubsystem(p SubsystemParams) (*Subsystem, error) {
	if err := nvme.ValidateNQN(p.NQN); err != nil {
		return nil, fmt.Errorf("subsystem nqn %q: %v: %w", p.NQN, err, ErrInvalid)
	}
	s := &Subsystem{
		nqn:        p.NQN,
		discovery:  p.NQN == DiscoveryNQN,
		serial:     p.SerialNumber,
		model:      p.ModelNumber,
		maxNS:      p.MaxNamespaces,
		hosts:      map[string]struct{}{},
		ctrlrs:     map[uint16]*Ctrlr{},
		nextCntlid: 1,
		nsList:     map[uint32]*Namespace{},
	}
	s.allowAnyHost = p.AllowAnyHost || s.discovery
	if s.serial == "" {
		s.serial = DeriveSerial(p.NQN)
	}
	if err := checkASCII("serial_number", s.serial, serialLen); err != nil {
		return nil, err
	}
	if s.model == "" {
		s.model = "sluice"
	}
	if err := checkASCII("model_number", s.model, modelLen); err != nil {
		return nil, err
	}
	if s.maxNS == 0 {
		s.maxNS = DefaultMaxNamespaces
	}
	if s.maxNS > maxNamespacesLimit {
		return nil, fmt.Errorf("max_namespaces %d above %d: %w", s.maxNS, maxNamespacesLimit, ErrInvalid)
	}
	s.ns.Store(&nsTable{byID: make([]*Namespace, s.maxNS)})
	s.busy.lastSec.Store(-1)
	return s, nil
}

func checkASCII(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%s %q longer than %d bytes: %w", field, v, max, ErrInvalid)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return fmt.Errorf("%s %q: printable ASCII only: %w", field, v, ErrInvalid)
		}
	}
	return nil
}

// DeriveSerial makes a stable 20-character serial number from the subsystem NQN, so
// that a host sees the same serial after a daemon restart.
func DeriveSerial(nqn string) string {
	h := sha256.Sum256([]byte("sluice-serial\x00" + nqn))
	return fmt.Sprintf("SLC%017X", h[:9])[:serialLen]
}

// NQN is the subsystem's NQN.
func (s *Subsystem) NQN() string { return s.nqn }

// IsDiscovery reports whether this is the discovery subsystem.
func (s *Subsystem) IsDiscovery() bool { return s.discovery }

// hostAllowed reports whether hostNQN may connect.
func (s *Subsystem) hostAllowed(hostNQN string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.allowAnyHost {
		return true
	}
	_, ok := s.hosts[hostNQN]
	return ok
}

// listensOn reports whether the subsystem accepts connections on a listen address.
// The discovery subsystem is reachable through every listener, as with Linux nvmet.
func (s *Subsystem) listensOn(a ListenAddress) bool {
	if s.discovery {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.sameEndpoint(a) {
			return true
		}
	}
	return false
}

// namespaces returns the current snapshot.
func (s *Subsystem) namespaces() *nsTable { return s.ns.Load() }

// NamespaceParams are nvmf_subsystem_add_ns's namespace parameters.
type NamespaceParams struct {
	NSID     uint32 `json:"nsid,omitempty"`
	BdevName string `json:"bdev_name"`
	NGUID    string `json:"nguid,omitempty"`
	UUID     string `json:"uuid,omitempty"`
	EUI64    string `json:"eui64,omitempty"`
}

// addNamespace publishes a namespace and returns it. Identity defaults derive from
// the bdev's UUID, so they are stable across restarts.
func (s *Subsystem) addNamespace(p NamespaceParams, b *bdev.Bdev, vol *manager.Volume) (*Namespace, error) {
	if s.discovery {
		return nil, fmt.Errorf("the discovery subsystem has no namespaces: %w", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return nil, fmt.Errorf("subsystem %s is being deleted: %w", s.nqn, ErrNotFound)
	}
	nsid := p.NSID
	if nsid == 0 {
		for id := uint32(1); id <= s.maxNS; id++ {
			if s.nsList[id] == nil {
				nsid = id
				break
			}
		}
		if nsid == 0 {
			return nil, fmt.Errorf("subsystem %s: all %d namespaces in use: %w", s.nqn, s.maxNS, ErrBusy)
		}
	}
	if nsid > s.maxNS || nsid == 0xFFFFFFFF {
		return nil, fmt.Errorf("nsid %d above max_namespaces %d: %w", nsid, s.maxNS, ErrInvalid)
	}
	if s.nsList[nsid] != nil {
		return nil, fmt.Errorf("subsystem %s nsid %d: %w", s.nqn, nsid, ErrExists)
	}
	// The volume's identity is the bdev's; explicit identifiers here only change how
	// this namespace presents itself (its reservation state stays the volume's).
	ns := &Namespace{ID: nsid, Bdev: b, UUID: b.UUID(), NGUID: b.NGUID(), EUI64: b.EUI64(), vol: vol}
	var err error
	if p.UUID != "" {
		if ns.UUID, err = bdev.ParseUUID(p.UUID); err != nil {
			return nil, err
		}
	}
	if p.NGUID != "" {
		if ns.NGUID, err = parseHexID16(p.NGUID); err != nil {
			return nil, err
		}
	}
	if p.EUI64 != "" {
		if ns.EUI64, err = parseHexID8(p.EUI64); err != nil {
			return nil, err
		}
	}
	owner := fmt.Sprintf("nvmf %s nsid %d", s.nqn, nsid)
	if err := b.Claim(bdev.ClaimNVMeExport, owner); err != nil {
		return nil, err
	}
	for _, o := range s.nsList {
		if o.NGUID == ns.NGUID || o.UUID == ns.UUID {
			b.Release(owner)
			return nil, fmt.Errorf("subsystem %s: nsid %d has the same NGUID or UUID: %w", s.nqn, o.ID, ErrExists)
		}
	}
	s.nsList[nsid] = ns
	s.publishLocked()
	return ns, nil
}

// removeNamespace unpublishes a namespace and releases its bdev claim.
func (s *Subsystem) removeNamespace(nsid uint32) (*Namespace, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.nsList[nsid]
	if ns == nil {
		return nil, fmt.Errorf("subsystem %s nsid %d: %w", s.nqn, nsid, ErrNotFound)
	}
	delete(s.nsList, nsid)
	s.publishLocked()
	ns.Bdev.Release(fmt.Sprintf("nvmf %s nsid %d", s.nqn, nsid))
	return ns, nil
}

// publishLocked makes a new snapshot from nsList.
//
// Preconditions: s.mu held.
func (s *Subsystem) publishLocked() {
	t := &nsTable{byID: make([]*Namespace, s.maxNS)}
	for id, ns := range s.nsList {
		t.byID[id-1] = ns
		t.active = append(t.active, id)
	}
	sort.Slice(t.active, func(i, j int) bool { return t.active[i] < t.active[j] })
	s.ns.Store(t)
}

// controllers returns the live controllers.
func (s *Subsystem) controllers() []*Ctrlr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Ctrlr, 0, len(s.ctrlrs))
	for _, c := range s.ctrlrs {
		out = append(out, c)
	}
	return out
}

// addCtrlr gives c a free controller ID and registers it.
func (s *Subsystem) addCtrlr(c *Ctrlr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Controller IDs 0xFFF0..0xFFFF are reserved; IDs are handed out round robin so
	// that a reconnecting host does not get the ID of a controller it just lost.
	for i := 0; i < 0xFFEF; i++ {
		id := s.nextCntlid
		s.nextCntlid++
		if s.nextCntlid >= 0xFFF0 {
			s.nextCntlid = 1
		}
		if s.ctrlrs[id] == nil {
			c.cntlid = id
			s.ctrlrs[id] = c
			return nil
		}
	}
	return fmt.Errorf("subsystem %s: no free controller id: %w", s.nqn, ErrBusy)
}

func (s *Subsystem) removeCtrlr(c *Ctrlr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctrlrs[c.cntlid] == c {
		delete(s.ctrlrs, c.cntlid)
	}
}

func (s *Subsystem) ctrlr(id uint16) *Ctrlr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctrlrs[id]
}

// healthTotals sums the per-reactor counters.
func (s *Subsystem) healthTotals() (unitsRead, unitsWritten, reads, writes, mediaErrs, busySecs uint64) {
	for i := range s.stats {
		st := &s.stats[i]
		unitsRead += st.dataUnitsRead.Load()
		unitsWritten += st.dataUnitsWritten.Load()
		reads += st.readCmds.Load()
		writes += st.writeCmds.Load()
		mediaErrs += st.mediaErrors.Load()
	}
	busySecs = s.busy.secs.Load()
	return
}

// SubsystemInfo is nvmf_get_subsystems' view of a subsystem.
type SubsystemInfo struct {
	NQN           string          `json:"nqn"`
	Subtype       string          `json:"subtype"`
	SerialNumber  string          `json:"serial_number,omitempty"`
	ModelNumber   string          `json:"model_number,omitempty"`
	MaxNamespaces uint32          `json:"max_namespaces,omitempty"`
	AllowAnyHost  bool            `json:"allow_any_host"`
	Hosts         []HostInfo      `json:"hosts"`
	Listeners     []ListenAddress `json:"listen_addresses"`
	Namespaces    []NSInfo        `json:"namespaces,omitempty"`
	Controllers   int             `json:"controllers"`
	// ConnectedHosts lists the hosts with live controllers, an anonymous host (empty
	// host NQN) flagged as such and told apart by its host ID.
	ConnectedHosts []ConnectedHost `json:"connected_hosts"`
}

// ConnectedHost is one host with live controllers on a subsystem.
type ConnectedHost struct {
	HostNQN   string   `json:"hostnqn"`
	HostID    string   `json:"hostid"`
	Anonymous bool     `json:"anonymous,omitempty"`
	CNTLIDs   []uint16 `json:"cntlids"`
}

// HostInfo names an allowed host.
type HostInfo struct {
	NQN string `json:"nqn"`
}

// NSInfo describes a namespace.
type NSInfo struct {
	NSID     uint32 `json:"nsid"`
	BdevName string `json:"bdev_name"`
	NGUID    string `json:"nguid"`
	UUID     string `json:"uuid"`
	EUI64    string `json:"eui64"`
}

func (s *Subsystem) info() SubsystemInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := SubsystemInfo{NQN: s.nqn, Subtype: "NVMe", AllowAnyHost: s.allowAnyHost,
		Hosts: []HostInfo{}, Listeners: append([]ListenAddress{}, s.listeners...), Controllers: len(s.ctrlrs),
		ConnectedHosts: connectedHosts(s.ctrlrs)}
	if s.discovery {
		in.Subtype = "Discovery"
	} else {
		in.SerialNumber, in.ModelNumber, in.MaxNamespaces = s.serial, s.model, s.maxNS
	}
	for h := range s.hosts {
		in.Hosts = append(in.Hosts, HostInfo{NQN: h})
	}
	sort.Slice(in.Hosts, func(i, j int) bool { return in.Hosts[i].NQN < in.Hosts[j].NQN })
	for _, id := range s.ns.Load().active {
		ns := s.nsList[id]
		in.Namespaces = append(in.Namespaces, NSInfo{NSID: id, BdevName: ns.Bdev.Name(),
			NGUID: formatHex(ns.NGUID[:]), UUID: bdev.FormatUUID(ns.UUID), EUI64: formatHex(ns.EUI64[:])})
	}
	return in
}

func formatHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func parseHexID16(s string) ([16]byte, error) {
	var out [16]byte
	return out, parseHexInto(out[:], s)
}

func parseHexID8(s string) ([8]byte, error) {
	var out [8]byte
	return out, parseHexInto(out[:], s)
}

func parseHexInto(dst []byte, s string) error {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != len(dst) {
		return fmt.Errorf("identifier %q: want %d hex digits: %w", s, 2*len(dst), ErrInvalid)
	}
	copy(dst, b)
	return nil
}

// connectedHosts groups live controllers by host (NQN and host ID, which never change
// after Connect, so reading them off the reactor is safe).
func connectedHosts(ctrlrs map[uint16]*Ctrlr) []ConnectedHost {
	type key struct {
		nqn string
		id  [16]byte
	}
	at := map[key]int{}
	out := []ConnectedHost{}
	for id, c := range ctrlrs {
		k := key{c.hostNQN, c.hostID}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, ConnectedHost{HostNQN: c.hostNQN, HostID: hex.EncodeToString(c.hostID[:]),
				Anonymous: c.hostNQN == ""})
		}
		out[i].CNTLIDs = append(out[i].CNTLIDs, id)
	}
	for i := range out {
		slices.Sort(out[i].CNTLIDs)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].HostNQN != out[j].HostNQN {
			return out[i].HostNQN < out[j].HostNQN
		}
		return out[i].HostID < out[j].HostID
	})
	return out
}
