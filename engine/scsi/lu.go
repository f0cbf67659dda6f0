package scsi

import (
	"encoding/hex"
	"fmt"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/proto/scsi"
	"sluice/engine/reactor"
	"sluice/engine/reservation"
	"sluice/engine/reservation/manager"
	"sluice/engine/rpc"
)

// NAAOUI is the 24-bit company identifier in every LU's NAA designator (VPD 83h, NAA 6h
// IEEE Registered Extended). sluice owns no IEEE assignment, so it uses a locally
// administered value: the U/L bit (02h in the first octet, as in a locally administered
// MAC address) set, then "sl". The other 100 bits are the low 100 bits of the volume's
// NGUID, so the designator is as stable and as unique as the NGUID (random in its low
// bits), and the same volume shows the same naa.* through every target node.
const NAAOUI = 0x02736C

// Defaults for the INQUIRY identification strings.
const (
	DefaultVendor   = "SLUICE"
	DefaultProduct  = "sluice volume"
	DefaultRevision = "0001"
)

// TargetPort describes one SCSI target port the LU is reached through (an iSCSI target
// portal group of the target node): what VPD 83h reports to a nexus on that port.
type TargetPort struct {
	// RelativeID is the RELATIVE TARGET PORT IDENTIFIER (non-zero; the iSCSI TPGT is
	// the usual choice), the TargetPort of the nexus identities on this port.
	RelativeID uint16
	// Name is the SCSI name string of the port: "iqn...,t,0x0001".
	Name string
	// Group is the TARGET PORT GROUP, reported when non-zero. No ALUA is offered
	// (TPGS 00b), so transports leave it zero today.
	Group uint16
}

// LUConfig describes a logical unit to NewLU.
type LUConfig struct {
	// Bdev is the volume exported; NewLU claims it with bdev.ClaimSCSIExport.
	Bdev *bdev.Bdev
	// LUN is the logical unit number (at most scsi.MaxLUN).
	LUN uint16
	// Owner names the claim holder ("iscsi iqn...:lun0"); empty builds one from the
	// target name and LUN.
	Owner string
	// Manager serves reservations (PERSISTENT RESERVE IN/OUT, RESERVE/RELEASE). nil:
	// the LU answers those commands INVALID COMMAND OPERATION CODE, since a reservation
	// held here alone would not bind the volume's other exports.
	Manager *manager.Manager
	// Volume is the volume's reservation state; nil with a Manager takes
	// Manager.Volume(Bdev.NGUID()).
	Volume *manager.Volume
	// Home is the reactor that receives the manager's answers to events the LU reports
	// on its own (an I_T nexus loss). Required with a Manager.
	Home *reactor.Reactor
	// Vendor, Product and Revision are the INQUIRY identification (8, 16 and 4
	// characters; longer values are cut). Empty takes the defaults.
	Vendor, Product, Revision string
	// TargetName is the SCSI name of the target device (the iSCSI target name).
	TargetName string
	// Ports are the target ports the LU is exported through; VPD 83h shows a nexus
	// the one it came on (by RelativeID), and REGISTER AND MOVE may name any of them.
	Ports []TargetPort
	// ReadOnly exports the volume write protected (MODE SENSE WP=1).
	ReadOnly bool
	// Limits override the Block Limits the LU advertises and enforces; the zero value
	// takes DefaultLimits.
	Limits scsi.BlockLimits
	// TMF lists the task management functions the transport serves, for REPORT
	// SUPPORTED TASK MANAGEMENT FUNCTIONS; the zero value reports ABORT TASK, ABORT
	// TASK SET and LOGICAL UNIT RESET.
	TMF scsi.TMFSupport
}

// LU is a logical unit: one bdev exported through SCSI. Its configuration is
// immutable; the state commands share across reactors (mode pages, nexuses, range
// locks) is behind mu/modeMu on the control path or in atomics the I/O path reads, so
// an LU is safe for concurrent use by every reactor's channels.
type LU struct {
	cfg       LUConfig
	bdev      *bdev.Bdev
	lun       uint16
	blockSize uint32
	shift     uint8 // log2(blockSize)
	blocks    uint64
	caps      bdev.Caps
	unmap     bool // UNMAP and WRITE SAME with UNMAP deallocate (LBPME=1)
	limits    scsi.BlockLimits
	vol       *manager.Volume
	mgr       *manager.Manager
	owner     string

	naa      [16]byte
	eui      [8]byte
	serial   string
	inquiry  scsi.StandardInquiry
	capacity scsi.Capacity
	commands scsi.CommandTable
	tmf      scsi.TMFSupport

	// The mode page bits the I/O path needs, mirrored from modes on MODE SELECT.
	wce, dsense, swp atomic.Bool
	closed           atomic.Bool
	lunMap           atomic.Pointer[LUNMap]

	// Sanitize (sanitize.go): sanState is what every command checks, one load;
	// sanProgress the running operation's progress in 1/65536ths; erased says that
	// every block is deallocated (a BLOCK ERASE completed and nothing was written
	// since), which GET LBA STATUS reports. Transitions of sanState happen under mu.
	sanState    atomic.Uint32
	sanProgress atomic.Uint32
	erased      atomic.Bool
	// sanEpoch counts the sanitize operations accepted, so that a copy spanning one
	// notices it.
	sanEpoch atomic.Uint64
	// lossPending counts the nexus losses the reservation manager has not answered
	// (Nexus.Lost): while there are any, commands a reservation could refuse wait.
	lossPending atomic.Int32

	modeMu sync.Mutex
	modes  scsi.ModePages // +checklocks:modeMu

	mu        sync.Mutex
	nexuses   map[reservation.Identity]*Nexus // +checklocks:mu
	chans     []*Channel                      // +checklocks:mu
	heldLocks []*rangeLock                    // +checklocks:mu
	waitLocks []*rangeLock                    // +checklocks:mu
	freeLocks []*rangeLock                    // +checklocks:mu
	hub       *sinkHub

	// The copy manager (xcopy.go): its limits, and the copies by list identifier.
	copyLimits   scsi.CopyLimits
	copies       map[copyKey]*copyRecord // +checklocks:mu
	copyOrder    []copyKey               // +checklocks:mu; oldest first
	activeCopies int                     // +checklocks:mu
}

// Errors of NewLU and the LUNMap. They wrap the RPC layer's sentinels so that the
// iSCSI target's RPCs answer with the right JSON-RPC codes.
var (
	ErrInvalid = rpc.ErrInvalid
	ErrExists  = rpc.ErrExists
	ErrClosed  = rpc.ErrInvalidState
)

// NewLU exports cfg.Bdev as a logical unit and claims it (bdev.ClaimSCSIExport).
//
// Postconditions: the caller owes a Close.
func NewLU(cfg LUConfig) (*LU, error) {
	if err := normalizeConfig(&cfg); err != nil {
		return nil, err
	}
	b := cfg.Bdev
	if err := b.Claim(bdev.ClaimSCSIExport, cfg.Owner); err != nil {
		return nil, fmt.Errorf("scsi lun %d: %w", cfg.LUN, err)
	}
	lu := newLU(cfg)
	if lu.mgr != nil {
		lu.hub = hubFor(lu.mgr)
		lu.hub.add(lu)
	}
	return lu, nil
}

func normalizeConfig(cfg *LUConfig) error {
	switch {
	case cfg.Bdev == nil:
		return fmt.Errorf("scsi lun %d: no bdev: %w", cfg.LUN, ErrInvalid)
	case cfg.LUN > scsi.MaxLUN:
		return fmt.Errorf("scsi lun %d above %d: %w", cfg.LUN, scsi.MaxLUN, ErrInvalid)
	case cfg.Manager != nil && cfg.Home == nil:
		return fmt.Errorf("scsi lun %d: reservations need a home reactor: %w", cfg.LUN, ErrInvalid)
	}
	for _, p := range cfg.Ports {
		if p.RelativeID == 0 {
			return fmt.Errorf("scsi lun %d: relative target port 0: %w", cfg.LUN, ErrInvalid)
		}
	}
	if cfg.Manager != nil && cfg.Volume == nil {
		cfg.Volume = cfg.Manager.Volume(cfg.Bdev.NGUID())
	}
	if cfg.Volume != nil && (cfg.Manager == nil || cfg.Volume.NGUID != cfg.Bdev.NGUID()) {
		return fmt.Errorf("scsi lun %d: reservation volume does not match bdev %q: %w",
			cfg.LUN, cfg.Bdev.Name(), ErrInvalid)
	}
	cfg.Vendor = orDefault(cfg.Vendor, DefaultVendor)
	cfg.Product = orDefault(cfg.Product, DefaultProduct)
	cfg.Revision = orDefault(cfg.Revision, DefaultRevision)
	if cfg.Owner == "" {
		cfg.Owner = "scsi " + cfg.TargetName + " lun " + strconv.Itoa(int(cfg.LUN))
	}
	if cfg.TMF == (scsi.TMFSupport{}) {
		cfg.TMF = scsi.TMFSupport{AbortTask: true, AbortTaskSet: true, LUReset: true}
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func newLU(cfg LUConfig) *LU {
	b := cfg.Bdev
	caps := b.Caps()
	lu := &LU{cfg: cfg, bdev: b, lun: cfg.LUN, blockSize: b.BlockSize(),
		shift: uint8(bits.TrailingZeros32(b.BlockSize())), blocks: b.NumBlocks(), caps: caps,
		unmap: caps.Unmap, vol: cfg.Volume, mgr: cfg.Manager, owner: cfg.Owner,
		naa: scsi.NAARegisteredExtended(NAAOUI, b.NGUID()), eui: b.EUI64(), tmf: cfg.TMF,
		nexuses: map[reservation.Identity]*Nexus{}}
	nguid := b.NGUID()
	lu.serial = hex.EncodeToString(nguid[:])
	lu.limits = cfg.Limits
	if lu.limits == (scsi.BlockLimits{}) {
		lu.limits = DefaultLimits(lu.blockSize, lu.unmap)
	}
	lu.inquiry = scsi.StandardInquiry{Peripheral: scsi.PeripheralDisk, Version: scsi.VersionSPC4,
		HiSup: true, CmdQue: true, MultiP: len(cfg.Ports) > 1, Vendor: cfg.Vendor,
		Product: cfg.Product, Revision: cfg.Revision,
		VersionDescriptors: [8]uint16{scsi.VersionDescriptorSAM5, scsi.VersionDescriptorISCSI,
			scsi.VersionDescriptorSPC4, scsi.VersionDescriptorSBC3}}
	lu.capacity = scsi.Capacity{Blocks: lu.blocks, BlockSize: lu.blockSize, LBPME: lu.unmap,
		LBPRZ:         lu.unmap && caps.UnmapReadsZero,
		LBPPBExponent: uint8(bits.TrailingZeros32(physicalBlockSize(lu.blockSize) / lu.blockSize))}
	lu.copyLimits = copyLimits(lu.blockSize)
	lu.commands = commandTable(lu.vol != nil, lu.unmap, lu.blockErase(),
		lu.limits.MaxAtomicTransferLength != 0)
	// WCE starts as the bdev's volatile cache: a host then sends SYNCHRONIZE CACHE
	// and FUA exactly where NVMe's VWC would make it send Flush and FUA.
	lu.modes = scsi.BlockModePages(scsi.CachingPage{WCE: caps.VolatileCache},
		scsi.ControlPage{QAM: 1, TAS: true, BusyTimeout: 600})
	lu.mirrorModes()
	return lu
}

// physicalBlockSize is the LU's physical block: 4 KiB, or the logical block when that is
// larger. The bdev layer reports no physical block size, but a volume is a file (or a
// namespace) whose page and allocation unit are 4 KiB: a write of less is a partial
// write of one below it. The NVMe export of the same volume says the same through
// NPWG/NPWA/NOWS (engine/nvmf identifyNamespace), and READ CAPACITY(16) reports it as
// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (3 for 512-byte blocks).
func physicalBlockSize(blockSize uint32) uint32 { return max(4096, blockSize) }

// DefaultLimits are the Block Limits of an LU whose LUConfig sets none: transfers up to
// 1 MiB (the reads and writes a transport buffers whole), COMPARE AND WRITE up to 255
// blocks (VMware ATS uses 1), WRITE SAME up to 65535 blocks and 256 MiB (65535 is the
// most WRITE SAME(10) can name, so one limit binds both CDB sizes, as with LIO's block
// backend), WRITE ATOMIC up to the transfer limit with no alignment or granularity
// (its atomicity is the range lock's, which has neither), and, when the bdev
// deallocates, UNMAP without a block limit, in physical blocks aligned at LBA 0 like
// the LU's (LOWEST ALIGNED LBA 0).
func DefaultLimits(blockSize uint32, unmap bool) scsi.BlockLimits {
	gran := physicalBlockSize(blockSize) / blockSize
	l := scsi.BlockLimits{
		MaxCompareAndWriteLength:   255,
		OptimalTransferGranularity: uint16(gran),
		MaxTransferLength:          (1 << 20) / blockSize,
		OptimalTransferLength:      (128 << 10) / blockSize,
		MaxPrefetchLength:          (1 << 20) / blockSize,
		MaxWriteSameLength:         uint64(min((256<<20)/blockSize, 0xFFFF)),
		MaxAtomicTransferLength:    (1 << 20) / blockSize,
	}
	if unmap {
		l.MaxUnmapLBACount = 0xFFFFFFFF
		l.MaxUnmapDescriptors = 256
		l.OptimalUnmapGranularity = gran
		l.UGAValid = true
	}
	return l
}

// commandTable lists what REPORT SUPPORTED OPERATION CODES reports: every command the
// channel executes, so that the report and the behaviour cannot disagree.
func commandTable(resv, unmap, blockErase, atomic bool) scsi.CommandTable {
	ops := []scsi.Opcode{scsi.OpTestUnitReady, scsi.OpRequestSense, scsi.OpRead6,
		scsi.OpWrite6, scsi.OpInquiry, scsi.OpModeSelect6, scsi.OpModeSense6,
		scsi.OpStartStopUnit, scsi.OpPreventAllowRemoval, scsi.OpReadCapacity10,
		scsi.OpRead10, scsi.OpWrite10, scsi.OpWriteAndVerify10, scsi.OpVerify10,
		scsi.OpPreFetch10, scsi.OpSynchronizeCache10, scsi.OpWriteSame10,
		scsi.OpModeSelect10, scsi.OpModeSense10, scsi.OpRead16, scsi.OpCompareAndWrite,
		scsi.OpWrite16, scsi.OpOrWrite16, scsi.OpWriteAndVerify16, scsi.OpVerify16,
		scsi.OpPreFetch16, scsi.OpSynchronizeCache16, scsi.OpWriteSame16,
		scsi.OpReportLUNs, scsi.OpRead12, scsi.OpWrite12, scsi.OpWriteAndVerify12,
		scsi.OpVerify12, scsi.OpReadDefectData10, scsi.OpReadDefectData12}
	if unmap {
		ops = append(ops, scsi.OpUnmap)
	}
	if atomic {
		ops = append(ops, scsi.OpWriteAtomic16)
	}
	if resv {
		ops = append(ops, scsi.OpReserve6, scsi.OpRelease6, scsi.OpReserve10, scsi.OpRelease10)
	}
	var t scsi.CommandTable
	for _, op := range ops {
		t = appendCommand(t, op, 0)
	}
	if resv {
		for sa := uint16(0); sa <= uint16(scsi.PRInReadFullStatus); sa++ {
			t = appendCommand(t, scsi.OpPersistentReserveIn, sa)
		}
		for sa := uint16(0); sa <= uint16(scsi.PROutRegisterAndMove); sa++ {
			t = appendCommand(t, scsi.OpPersistentReserveOut, sa)
		}
	}
	t = appendCommand(t, scsi.OpExtendedCopy, scsi.SAExtendedCopyLID1)
	t = appendCommand(t, scsi.OpReceiveCopyResults, scsi.SACopyStatus)
	t = appendCommand(t, scsi.OpReceiveCopyResults, scsi.SACopyOperatingParams)
	t = appendCommand(t, scsi.OpSanitize, scsi.SASanitizeOverwrite)
	if blockErase {
		t = appendCommand(t, scsi.OpSanitize, scsi.SASanitizeBlockErase)
	}
	t = appendCommand(t, scsi.OpSanitize, scsi.SASanitizeExitFailureMode)
	t = appendCommand(t, scsi.OpServiceActionIn16, scsi.SAReadCapacity16)
	t = appendCommand(t, scsi.OpServiceActionIn16, scsi.SAGetLBAStatus)
	t = appendCommand(t, scsi.OpMaintenanceIn, scsi.SAReportSupportedOpcodes)
	return appendCommand(t, scsi.OpMaintenanceIn, scsi.SAReportSupportedTMFs)
}

func appendCommand(t scsi.CommandTable, op scsi.Opcode, sa uint16) scsi.CommandTable {
	d, ok := scsi.NewCommandDescriptor(op, sa, true)
	if !ok {
		panic("scsi: command table lists a command the decoder does not know: " + op.String())
	}
	return append(t, d)
}

// mirrorModes copies the mode page bits the I/O path reads into atomics.
//
// Preconditions: modeMu held, or the LU not yet shared.
func (lu *LU) mirrorModes() {
	lu.wce.Store(lu.modes.Caching().WCE)
	ctl := lu.modes.Control()
	lu.dsense.Store(ctl.DSense)
	lu.swp.Store(ctl.SWP)
}

// writeProtected reports whether writes are refused: a read-only export or SWP=1.
func (lu *LU) writeProtected() bool { return lu.cfg.ReadOnly || lu.swp.Load() }

// noteWrite records that a write reaches the bdev: the LU is no longer known to be
// all deallocated. A load, and a store only after a BLOCK ERASE.
func (lu *LU) noteWrite() {
	if lu.erased.Load() {
		lu.erased.Store(false)
	}
}

// modeHeader is what MODE SENSE/SELECT report and check in the header and descriptor.
func (lu *LU) modeHeader() scsi.ModeHeader {
	return scsi.ModeHeader{WriteProtect: lu.writeProtected(), DPOFUA: true, Blocks: lu.blocks,
		BlockSize: lu.blockSize}
}

// LUN is the logical unit number.
func (lu *LU) LUN() uint16 { return lu.lun }

// Bdev is the exported volume.
func (lu *LU) Bdev() *bdev.Bdev { return lu.bdev }

// BlockSize is the logical block length in bytes.
func (lu *LU) BlockSize() uint32 { return lu.blockSize }

// Limits are the Block Limits the LU advertises and enforces.
func (lu *LU) Limits() scsi.BlockLimits { return lu.limits }

// NAA is the 16-byte NAA IEEE Registered Extended designator of VPD 83h.
func (lu *LU) NAA() [16]byte { return lu.naa }

// Serial is the unit serial number of VPD 80h: the NGUID in hex.
func (lu *LU) Serial() string { return lu.serial }

// Prepare is the package's Prepare with this LU's block size.
func (lu *LU) Prepare(t *Task) (scsi.Direction, uint64) {
	return Prepare(t.cdbBytes(), lu.blockSize)
}

// Channel opens the LU's I/O state on reactor r; its data buffers come from core
// (r's). A reactor may hold several channels of one LU (one per connection, say).
//
// Preconditions: called on r. Postconditions: the caller owes a Put.
func (lu *LU) Channel(r *reactor.Reactor, core *mem.Core) (*Channel, error) {
	if lu.closed.Load() {
		return nil, fmt.Errorf("scsi lun %d: %w", lu.lun, ErrClosed)
	}
	bch, err := lu.bdev.GetChannel(r)
	if err != nil {
		return nil, fmt.Errorf("scsi lun %d: %w", lu.lun, err)
	}
	ch := &Channel{lu: lu, r: r, core: core, bch: bch, resp: make([]byte, 0, 512)}
	lu.mu.Lock()
	// Range locks held now bind this channel's writes too; their release reaches it
	// because it is in chans from here on.
	ch.locks = append(ch.locks, lu.heldLocks...)
	lu.chans = append(lu.chans, ch)
	lu.mu.Unlock()
	return ch, nil
}

// dropChannel forgets a channel that its owner released.
func (lu *LU) dropChannel(ch *Channel) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	for i, c := range lu.chans {
		if c == ch {
			lu.chans = append(lu.chans[:i], lu.chans[i+1:]...)
			return
		}
	}
}

// channels returns a snapshot of the open channels.
func (lu *LU) channels() []*Channel {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	return append([]*Channel(nil), lu.chans...)
}

// Close unexports the LU: it stops serving reservation notices and releases the bdev
// claim. Channels still open keep working until their owners Put them; a closed LU
// opens no new channel. Close is idempotent.
func (lu *LU) Close() error {
	if lu.closed.Swap(true) {
		return nil
	}
	if lu.hub != nil {
		lu.hub.remove(lu)
	}
	lu.bdev.Release(lu.owner)
	return nil
}

// LUInfo describes an LU for the target's RPCs (iscsi_get_target_nodes).
type LUInfo struct {
	LUN          uint16 `json:"lun"`
	BdevName     string `json:"bdev_name"`
	BlockSize    uint32 `json:"block_size"`
	NumBlocks    uint64 `json:"num_blocks"`
	NAA          string `json:"naa"`
	EUI64        string `json:"eui64"`
	Serial       string `json:"serial"`
	ReadOnly     bool   `json:"read_only"`
	WriteCache   bool   `json:"write_cache"`
	Reservations bool   `json:"reservations"`
	Nexuses      int    `json:"nexuses"`
}

// Info describes the LU. Safe from any goroutine.
func (lu *LU) Info() LUInfo {
	lu.mu.Lock()
	n := len(lu.nexuses)
	lu.mu.Unlock()
	return LUInfo{LUN: lu.lun, BdevName: lu.bdev.Name(), BlockSize: lu.blockSize,
		NumBlocks: lu.blocks, NAA: "naa." + hex.EncodeToString(lu.naa[:]),
		EUI64: "eui." + hex.EncodeToString(lu.eui[:]), Serial: lu.serial,
		ReadOnly: lu.writeProtected(), WriteCache: lu.wce.Load(), Reservations: lu.vol != nil,
		Nexuses: n}
}

// port returns the target port a nexus on relative port id came through: the
// configured one, else the first, else a bare one with that id.
func (lu *LU) port(id uint16) TargetPort {
	for _, p := range lu.cfg.Ports {
		if p.RelativeID == id {
			return p
		}
	}
	if len(lu.cfg.Ports) > 0 {
		return lu.cfg.Ports[0]
	}
	return TargetPort{RelativeID: id}
}

// hasPort reports whether REGISTER AND MOVE may name relative port id.
func (lu *LU) hasPort(id uint16) bool {
	if len(lu.cfg.Ports) == 0 {
		return id != 0
	}
	for _, p := range lu.cfg.Ports {
		if p.RelativeID == id {
			return true
		}
	}
	return false
}
