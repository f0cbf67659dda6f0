package nvme

import "errors"

// GetLogPage holds the Get Log Page command fields (Base §5.16, Figure "Get Log Page –
// Command Dword 10..14"):
//
//	CDW10 bits 7:0   LID     log page identifier
//	CDW10 bits 14:8  LSP     log specific parameter
//	CDW10 bit  15    RAE     retain asynchronous event
//	CDW10 bits 31:16 NUMDL   number of dwords, lower 16 bits (0's based)
//	CDW11 bits 15:0  NUMDU   number of dwords, upper 16 bits
//	CDW11 bits 31:16 LSI     log specific identifier
//	CDW12, CDW13     LPOL/LPOU log page offset, bytes (dword aligned)
//	CDW14 bits 6:0   UUID index; bit 23 OT offset type; bits 31:24 CSI
type GetLogPage struct {
	LID  LogPageID
	LSP  uint8 // 7 bits
	RAE  bool
	NUMD uint32 // NUMDU<<16 | NUMDL, 0's based dwords
	LSI  uint16
	LPO  uint64 // byte offset (an entry index when OT is set)
	UUID uint8  // 7 bits
	OT   bool
	CSI  uint8
}

// DecodeGetLogPage reads the fields from an SQE. Every bit pattern decodes.
func DecodeGetLogPage(s *SQE) GetLogPage {
	cdw10, cdw11, cdw14 := s.CDW10(), s.CDW11(), s.CDW14()
	return GetLogPage{
		LID:  LogPageID(cdw10),
		LSP:  uint8(cdw10>>8) & 0x7F,
		RAE:  cdw10&(1<<15) != 0,
		NUMD: cdw10>>16 | (cdw11&0xFFFF)<<16,
		LSI:  uint16(cdw11 >> 16),
		LPO:  uint64(s.CDW12()) | uint64(s.CDW13())<<32,
		UUID: uint8(cdw14) & 0x7F,
		OT:   cdw14&(1<<23) != 0,
		CSI:  uint8(cdw14 >> 24),
	}
}

// Put writes the fields into CDW10..CDW14 of s (other dwords untouched).
func (g GetLogPage) Put(s *SQE) {
	s.SetCDW10(uint32(g.LID) | uint32(g.LSP&0x7F)<<8 | bit32(g.RAE, 15) | (g.NUMD&0xFFFF)<<16)
	s.SetCDW11(g.NUMD>>16 | uint32(g.LSI)<<16)
	s.SetCDW12(uint32(g.LPO))
	s.SetCDW13(uint32(g.LPO >> 32))
	s.SetCDW14(uint32(g.UUID&0x7F) | bit32(g.OT, 23) | uint32(g.CSI)<<24)
}

// Len returns the transfer length in bytes: (NUMD+1)*4.
func (g GetLogPage) Len() uint64 { return (uint64(g.NUMD) + 1) * 4 }

// NUMDFor returns the 0's based dword count for a transfer of n bytes (n a positive
// multiple of 4).
func NUMDFor(n uint64) uint32 { return uint32(n/4 - 1) }

// Sizes of fixed log pages.
const (
	ErrorLogEntryLen     = 64
	SMARTLogLen          = 512
	FirmwareSlotLogLen   = 512
	CommandEffectsLogLen = 4096
	ResvNotifLogLen      = 64
	DiscoveryLogHdrLen   = 1024
	DiscoveryLogEntryLen = 1024
)

// ErrorLogEntry is one Error Information log entry, LID 01h (Base §5.16.1.2, Figure
// "Error Information Log Entry Data Structure").
type ErrorLogEntry struct {
	ErrorCount uint64 // @0: unique, incrementing; 0 marks an empty entry
	SQID       uint16 // @8
	CID        uint16 // @10
	Status     Status // @12 bits 15:1 (bit 0 is the phase tag)
	Phase      bool   // @12 bit 0
	PEL        uint16 // @14 parameter error location: bits 7:0 byte, bits 10:8 bit
	LBA        uint64 // @16
	NSID       uint32 // @24
	VSIA       uint8  // @28 vendor specific information available
	TRTYPE     uint8  // @29 transport type
	CSI        uint64 // @32 command specific information
	TTSI       uint16 // @40 transport type specific information
}

// MarshalTo writes the entry; reserved bytes are zeroed.
func (e *ErrorLogEntry) MarshalTo(b *[ErrorLogEntryLen]byte) {
	*b = [ErrorLogEntryLen]byte{}
	le.PutUint64(b[0:], e.ErrorCount)
	le.PutUint16(b[8:], e.SQID)
	le.PutUint16(b[10:], e.CID)
	le.PutUint16(b[12:], uint16(e.Status)<<1|uint16(bit32(e.Phase, 0)))
	le.PutUint16(b[14:], e.PEL)
	le.PutUint64(b[16:], e.LBA)
	le.PutUint32(b[24:], e.NSID)
	b[28], b[29] = e.VSIA, e.TRTYPE
	le.PutUint64(b[32:], e.CSI)
	le.PutUint16(b[40:], e.TTSI)
}

// Unmarshal reads the entry.
func (e *ErrorLogEntry) Unmarshal(b *[ErrorLogEntryLen]byte) {
	sf := le.Uint16(b[12:])
	*e = ErrorLogEntry{
		ErrorCount: le.Uint64(b[0:]), SQID: le.Uint16(b[8:]), CID: le.Uint16(b[10:]),
		Status: Status(sf >> 1), Phase: sf&1 != 0, PEL: le.Uint16(b[14:]),
		LBA: le.Uint64(b[16:]), NSID: le.Uint32(b[24:]), VSIA: b[28], TRTYPE: b[29],
		CSI: le.Uint64(b[32:]), TTSI: le.Uint16(b[40:]),
	}
}

// PEL encodes a parameter error location: the byte offset in the SQE and the bit.
func PEL(byteOffset uint8, bit uint8) uint16 { return uint16(byteOffset) | uint16(bit&7)<<8 }

// SMART critical warning bits (@0).
const (
	CriticalSpare          uint8 = 1 << 0
	CriticalTemperature    uint8 = 1 << 1
	CriticalReliability    uint8 = 1 << 2
	CriticalReadOnly       uint8 = 1 << 3
	CriticalVolatileBackup uint8 = 1 << 4
	CriticalPMRReadOnly    uint8 = 1 << 5
)

// SMARTLog is the SMART / Health Information log, LID 02h (Base §5.16.1.3, Figure
// "SMART / Health Information Log Page"). Temperatures are kelvin; the 128-bit counters
// are little-endian. Data units count thousands of 512-byte units, rounded up
// ([DataUnits]).
type SMARTLog struct {
	CriticalWarning         uint8     // @0
	CompositeTemperature    uint16    // @1 kelvin
	AvailableSpare          uint8     // @3 percent
	AvailableSpareThreshold uint8     // @4 percent
	PercentageUsed          uint8     // @5
	EnduranceGroupWarning   uint8     // @6
	DataUnitsRead           Uint128   // @32
	DataUnitsWritten        Uint128   // @48
	HostReadCommands        Uint128   // @64
	HostWriteCommands       Uint128   // @80
	ControllerBusyTime      Uint128   // @96 minutes
	PowerCycles             Uint128   // @112
	PowerOnHours            Uint128   // @128
	UnsafeShutdowns         Uint128   // @144
	MediaErrors             Uint128   // @160
	ErrorLogEntries         Uint128   // @176
	WarningTempTime         uint32    // @192 minutes
	CriticalTempTime        uint32    // @196 minutes
	TemperatureSensors      [8]uint16 // @200 kelvin, 0 = not implemented
	TMT1TransitionCount     uint32    // @216
	TMT2TransitionCount     uint32    // @220
	TMT1TotalTime           uint32    // @224 seconds
	TMT2TotalTime           uint32    // @228 seconds
}

// DataUnits converts a byte count to SMART data units: thousands of 512-byte units,
// rounded up (a value of 1 means 1..512000 bytes).
func DataUnits(bytes uint64) Uint128 {
	units512 := bytes/512 + min(bytes%512, 1)
	return Uint128{Lo: units512/1000 + min(units512%1000, 1)}
}

// KelvinFromCelsius converts a temperature for the SMART log and WCTEMP/CCTEMP.
func KelvinFromCelsius(c int) uint16 { return uint16(c + 273) }

// MarshalTo writes the page; reserved bytes are zeroed.
func (s *SMARTLog) MarshalTo(b *[SMARTLogLen]byte) {
	*b = [SMARTLogLen]byte{}
	b[0] = s.CriticalWarning
	le.PutUint16(b[1:], s.CompositeTemperature)
	b[3], b[4], b[5], b[6] = s.AvailableSpare, s.AvailableSpareThreshold, s.PercentageUsed,
		s.EnduranceGroupWarning
	for i, v := range s.counters() {
		putU128(b[32+16*i:], *v)
	}
	le.PutUint32(b[192:], s.WarningTempTime)
	le.PutUint32(b[196:], s.CriticalTempTime)
	for i, t := range s.TemperatureSensors {
		le.PutUint16(b[200+2*i:], t)
	}
	le.PutUint32(b[216:], s.TMT1TransitionCount)
	le.PutUint32(b[220:], s.TMT2TransitionCount)
	le.PutUint32(b[224:], s.TMT1TotalTime)
	le.PutUint32(b[228:], s.TMT2TotalTime)
}

// Unmarshal reads the page.
func (s *SMARTLog) Unmarshal(b *[SMARTLogLen]byte) {
	*s = SMARTLog{
		CriticalWarning: b[0], CompositeTemperature: le.Uint16(b[1:]),
		AvailableSpare: b[3], AvailableSpareThreshold: b[4], PercentageUsed: b[5],
		EnduranceGroupWarning: b[6],
		WarningTempTime:       le.Uint32(b[192:]), CriticalTempTime: le.Uint32(b[196:]),
		TMT1TransitionCount: le.Uint32(b[216:]), TMT2TransitionCount: le.Uint32(b[220:]),
		TMT1TotalTime: le.Uint32(b[224:]), TMT2TotalTime: le.Uint32(b[228:]),
	}
	for i, v := range s.counters() {
		*v = getU128(b[32+16*i:])
	}
	for i := range s.TemperatureSensors {
		s.TemperatureSensors[i] = le.Uint16(b[200+2*i:])
	}
}

// counters lists the ten 128-bit counters in wire order, from @32 in 16-byte steps.
func (s *SMARTLog) counters() [10]*Uint128 {
	return [10]*Uint128{
		&s.DataUnitsRead, &s.DataUnitsWritten, &s.HostReadCommands, &s.HostWriteCommands,
		&s.ControllerBusyTime, &s.PowerCycles, &s.PowerOnHours, &s.UnsafeShutdowns,
		&s.MediaErrors, &s.ErrorLogEntries,
	}
}

// FirmwareSlotLog is the Firmware Slot Information log, LID 03h (Base §5.16.1.4): AFI
// u8 @0 (bits 2:0 active slot, bits 6:4 slot activated at next reset), FRS1..FRS7 8-byte
// ASCII revisions @8..63.
type FirmwareSlotLog struct {
	AFI uint8
	FRS [7][8]byte
}

// MarshalTo writes the page; reserved bytes are zeroed.
func (f *FirmwareSlotLog) MarshalTo(b *[FirmwareSlotLogLen]byte) {
	*b = [FirmwareSlotLogLen]byte{}
	b[0] = f.AFI
	for i := range f.FRS {
		copy(b[8+8*i:16+8*i], f.FRS[i][:])
	}
}

// Unmarshal reads the page.
func (f *FirmwareSlotLog) Unmarshal(b *[FirmwareSlotLogLen]byte) {
	*f = FirmwareSlotLog{AFI: b[0]}
	for i := range f.FRS {
		copy(f.FRS[i][:], b[8+8*i:16+8*i])
	}
}

// Commands Supported and Effects entry bits (Base §5.16.1.6, Figure "Commands
// Supported and Effects Data Structure").
const (
	EffectCSUPP     uint32 = 1 << 0 // command supported
	EffectLBCC      uint32 = 1 << 1 // logical block content change
	EffectNCC       uint32 = 1 << 2 // namespace capability change
	EffectNIC       uint32 = 1 << 3 // namespace inventory change
	EffectCCC       uint32 = 1 << 4 // controller capability change
	EffectCSEShift         = 16     // bits 18:16 command submission and execution
	EffectCSESameNS uint32 = 1 << EffectCSEShift
	EffectCSEAnyNS  uint32 = 2 << EffectCSEShift
)

// CommandEffectsLog is the Commands Supported and Effects log, LID 05h: ACS[256] u32
// @0 (admin opcodes), IOCS[256] u32 @1024 (I/O opcodes), reserved to 4095.
type CommandEffectsLog struct {
	ACS  [256]uint32
	IOCS [256]uint32
}

// MarshalTo writes the page; reserved bytes are zeroed.
func (c *CommandEffectsLog) MarshalTo(b *[CommandEffectsLogLen]byte) {
	*b = [CommandEffectsLogLen]byte{}
	for i := range 256 {
		le.PutUint32(b[4*i:], c.ACS[i])
		le.PutUint32(b[1024+4*i:], c.IOCS[i])
	}
}

// Unmarshal reads the page.
func (c *CommandEffectsLog) Unmarshal(b *[CommandEffectsLogLen]byte) {
	for i := range 256 {
		c.ACS[i] = le.Uint32(b[4*i:])
		c.IOCS[i] = le.Uint32(b[1024+4*i:])
	}
}

// Reservation Notification log page types, byte @8 (Base Get Log Page, LID 80h, Figure
// "Reservation Notification Log Page").
const (
	ResvNotifEmpty               uint8 = 0
	ResvNotifRegistrationPreempt uint8 = 1
	ResvNotifReservationReleased uint8 = 2
	ResvNotifReservationPreempt  uint8 = 3
)

// ResvNotifLog is the Reservation Notification log, LID 80h (Base Get Log Page, Figure
// "Reservation Notification Log Page"): log page count u64 @0, type u8 @8, number of
// available log pages u8 @9, NSID u32 @12.
type ResvNotifLog struct {
	Count     uint64
	Type      uint8
	Available uint8
	NSID      uint32
}

// MarshalTo writes the page; reserved bytes are zeroed.
func (r *ResvNotifLog) MarshalTo(b *[ResvNotifLogLen]byte) {
	*b = [ResvNotifLogLen]byte{}
	le.PutUint64(b[0:], r.Count)
	b[8], b[9] = r.Type, r.Available
	le.PutUint32(b[12:], r.NSID)
}

// Unmarshal reads the page.
func (r *ResvNotifLog) Unmarshal(b *[ResvNotifLogLen]byte) {
	*r = ResvNotifLog{Count: le.Uint64(b[0:]), Type: b[8], Available: b[9],
		NSID: le.Uint32(b[12:])}
}

// Discovery log values (Fabrics §5.4 / Base §5.16.1.23, Figure "Discovery Log Page
// Entry").
const (
	TRTypeRDMA      uint8 = 1
	TRTypeFC        uint8 = 2
	TRTypeTCP       uint8 = 3
	TRTypeIntraHost uint8 = 254

	AdrFamIPv4      uint8 = 1
	AdrFamIPv6      uint8 = 2
	AdrFamIB        uint8 = 3
	AdrFamFC        uint8 = 4
	AdrFamIntraHost uint8 = 254

	SubTypeReferral         uint8 = 1 // another discovery subsystem
	SubTypeNVMe             uint8 = 2 // an NVM subsystem
	SubTypeCurrentDiscovery uint8 = 3 // the discovery subsystem being read

	TREQSecureNotSpecified uint8 = 0 // bits 1:0
	TREQSecureRequired     uint8 = 1
	TREQSecureNotRequired  uint8 = 2
	TREQDisableSQFlow      uint8 = 1 << 2 // SQ flow control disable supported

	// TCP TSAS byte 0: SECTYPE.
	TCPSecTypeNone  uint8 = 0
	TCPSecTypeTLS12 uint8 = 1
	TCPSecTypeTLS13 uint8 = 2
)

// DiscoveryLogHeader is the first 1024 bytes of the Discovery log, LID 70h: GENCTR u64
// @0, NUMREC u64 @8, RECFMT u16 @16, reserved to 1023. Entries follow from @1024.
type DiscoveryLogHeader struct {
	GENCTR uint64 // generation counter; hosts re-read when it changes
	NUMREC uint64 // number of records
	RECFMT uint16 // record format, 0
}

// MarshalTo writes the header; reserved bytes are zeroed.
func (h *DiscoveryLogHeader) MarshalTo(b *[DiscoveryLogHdrLen]byte) {
	*b = [DiscoveryLogHdrLen]byte{}
	le.PutUint64(b[0:], h.GENCTR)
	le.PutUint64(b[8:], h.NUMREC)
	le.PutUint16(b[16:], h.RECFMT)
}

// Unmarshal reads the header.
func (h *DiscoveryLogHeader) Unmarshal(b *[DiscoveryLogHdrLen]byte) {
	*h = DiscoveryLogHeader{GENCTR: le.Uint64(b[0:]), NUMREC: le.Uint64(b[8:]),
		RECFMT: le.Uint16(b[16:])}
}

// DiscoveryLogEntry is one 1024-byte Discovery log entry: TRTYPE @0, ADRFAM @1,
// SUBTYPE @2, TREQ @3, PORTID u16 @4, CNTLID u16 @6, ASQSZ u16 @8, EFLAGS u16 @10,
// TRSVCID[32] @32, SUBNQN[256] @256, TRADDR[256] @512, TSAS[256] @768. TRSVCID and
// TRADDR are ASCII padded with spaces ([PutASCII]); SUBNQN is NUL-terminated
// ([PutNQN]).
type DiscoveryLogEntry struct {
	TRTYPE  uint8
	ADRFAM  uint8
	SUBTYPE uint8
	TREQ    uint8
	PORTID  uint16
	CNTLID  uint16 // FFFFh: dynamic controller model
	ASQSZ   uint16 // admin max SQ size
	EFLAGS  uint16
	TRSVCID [32]byte
	SUBNQN  [NQNFieldLen]byte
	TRADDR  [256]byte
	TSAS    [256]byte // transport specific; TCP: SECTYPE @0
}

// MarshalTo writes the entry; reserved bytes are zeroed.
func (e *DiscoveryLogEntry) MarshalTo(b *[DiscoveryLogEntryLen]byte) {
	*b = [DiscoveryLogEntryLen]byte{}
	b[0], b[1], b[2], b[3] = e.TRTYPE, e.ADRFAM, e.SUBTYPE, e.TREQ
	le.PutUint16(b[4:], e.PORTID)
	le.PutUint16(b[6:], e.CNTLID)
	le.PutUint16(b[8:], e.ASQSZ)
	le.PutUint16(b[10:], e.EFLAGS)
	copy(b[32:64], e.TRSVCID[:])
	copy(b[256:512], e.SUBNQN[:])
	copy(b[512:768], e.TRADDR[:])
	copy(b[768:1024], e.TSAS[:])
}

// Unmarshal reads the entry.
func (e *DiscoveryLogEntry) Unmarshal(b *[DiscoveryLogEntryLen]byte) {
	*e = DiscoveryLogEntry{TRTYPE: b[0], ADRFAM: b[1], SUBTYPE: b[2], TREQ: b[3],
		PORTID: le.Uint16(b[4:]), CNTLID: le.Uint16(b[6:]), ASQSZ: le.Uint16(b[8:]),
		EFLAGS: le.Uint16(b[10:])}
	copy(e.TRSVCID[:], b[32:64])
	copy(e.SUBNQN[:], b[256:512])
	copy(e.TRADDR[:], b[512:768])
	copy(e.TSAS[:], b[768:1024])
}

// ErrDiscoveryLogTruncated reports a Discovery log whose NUMREC promises more entries
// than the buffer holds.
var ErrDiscoveryLogTruncated = errors.New("nvme: discovery log shorter than numrec entries")

// DiscoveryLogLen returns the size of a Discovery log with n entries.
func DiscoveryLogLen(n int) int { return DiscoveryLogHdrLen + n*DiscoveryLogEntryLen }

// DecodeDiscoveryLog decodes a whole Discovery log: the header and NUMREC entries, all
// of which b must hold (a host reads the header, then the whole page, and re-reads if
// GENCTR moved).
func DecodeDiscoveryLog(b []byte) (DiscoveryLogHeader, []DiscoveryLogEntry, error) {
	if len(b) < DiscoveryLogHdrLen {
		return DiscoveryLogHeader{}, nil, ErrShortBuffer
	}
	var h DiscoveryLogHeader
	h.Unmarshal((*[DiscoveryLogHdrLen]byte)(b))
	if h.NUMREC > uint64((len(b)-DiscoveryLogHdrLen)/DiscoveryLogEntryLen) {
		return DiscoveryLogHeader{}, nil, ErrDiscoveryLogTruncated
	}
	es := make([]DiscoveryLogEntry, h.NUMREC)
	for i := range es {
		off := DiscoveryLogLen(i)
		es[i].Unmarshal((*[DiscoveryLogEntryLen]byte)(b[off : off+DiscoveryLogEntryLen]))
	}
	return h, es, nil
}

// MarshalDiscoveryLog writes the header with NUMREC = len(es), then the entries, into
// b[:DiscoveryLogLen(len(es))]. The target serves Get Log Page offset/length windows
// out of the result.
func MarshalDiscoveryLog(b []byte, genctr uint64, es []DiscoveryLogEntry) error {
	if len(b) < DiscoveryLogLen(len(es)) {
		return ErrShortBuffer
	}
	h := DiscoveryLogHeader{GENCTR: genctr, NUMREC: uint64(len(es))}
	h.MarshalTo((*[DiscoveryLogHdrLen]byte)(b))
	for i := range es {
		off := DiscoveryLogLen(i + 1)
		es[i].MarshalTo((*[DiscoveryLogEntryLen]byte)(b[off-DiscoveryLogEntryLen : off]))
	}
	return nil
}

// AsyncEventType is the Asynchronous Event Type, AER completion DW0 bits 2:0 (Base
// §5.2, Figure "Asynchronous Event Request – Completion Queue Entry Dword 0").
type AsyncEventType uint8

// Asynchronous event types.
const (
	AETypeError      AsyncEventType = 0
	AETypeSMART      AsyncEventType = 1
	AETypeNotice     AsyncEventType = 2
	AETypeImmediate  AsyncEventType = 3
	AETypeOneShot    AsyncEventType = 4
	AETypeIOCmdSet   AsyncEventType = 6
	AETypeVendorSpec AsyncEventType = 7
)

// Asynchronous event information values, DW0 bits 15:8.
const (
	// Notice (type 2).
	AENoticeNSAttributeChanged   uint8 = 0x00
	AENoticeFWActivationStarting uint8 = 0x01
	AENoticeTelemetryLogChanged  uint8 = 0x02
	AENoticeANAChange            uint8 = 0x03
	AENoticeDiscoveryLogChange   uint8 = 0xF0
	// I/O command set specific (type 6).
	AEIOReservationLogAvailable uint8 = 0x00
	AEIOSanitizeCompleted       uint8 = 0x01
)

// AsyncEvent is the DW0 of an Asynchronous Event Request completion: type bits 2:0,
// information bits 15:8, log page identifier bits 23:16.
type AsyncEvent struct {
	Type    AsyncEventType
	Info    uint8
	LogPage LogPageID
}

// Common events.
var (
	// AENNSAttributeChanged: read Changed Namespace List (04h) to clear it.
	AENNSAttributeChanged = AsyncEvent{AETypeNotice, AENoticeNSAttributeChanged, LogChangedNSList}
	// AENANAChange: read the ANA log (0Ch).
	AENANAChange = AsyncEvent{AETypeNotice, AENoticeANAChange, LogANA}
	// AENDiscoveryLogChange: re-read the Discovery log (70h).
	AENDiscoveryLogChange = AsyncEvent{AETypeNotice, AENoticeDiscoveryLogChange, LogDiscovery}
	// AENReservationLogAvailable: read the Reservation Notification log (80h).
	AENReservationLogAvailable = AsyncEvent{AETypeIOCmdSet, AEIOReservationLogAvailable,
		LogReservationNotification}
)

// DW0 encodes the event.
func (e AsyncEvent) DW0() uint32 {
	return uint32(e.Type&7) | uint32(e.Info)<<8 | uint32(e.LogPage)<<16
}

// DecodeAsyncEvent decodes an AER completion DW0.
func DecodeAsyncEvent(dw0 uint32) AsyncEvent {
	return AsyncEvent{Type: AsyncEventType(dw0 & 7), Info: uint8(dw0 >> 8),
		LogPage: LogPageID(dw0 >> 16)}
}
