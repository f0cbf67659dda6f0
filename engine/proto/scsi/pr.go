package scsi

import "strconv"

// PRType is a persistent reservation TYPE (SPC-4 §6.15.2, table "Persistent reservation
// type codes"). Its numbering differs from NVMe's rtype; see PROTOCOLS.md §2.
type PRType uint8

// Persistent reservation types.
const (
	PRTypeWriteExclusive                 PRType = 0x1
	PRTypeExclusiveAccess                PRType = 0x3
	PRTypeWriteExclusiveRegistrantsOnly  PRType = 0x5
	PRTypeExclusiveAccessRegistrantsOnly PRType = 0x6
	PRTypeWriteExclusiveAllRegistrants   PRType = 0x7
	PRTypeExclusiveAccessAllRegistrants  PRType = 0x8
)

// Valid reports whether t is one of the six defined types.
func (t PRType) Valid() bool {
	switch t {
	case PRTypeWriteExclusive, PRTypeExclusiveAccess, PRTypeWriteExclusiveRegistrantsOnly,
		PRTypeExclusiveAccessRegistrantsOnly, PRTypeWriteExclusiveAllRegistrants,
		PRTypeExclusiveAccessAllRegistrants:
		return true
	}
	return false
}

// AllRegistrants reports the "all registrants" types, whose READ RESERVATION key is zero
// (SPC-4 §6.14.3; libiscsi prin_verify_reserved_as expects 0).
func (t PRType) AllRegistrants() bool {
	return t == PRTypeWriteExclusiveAllRegistrants || t == PRTypeExclusiveAccessAllRegistrants
}

// MaskBit returns t's bit in the REPORT CAPABILITIES PERSISTENT RESERVATION TYPE MASK
// (SPC-4 table "PERSISTENT RESERVATION TYPE MASK field", bytes 4-5 read big-endian):
// WR_EX_AR bit 15, EX_AC_RO 14, WR_EX_RO 13, EX_AC 11, WR_EX 9, EX_AC_AR 0.
func (t PRType) MaskBit() uint16 {
	switch t {
	case PRTypeWriteExclusiveAllRegistrants:
		return 1 << 15
	case PRTypeExclusiveAccessRegistrantsOnly:
		return 1 << 14
	case PRTypeWriteExclusiveRegistrantsOnly:
		return 1 << 13
	case PRTypeExclusiveAccess:
		return 1 << 11
	case PRTypeWriteExclusive:
		return 1 << 9
	case PRTypeExclusiveAccessAllRegistrants:
		return 1 << 0
	}
	return 0
}

var prTypeNames = [9]string{1: "WRITE EXCLUSIVE", 3: "EXCLUSIVE ACCESS",
	5: "WRITE EXCLUSIVE - REGISTRANTS ONLY", 6: "EXCLUSIVE ACCESS - REGISTRANTS ONLY",
	7: "WRITE EXCLUSIVE - ALL REGISTRANTS", 8: "EXCLUSIVE ACCESS - ALL REGISTRANTS"}

// String names the type for logs.
func (t PRType) String() string {
	if t.Valid() {
		return prTypeNames[t]
	}
	return "pr type 0x" + strconv.FormatUint(uint64(t), 16)
}

// PRInAction is a PERSISTENT RESERVE IN service action (SPC-4 table "PERSISTENT RESERVE IN
// service action codes").
type PRInAction uint8

// PERSISTENT RESERVE IN service actions.
const (
	PRInReadKeys           PRInAction = 0x00
	PRInReadReservation    PRInAction = 0x01
	PRInReportCapabilities PRInAction = 0x02
	PRInReadFullStatus     PRInAction = 0x03
)

// PROutAction is a PERSISTENT RESERVE OUT service action (SPC-4 table "PERSISTENT RESERVE
// OUT service action codes"). REPLACE LOST RESERVATION (08h, SPC-5) is not decoded.
type PROutAction uint8

// PERSISTENT RESERVE OUT service actions.
const (
	PROutRegister          PROutAction = 0x00
	PROutReserve           PROutAction = 0x01
	PROutRelease           PROutAction = 0x02
	PROutClear             PROutAction = 0x03
	PROutPreempt           PROutAction = 0x04
	PROutPreemptAndAbort   PROutAction = 0x05
	PROutRegisterAndIgnore PROutAction = 0x06
	PROutRegisterAndMove   PROutAction = 0x07
)

// usesType reports the service actions whose SCOPE and TYPE fields apply (SPC-4 table
// "PERSISTENT RESERVE OUT service actions and valid parameters"); the others ignore them.
func (a PROutAction) usesType() bool {
	switch a {
	case PROutReserve, PROutRelease, PROutPreempt, PROutPreemptAndAbort, PROutRegisterAndMove:
		return true
	}
	return false
}

// Parameter list lengths (SPC-4 §6.15.3, §6.15.4).
const (
	prOutBasicLen  = 24 // basic parameter list without SPEC_I_PT data
	prOutMoveHdr   = 24 // REGISTER AND MOVE header before its TransportID
	prOutSpecIPTAt = 24 // TRANSPORTID PARAMETER DATA LENGTH, when SPEC_I_PT=1
)

// PROutParams is a PERSISTENT RESERVE OUT parameter list. The basic list (SPC-4 table
// "PERSISTENT RESERVE OUT parameter list") serves every service action but REGISTER AND
// MOVE, whose list (table "REGISTER AND MOVE service action parameter list") sets Unreg,
// RelativeTargetPort and exactly one TransportID.
type PROutParams struct {
	ReservationKey   uint64 // @0
	ServiceActionKey uint64 // @8 SERVICE ACTION RESERVATION KEY
	SpecIPT          bool   // @20 bit 3 (basic list)
	AllTgPt          bool   // @20 bit 2 (basic list)
	APTPL            bool   // @20 bit 0 (basic), @17 bit 0 (REGISTER AND MOVE)
	// TransportIDs are the SPEC_I_PT ports (basic list) or the port to move the
	// registration to (REGISTER AND MOVE).
	TransportIDs       []TransportID
	Unreg              bool   // @17 bit 1 (REGISTER AND MOVE)
	RelativeTargetPort uint16 // @18-19 (REGISTER AND MOVE)
}

// DecodePROut parses the parameter list b (exactly PARAMETER LIST LENGTH bytes) of a
// PERSISTENT RESERVE OUT command with service action sa. Errors are the SPC-4 §6.15
// answers: PARAMETER LIST LENGTH ERROR when the length disagrees with the list, INVALID
// FIELD IN PARAMETER LIST (field pointer set) for SPEC_I_PT on a service action other
// than REGISTER and for a malformed TransportID. Whether APTPL, ALL_TG_PT or SPEC_I_PT
// are supported is the command layer's call. On error the value is zero.
func DecodePROut(sa PROutAction, b []byte) (PROutParams, error) {
	if sa == PROutRegisterAndMove {
		return decodePROutMove(b)
	}
	if len(b) < prOutBasicLen {
		return PROutParams{}, ErrParameterListLength
	}
	p := PROutParams{
		ReservationKey: be.Uint64(b[0:8]), ServiceActionKey: be.Uint64(b[8:16]),
		SpecIPT: b[20]&0x08 != 0, AllTgPt: b[20]&0x04 != 0, APTPL: b[20]&0x01 != 0,
	}
	if !p.SpecIPT {
		if len(b) != prOutBasicLen {
			return PROutParams{}, ErrParameterListLength
		}
		return p, nil
	}
	if sa != PROutRegister {
		// SPC-4 §6.15.3: SPEC_I_PT=1 is valid for REGISTER only (REGISTER AND IGNORE
		// EXISTING KEY included in the refusal).
		return PROutParams{}, InvalidFieldInParameterList(20, 3)
	}
	if len(b) < prOutSpecIPTAt+4 {
		return PROutParams{}, ErrParameterListLength
	}
	n := be.Uint32(b[prOutSpecIPTAt:])
	if uint64(len(b)) != prOutSpecIPTAt+4+uint64(n) {
		return PROutParams{}, ErrParameterListLength
	}
	ids, err := decodeTransportIDList(b[prOutSpecIPTAt+4:], prOutSpecIPTAt+4)
	if err != nil {
		return PROutParams{}, err
	}
	p.TransportIDs = ids
	return p, nil
}

// decodeTransportIDList parses back-to-back TransportIDs filling b; base is b's offset
// in the parameter list, for field pointers.
func decodeTransportIDList(b []byte, base int) ([]TransportID, error) {
	var ids []TransportID
	for off := 0; off < len(b); {
		t, n, err := DecodeTransportID(b[off:])
		if err != nil {
			at := off
			if te, ok := err.(*TransportIDError); ok {
				at += te.Offset
			}
			return nil, InvalidFieldInParameterList(base+at, -1)
		}
		ids = append(ids, t)
		off += n
	}
	return ids, nil
}

func decodePROutMove(b []byte) (PROutParams, error) {
	if len(b) < prOutMoveHdr {
		return PROutParams{}, ErrParameterListLength
	}
	p := PROutParams{
		ReservationKey: be.Uint64(b[0:8]), ServiceActionKey: be.Uint64(b[8:16]),
		Unreg: b[17]&0x02 != 0, APTPL: b[17]&0x01 != 0,
		RelativeTargetPort: be.Uint16(b[18:20]),
	}
	n := be.Uint32(b[20:24]) // @20 TRANSPORTID PARAMETER DATA LENGTH
	if uint64(len(b)) < prOutMoveHdr+uint64(n) {
		return PROutParams{}, ErrParameterListLength
	}
	t, used, err := DecodeTransportID(b[prOutMoveHdr : prOutMoveHdr+int(n)])
	if err != nil || used != int(n) {
		return PROutParams{}, InvalidFieldInParameterList(20, -1)
	}
	p.TransportIDs = []TransportID{t}
	return p, nil
}

// Append encodes p as the parameter list of service action sa and appends it to b: the
// inverse of [DecodePROut], for tests and initiators.
func (p *PROutParams) Append(sa PROutAction, b []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, prOutBasicLen)...)
	h := b[start:]
	be.PutUint64(h[0:8], p.ReservationKey)
	be.PutUint64(h[8:16], p.ServiceActionKey)
	if sa == PROutRegisterAndMove {
		h[17] = bit(p.Unreg, 1) | bit(p.APTPL, 0)
		be.PutUint16(h[18:20], p.RelativeTargetPort)
		var t TransportID
		if len(p.TransportIDs) > 0 {
			t = p.TransportIDs[0]
		}
		be.PutUint32(h[20:24], uint32(t.Len()))
		return t.Append(b)
	}
	h[20] = bit(p.SpecIPT, 3) | bit(p.AllTgPt, 2) | bit(p.APTPL, 0)
	if !p.SpecIPT {
		return b
	}
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	for _, t := range p.TransportIDs {
		b = t.Append(b)
	}
	be.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// appendPRInHeader appends PRGENERATION @0 and ADDITIONAL LENGTH @4 (SPC-4 §6.14.2).
func appendPRInHeader(b []byte, generation, additional uint32) []byte {
	b = be.AppendUint32(b, generation)
	return be.AppendUint32(b, additional)
}

// AppendPRInReadKeys appends READ KEYS parameter data (SPC-4 §6.14.2): PRGENERATION, the
// ADDITIONAL LENGTH of the whole key list (never reduced by the allocation length, as
// libiscsi PrinReadKeys.Truncate checks), then one 8-byte key per registered I_T nexus.
func AppendPRInReadKeys(b []byte, generation uint32, keys []uint64) []byte {
	b = appendPRInHeader(b, generation, uint32(8*len(keys)))
	for _, k := range keys {
		b = be.AppendUint64(b, k)
	}
	return b
}

// PRReservation is the persistent reservation READ RESERVATION reports. Key is the
// holder's reservation key, and must be 0 for the all-registrants types (SPC-4 §6.14.3).
type PRReservation struct {
	Key   uint64
	Scope uint8 // 0: LU_SCOPE
	Type  PRType
}

// AppendPRInReadReservation appends READ RESERVATION parameter data (SPC-4 §6.14.3):
// ADDITIONAL LENGTH 0 when r is nil (no reservation), else 16 and the reservation
// descriptor: RESERVATION KEY @8, SCOPE/TYPE @21.
func AppendPRInReadReservation(b []byte, generation uint32, r *PRReservation) []byte {
	if r == nil {
		return appendPRInHeader(b, generation, 0)
	}
	b = appendPRInHeader(b, generation, 16)
	b = be.AppendUint64(b, r.Key)
	return append(b, 0, 0, 0, 0, 0, r.Scope<<4|byte(r.Type)&0x0F, 0, 0)
}

// PRCapabilities is REPORT CAPABILITIES parameter data (SPC-4 §6.14.4, table "REPORT
// CAPABILITIES parameter data").
type PRCapabilities struct {
	RLRC          bool   // @2 bit 7 REPLACE LOST RESERVATION CAPABLE (SPC-5)
	CRH           bool   // @2 bit 4 compatible reservation handling (RESERVE/RELEASE)
	SIPC          bool   // @2 bit 3 SPEC_I_PT capable
	ATPC          bool   // @2 bit 2 ALL_TG_PT capable
	PTPLC         bool   // @2 bit 0 persist through power loss capable
	TMV           bool   // @3 bit 7 TypeMask is valid
	AllowCommands uint8  // @3 bits 6:4 (libiscsi accepts ≤ 5)
	PTPLA         bool   // @3 bit 0 persist through power loss activated
	TypeMask      uint16 // @4-5, built from [PRType.MaskBit]
}

// ReportCapabilitiesLen is the LENGTH of REPORT CAPABILITIES data (SPC-4 §6.14.4).
const ReportCapabilitiesLen = 8

// Append appends the 8-byte REPORT CAPABILITIES parameter data.
func (c *PRCapabilities) Append(b []byte) []byte {
	b = be.AppendUint16(b, ReportCapabilitiesLen) // @0 LENGTH
	b = append(b, bit(c.RLRC, 7)|bit(c.CRH, 4)|bit(c.SIPC, 3)|bit(c.ATPC, 2)|bit(c.PTPLC, 0),
		bit(c.TMV, 7)|(c.AllowCommands&7)<<4|bit(c.PTPLA, 0))
	b = be.AppendUint16(b, c.TypeMask)
	return append(b, 0, 0)
}

// PRFullStatus is one registration in READ FULL STATUS data (SPC-4 §6.14.5, table
// "PERSISTENT RESERVE IN full status descriptor").
type PRFullStatus struct {
	Key                uint64 // @0
	AllTgPt            bool   // @12 bit 1: registered through every target port
	Holder             bool   // @12 bit 0 R_HOLDER
	Scope              uint8  // @13 bits 7:4, meaningful with Holder
	Type               PRType // @13 bits 3:0, meaningful with Holder
	RelativeTargetPort uint16 // @18, meaningful with AllTgPt=0
	TransportID        TransportID
}

// AppendPRInFullStatus appends READ FULL STATUS parameter data: the header, then one
// descriptor per registration with its TransportID (ADDITIONAL DESCRIPTOR LENGTH @20).
func AppendPRInFullStatus(b []byte, generation uint32, regs []PRFullStatus) []byte {
	n := 0
	for i := range regs {
		n += 24 + regs[i].TransportID.Len()
	}
	b = appendPRInHeader(b, generation, uint32(n))
	for i := range regs {
		r := &regs[i]
		b = be.AppendUint64(b, r.Key)
		b = append(b, 0, 0, 0, 0, bit(r.AllTgPt, 1)|bit(r.Holder, 0), 0, 0, 0, 0, 0)
		if r.Holder {
			b[len(b)-5] = r.Scope<<4 | byte(r.Type)&0x0F
		}
		b = be.AppendUint16(b, r.RelativeTargetPort)
		b = be.AppendUint32(b, uint32(r.TransportID.Len()))
		b = r.TransportID.Append(b)
	}
	return b
}
