package nvme

import "errors"

// NVMe reservation commands (NVM §3.2.4..3.2.7 "Reservation Register / Report / Acquire /
// Release", Base §8.19 "Reservations"): the command dword fields, the data structures they
// carry, and the Reservation Report data. The opcodes are NVMReservationRegister (0Dh),
// NVMReservationReport (0Eh), NVMReservationAcquire (11h) and NVMReservationRelease (15h);
// the status codes StatusReservationConflict (SCT 0, 83h) and
// StatusHostIdentifierInconsistentFormat (SCT 0, 18h) are in status.go; the Reservation
// Notification log (80h) is ResvNotifLog in log.go; the Reservation Notification Mask (82h)
// and Reservation Persistence (83h) bits are in features.go; the RESCAP bits of Identify
// Namespace are in identify.go.
//
// The semantics (who may register, acquire, preempt) are not here: they belong to
// engine/reservation, which decides; this file only moves bits.

// Reservation Register Action, CDW10 bits 2:0 (NVM Figure "Reservation Register – Command
// Dword 10").
const (
	RREGARegister   uint8 = 0 // register a reservation key (NRKEY)
	RREGAUnregister uint8 = 1 // unregister the host (CRKEY must match unless IEKEY)
	RREGAReplace    uint8 = 2 // replace the host's key with NRKEY
)

// Change Persist Through Power Loss State, Reservation Register CDW10 bits 31:30. 01b is
// reserved: a controller answers it with Invalid Field in Command.
const (
	CPTPLNoChange uint8 = 0
	CPTPLReserved uint8 = 1
	CPTPLClear    uint8 = 2 // PTPL off: reservations are released on power loss
	CPTPLSet      uint8 = 3 // PTPL on: reservations and registrations persist
)

// Reservation Acquire Action, CDW10 bits 2:0 (NVM Figure "Reservation Acquire – Command
// Dword 10").
const (
	RACQAAcquire         uint8 = 0
	RACQAPreempt         uint8 = 1
	RACQAPreemptAndAbort uint8 = 2
)

// Reservation Release Action, CDW10 bits 2:0 (NVM Figure "Reservation Release – Command
// Dword 10").
const (
	RRELARelease uint8 = 0
	RRELAClear   uint8 = 1
)

// Reservation types, RTYPE (NVM Figure "Reservation Type Encoding"). The numbering is
// NVMe's own: SCSI numbers the same types 1, 3, 5, 6, 7, 8 (engine/reservation maps them).
const (
	RTypeWriteExclusive                 uint8 = 1
	RTypeExclusiveAccess                uint8 = 2
	RTypeWriteExclusiveRegistrantsOnly  uint8 = 3
	RTypeExclusiveAccessRegistrantsOnly uint8 = 4
	RTypeWriteExclusiveAllRegistrants   uint8 = 5
	RTypeExclusiveAccessAllRegistrants  uint8 = 6
)

// RESCAPAll is the Identify Namespace RESCAP (@31) of a namespace that supports every
// reservation type, persistence through power loss and the NVMe 1.3 IEKEY semantics
// (IEKEY=1 on Acquire or Release is Invalid Field), which is what engine/reservation does.
const RESCAPAll = RESCAPPTPL | RESCAPWriteExclusive | RESCAPExclusiveAccess |
	RESCAPWriteExclusiveRegOnly | RESCAPExclusiveAccessRegOnly | RESCAPWriteExclusiveAllReg |
	RESCAPExclusiveAccessAllReg | RESCAPIgnoreExistingKey

const (
	cdw10Action   uint32 = 0x7    // RREGA / RACQA / RRELA, bits 2:0
	cdw10IEKEY    uint32 = 1 << 3 // ignore existing key
	cdw10RTypeOff        = 8      // RTYPE, bits 15:8
	cdw10CPTPLOff        = 30     // CPTPL, bits 31:30
)

// ResvRegister holds the Reservation Register CDW10 fields: RREGA bits 2:0, IEKEY bit 3,
// CPTPL bits 31:30. Other bits are reserved and dropped.
type ResvRegister struct {
	RREGA uint8
	IEKEY bool
	CPTPL uint8
}

// DecodeResvRegister reads the fields from an SQE. Every bit pattern decodes: reserved
// action values are the caller's to reject (Invalid Field).
func DecodeResvRegister(s *SQE) ResvRegister {
	v := s.CDW10()
	return ResvRegister{RREGA: uint8(v & cdw10Action), IEKEY: v&cdw10IEKEY != 0,
		CPTPL: uint8(v >> cdw10CPTPLOff)}
}

// Put writes the fields into CDW10 of s (other dwords untouched).
func (r ResvRegister) Put(s *SQE) {
	s.SetCDW10(uint32(r.RREGA)&cdw10Action | bit32(r.IEKEY, 3) |
		uint32(r.CPTPL&3)<<cdw10CPTPLOff)
}

// ResvAcquire holds the Reservation Acquire CDW10 fields: RACQA bits 2:0, IEKEY bit 3,
// RTYPE bits 15:8.
type ResvAcquire struct {
	RACQA uint8
	IEKEY bool
	RTYPE uint8
}

// DecodeResvAcquire reads the fields from an SQE. Every bit pattern decodes.
func DecodeResvAcquire(s *SQE) ResvAcquire {
	v := s.CDW10()
	return ResvAcquire{RACQA: uint8(v & cdw10Action), IEKEY: v&cdw10IEKEY != 0,
		RTYPE: uint8(v >> cdw10RTypeOff)}
}

// Put writes the fields into CDW10 of s.
func (a ResvAcquire) Put(s *SQE) {
	s.SetCDW10(uint32(a.RACQA)&cdw10Action | bit32(a.IEKEY, 3) |
		uint32(a.RTYPE)<<cdw10RTypeOff)
}

// ResvRelease holds the Reservation Release CDW10 fields: RRELA bits 2:0, IEKEY bit 3,
// RTYPE bits 15:8.
type ResvRelease struct {
	RRELA uint8
	IEKEY bool
	RTYPE uint8
}

// DecodeResvRelease reads the fields from an SQE. Every bit pattern decodes.
func DecodeResvRelease(s *SQE) ResvRelease {
	v := s.CDW10()
	return ResvRelease{RRELA: uint8(v & cdw10Action), IEKEY: v&cdw10IEKEY != 0,
		RTYPE: uint8(v >> cdw10RTypeOff)}
}

// Put writes the fields into CDW10 of s.
func (r ResvRelease) Put(s *SQE) {
	s.SetCDW10(uint32(r.RRELA)&cdw10Action | bit32(r.IEKEY, 3) |
		uint32(r.RTYPE)<<cdw10RTypeOff)
}

// ResvReport holds the Reservation Report fields: CDW10 is NUMD (0's based dwords to
// transfer), CDW11 bit 0 is EDS (extended data structure: 128-bit host identifiers).
// Over fabrics host IDs are 128-bit, so a target answers EDS=0 with Host Identifier
// Inconsistent Format, as SPDK and nvmet do.
type ResvReport struct {
	NUMD uint32
	EDS  bool
}

// DecodeResvReport reads the fields from an SQE. Every bit pattern decodes.
func DecodeResvReport(s *SQE) ResvReport {
	return ResvReport{NUMD: s.CDW10(), EDS: s.CDW11()&1 != 0}
}

// Put writes CDW10 and CDW11 of s.
func (r ResvReport) Put(s *SQE) {
	s.SetCDW10(r.NUMD)
	s.SetCDW11(bit32(r.EDS, 0))
}

// Len returns the transfer length in bytes: (NUMD+1)*4.
func (r ResvReport) Len() uint64 { return (uint64(r.NUMD) + 1) * 4 }

// Sizes of the reservation data structures.
const (
	ResvRegisterDataLen  = 16 // CRKEY u64 @0, NRKEY u64 @8
	ResvAcquireDataLen   = 16 // CRKEY u64 @0, PRKEY u64 @8
	ResvReleaseDataLen   = 8  // CRKEY u64 @0
	ResvStatusLen        = 24 // Reservation Status header
	ResvStatusExtLen     = 64 // Reservation Status Extended header (header + 40 reserved)
	ResvRegistrantLen    = 24 // Registered Controller data structure
	ResvRegistrantExtLen = 64 // Registered Controller Extended data structure
)

// ResvRegisterData is the 16-byte Reservation Register data: CRKEY @0 (current key), NRKEY
// @8 (new key).
type ResvRegisterData struct{ CRKEY, NRKEY uint64 }

// DecodeResvRegisterData reads b[0:16].
func DecodeResvRegisterData(b []byte) (ResvRegisterData, error) {
	if len(b) < ResvRegisterDataLen {
		return ResvRegisterData{}, ErrShortBuffer
	}
	return ResvRegisterData{CRKEY: le.Uint64(b[0:8]), NRKEY: le.Uint64(b[8:16])}, nil
}

// Put writes b[0:16].
//
// Preconditions: len(b) >= 16.
func (d ResvRegisterData) Put(b []byte) {
	_ = b[ResvRegisterDataLen-1]
	le.PutUint64(b[0:8], d.CRKEY)
	le.PutUint64(b[8:16], d.NRKEY)
}

// ResvAcquireData is the 16-byte Reservation Acquire data: CRKEY @0 (current key), PRKEY
// @8 (the key to preempt; reserved for Acquire).
type ResvAcquireData struct{ CRKEY, PRKEY uint64 }

// DecodeResvAcquireData reads b[0:16].
func DecodeResvAcquireData(b []byte) (ResvAcquireData, error) {
	if len(b) < ResvAcquireDataLen {
		return ResvAcquireData{}, ErrShortBuffer
	}
	return ResvAcquireData{CRKEY: le.Uint64(b[0:8]), PRKEY: le.Uint64(b[8:16])}, nil
}

// Put writes b[0:16].
//
// Preconditions: len(b) >= 16.
func (d ResvAcquireData) Put(b []byte) {
	_ = b[ResvAcquireDataLen-1]
	le.PutUint64(b[0:8], d.CRKEY)
	le.PutUint64(b[8:16], d.PRKEY)
}

// ResvReleaseData is the 8-byte Reservation Release data: CRKEY @0.
type ResvReleaseData struct{ CRKEY uint64 }

// DecodeResvReleaseData reads b[0:8].
func DecodeResvReleaseData(b []byte) (ResvReleaseData, error) {
	if len(b) < ResvReleaseDataLen {
		return ResvReleaseData{}, ErrShortBuffer
	}
	return ResvReleaseData{CRKEY: le.Uint64(b[0:8])}, nil
}

// Put writes b[0:8].
//
// Preconditions: len(b) >= 8.
func (d ResvReleaseData) Put(b []byte) {
	_ = b[ResvReleaseDataLen-1]
	le.PutUint64(b[0:8], d.CRKEY)
}

// ResvStatus is the Reservation Status header that starts the Reservation Report data
// (NVM Figure "Reservation Status Data Structure"): GEN u32 @0, RTYPE u8 @4, REGCTL u16 @5
// (number of registrants), PTPLS u8 @9 (persist through power loss state), reserved to
// @23. The extended form (EDS=1) pads the header with 40 reserved bytes to 64.
type ResvStatus struct {
	GEN    uint32
	RTYPE  uint8 // 0: no reservation
	REGCTL uint16
	PTPLS  uint8
}

// MarshalTo writes the 24-byte header; reserved bytes are zeroed.
func (h *ResvStatus) MarshalTo(b *[ResvStatusLen]byte) {
	*b = [ResvStatusLen]byte{}
	le.PutUint32(b[0:], h.GEN)
	b[4] = h.RTYPE
	le.PutUint16(b[5:], h.REGCTL)
	b[9] = h.PTPLS
}

// Unmarshal reads the 24-byte header.
func (h *ResvStatus) Unmarshal(b *[ResvStatusLen]byte) {
	*h = ResvStatus{GEN: le.Uint32(b[0:]), RTYPE: b[4], REGCTL: le.Uint16(b[5:]), PTPLS: b[9]}
}

// ResvRCSTSHolder is the Reservation Status bit of a registrant entry (RCSTS bit 0): the
// host holds the reservation.
const ResvRCSTSHolder uint8 = 1 << 0

// ResvRegistrantExt is a Registered Controller Extended data structure, 64 bytes (NVM
// Figure "Registered Controller Extended Data Structure", SPDK
// spdk_nvme_registered_ctrlr_extended_data): CNTLID u16 @0, RCSTS u8 @2, RKEY u64 @8,
// HOSTID[16] @16, reserved @32..63. A target in the dynamic controller model reports
// CNTLID = CNTLIDDynamic (FFFFh): registrations belong to hosts and outlive controllers.
type ResvRegistrantExt struct {
	CNTLID uint16
	RCSTS  uint8
	RKEY   uint64
	HOSTID [16]byte
}

// MarshalTo writes the entry; reserved bytes are zeroed.
func (r *ResvRegistrantExt) MarshalTo(b *[ResvRegistrantExtLen]byte) {
	*b = [ResvRegistrantExtLen]byte{}
	le.PutUint16(b[0:], r.CNTLID)
	b[2] = r.RCSTS
	le.PutUint64(b[8:], r.RKEY)
	copy(b[16:32], r.HOSTID[:])
}

// Unmarshal reads the entry.
func (r *ResvRegistrantExt) Unmarshal(b *[ResvRegistrantExtLen]byte) {
	*r = ResvRegistrantExt{CNTLID: le.Uint16(b[0:]), RCSTS: b[2], RKEY: le.Uint64(b[8:])}
	copy(r.HOSTID[:], b[16:32])
}

// ResvRegistrant is a Registered Controller data structure, 24 bytes, used when EDS=0
// (64-bit host identifiers; SPDK spdk_nvme_registered_ctrlr_data): CNTLID u16 @0, RCSTS
// u8 @2, HOSTID u64 @8, RKEY u64 @16. A fabrics target never sends it (host IDs are
// 128-bit there); a host-side decoder may meet it from a PCIe-style controller.
type ResvRegistrant struct {
	CNTLID uint16
	RCSTS  uint8
	HOSTID uint64
	RKEY   uint64
}

// MarshalTo writes the entry; reserved bytes are zeroed.
func (r *ResvRegistrant) MarshalTo(b *[ResvRegistrantLen]byte) {
	*b = [ResvRegistrantLen]byte{}
	le.PutUint16(b[0:], r.CNTLID)
	b[2] = r.RCSTS
	le.PutUint64(b[8:], r.HOSTID)
	le.PutUint64(b[16:], r.RKEY)
}

// Unmarshal reads the entry.
func (r *ResvRegistrant) Unmarshal(b *[ResvRegistrantLen]byte) {
	*r = ResvRegistrant{CNTLID: le.Uint16(b[0:]), RCSTS: b[2], HOSTID: le.Uint64(b[8:]),
		RKEY: le.Uint64(b[16:])}
}

// ErrResvStatusTruncated reports Reservation Report data whose REGCTL promises more
// entries than the buffer holds: the host asked for too few dwords and must re-read with
// a larger NUMD.
var ErrResvStatusTruncated = errors.New("nvme: reservation report shorter than regctl entries")

// ResvStatusDataLen returns the size of Reservation Report data with n registrants, extended
// (EDS=1: 64-byte header and entries) or not (24-byte header and entries).
func ResvStatusDataLen(n int, eds bool) int {
	if eds {
		return ResvStatusExtLen + n*ResvRegistrantExtLen
	}
	return ResvStatusLen + n*ResvRegistrantLen
}

// MarshalResvStatusExt writes the extended Reservation Report data: the header with
// REGCTL = len(rs), 40 reserved bytes, then the entries, into b[:ResvStatusDataLen(len(rs),
// true)]. A host that asks for fewer dwords gets a prefix of the result: the target copies
// min(NUMD bytes, length) and REGCTL still counts every registrant, as the spec requires.
func MarshalResvStatusExt(b []byte, h ResvStatus, rs []ResvRegistrantExt) error {
	n := ResvStatusDataLen(len(rs), true)
	if len(b) < n || len(rs) > 0xFFFF {
		return ErrShortBuffer
	}
	clear(b[:ResvStatusExtLen])
	h.REGCTL = uint16(len(rs))
	h.MarshalTo((*[ResvStatusLen]byte)(b))
	for i := range rs {
		off := ResvStatusExtLen + i*ResvRegistrantExtLen
		rs[i].MarshalTo((*[ResvRegistrantExtLen]byte)(b[off : off+ResvRegistrantExtLen]))
	}
	return nil
}

// DecodeResvStatusExt decodes extended Reservation Report data: the header and REGCTL
// entries, all of which b must hold.
func DecodeResvStatusExt(b []byte) (ResvStatus, []ResvRegistrantExt, error) {
	if len(b) < ResvStatusExtLen {
		return ResvStatus{}, nil, ErrShortBuffer
	}
	var h ResvStatus
	h.Unmarshal((*[ResvStatusLen]byte)(b))
	if ResvStatusDataLen(int(h.REGCTL), true) > len(b) {
		return ResvStatus{}, nil, ErrResvStatusTruncated
	}
	rs := make([]ResvRegistrantExt, h.REGCTL)
	for i := range rs {
		off := ResvStatusExtLen + i*ResvRegistrantExtLen
		rs[i].Unmarshal((*[ResvRegistrantExtLen]byte)(b[off : off+ResvRegistrantExtLen]))
	}
	return h, rs, nil
}

// MarshalResvStatus writes the non-extended Reservation Report data (EDS=0): the 24-byte
// header with REGCTL = len(rs), then 24-byte entries.
func MarshalResvStatus(b []byte, h ResvStatus, rs []ResvRegistrant) error {
	n := ResvStatusDataLen(len(rs), false)
	if len(b) < n || len(rs) > 0xFFFF {
		return ErrShortBuffer
	}
	h.REGCTL = uint16(len(rs))
	h.MarshalTo((*[ResvStatusLen]byte)(b))
	for i := range rs {
		off := ResvStatusLen + i*ResvRegistrantLen
		rs[i].MarshalTo((*[ResvRegistrantLen]byte)(b[off : off+ResvRegistrantLen]))
	}
	return nil
}

// DecodeResvStatus decodes non-extended Reservation Report data (EDS=0).
func DecodeResvStatus(b []byte) (ResvStatus, []ResvRegistrant, error) {
	if len(b) < ResvStatusLen {
		return ResvStatus{}, nil, ErrShortBuffer
	}
	var h ResvStatus
	h.Unmarshal((*[ResvStatusLen]byte)(b))
	if ResvStatusDataLen(int(h.REGCTL), false) > len(b) {
		return ResvStatus{}, nil, ErrResvStatusTruncated
	}
	rs := make([]ResvRegistrant, h.REGCTL)
	for i := range rs {
		off := ResvStatusLen + i*ResvRegistrantLen
		rs[i].Unmarshal((*[ResvRegistrantLen]byte)(b[off : off+ResvRegistrantLen]))
	}
	return h, rs, nil
}

// ResvNotifMask is the Reservation Notification Mask feature (FID 82h) value: a set bit
// masks (suppresses) that notice for the namespace. CDW11 bit 1 REGPRE, bit 2 RESREL,
// bit 3 RESPRE; other bits are reserved (nvmet answers them with Invalid Field).
type ResvNotifMask struct {
	RegistrationPreempted bool
	ReservationReleased   bool
	ReservationPreempted  bool
}

// Value encodes the feature.
func (m ResvNotifMask) Value() uint32 {
	var v uint32
	if m.RegistrationPreempted {
		v |= ResvMaskRegistrationPreempted
	}
	if m.ReservationReleased {
		v |= ResvMaskReservationReleased
	}
	if m.ReservationPreempted {
		v |= ResvMaskReservationPreempted
	}
	return v
}

// DecodeResvNotifMask decodes the feature. ok is false when reserved bits are set, which
// a controller answers with Invalid Field in Command.
func DecodeResvNotifMask(v uint32) (m ResvNotifMask, ok bool) {
	const all = ResvMaskRegistrationPreempted | ResvMaskReservationReleased |
		ResvMaskReservationPreempted
	if v&^all != 0 {
		return ResvNotifMask{}, false
	}
	return ResvNotifMask{
		RegistrationPreempted: v&ResvMaskRegistrationPreempted != 0,
		ReservationReleased:   v&ResvMaskReservationReleased != 0,
		ReservationPreempted:  v&ResvMaskReservationPreempted != 0,
	}, true
}

// Masks reports whether the mask suppresses a notice of the given Reservation Notification
// log type (ResvNotifRegistrationPreempt, ResvNotifReservationReleased,
// ResvNotifReservationPreempt). Unknown types are never masked.
func (m ResvNotifMask) Masks(logType uint8) bool {
	switch logType {
	case ResvNotifRegistrationPreempt:
		return m.RegistrationPreempted
	case ResvNotifReservationReleased:
		return m.ReservationReleased
	case ResvNotifReservationPreempt:
		return m.ReservationPreempted
	}
	return false
}

// DecodeResvPersistence decodes the Reservation Persistence feature (FID 83h) value: PTPL
// is bit 0; the other bits are reserved and ignored.
func DecodeResvPersistence(v uint32) (ptpl bool) { return v&ResvPersistencePTPL != 0 }

// ResvPersistence encodes the Reservation Persistence feature value for Set Features CDW11
// and the Get Features completion DW0.
func ResvPersistence(ptpl bool) uint32 { return bit32(ptpl, 0) }
