package scsi

// EXTENDED COPY(LID1) parameter lists and RECEIVE COPY RESULTS data (SPC-4 §6.4, §6.18):
// the block-to-block copies a copy manager inside the target performs between its own
// logical units. Only what such a copy needs is decoded: identification descriptor
// target descriptors (E4h) and block device to block device segment descriptors (02h).

// Descriptor type codes (SPC-4 tables "EXTENDED COPY descriptor type codes").
const (
	XCopySegBlockToBlock   uint8 = 0x02 // block device to block device
	XCopyTgtIdentification uint8 = 0xE4 // identification descriptor target descriptor
)

// LIST ID USAGE values of the parameter list header (SPC-4 table "LIST ID USAGE field").
const (
	XCopyListIDHold    uint8 = 0x0 // hold the status for RECEIVE COPY RESULTS
	XCopyListIDNoHold  uint8 = 0x2 // the list identifier is unique; nothing held
	XCopyListIDNoIdent uint8 = 0x3 // no list identifier (SNLID)
)

// Sizes of the parameter list's parts.
const (
	xcopyHeaderLen    = 16
	xcopyTargetLen    = 32 // E0h-E9h target descriptors
	xcopyTargetLenIP  = 64 // EAh, EBh
	xcopySegHeaderLen = 4  // type, DC/CAT, DESCRIPTOR LENGTH
	xcopySegB2BLen    = 28
)

// CopyLimits are the copy manager's operating parameters (RECEIVE COPY RESULTS
// OPERATING PARAMETERS) and what DecodeExtendedCopy enforces.
type CopyLimits struct {
	MaxTargetDescriptors    uint16 // @8
	MaxSegmentDescriptors   uint16 // @10
	MaxDescriptorListLength uint32 // @12: target and segment descriptors, in bytes
	MaxSegmentLength        uint32 // @16: bytes one segment may move
	TotalConcurrentCopies   uint16 // @34
}

// XCopyTarget is an identification descriptor target descriptor (SPC-4 §6.4.5.5): the
// logical unit named by a designation descriptor (as VPD 83h reports it) and, for a
// block device, its block length.
type XCopyTarget struct {
	Type           uint8 // E4h
	PeripheralType uint8 // @1 bits 4:0
	// The designation descriptor @4-23: CODE SET @4 bits 3:0, ASSOCIATION @5 bits 5:4,
	// DESIGNATOR TYPE @5 bits 3:0, DESIGNATOR LENGTH @7, the designator @8. Designator
	// aliases the parameter list.
	CodeSet, Association, DesignatorType uint8
	Designator                           []byte
	// BlockLength is the DISK BLOCK LENGTH @29-31 of a block device (PAD @28 bit 2).
	BlockLength uint32
	Pad         bool
}

// XCopySegment is a block device to block device segment descriptor (SPC-4 §6.4.6.5):
// Blocks blocks from SrcLBA of target descriptor Src to DstLBA of Dst.
type XCopySegment struct {
	Type     uint8 // 02h
	DC, CAT  bool  // @1 bits 1, 0
	Src, Dst uint16
	Blocks   uint16
	SrcLBA   uint64
	DstLBA   uint64
}

// XCopyList is an EXTENDED COPY(LID1) parameter list.
type XCopyList struct {
	ListID      uint8 // @0
	STR         bool  // @1 bit 5
	ListIDUsage uint8 // @1 bits 4:3
	Priority    uint8 // @1 bits 2:0
	Targets     []XCopyTarget
	Segments    []XCopySegment
}

// DecodeExtendedCopy decodes an EXTENDED COPY(LID1) parameter list of PARAMETER LIST
// LENGTH bytes against the copy manager's limits, in the order libiscsi's ExtendedCopy
// tests expect:
//   - a list shorter than its header, or than the lengths its header gives, or whose
//     descriptors exceed MAXIMUM DESCRIPTOR LIST LENGTH: PARAMETER LIST LENGTH ERROR;
//   - inline data (none is supported): INVALID FIELD IN PARAMETER LIST @12;
//   - more target or segment descriptors than the limits: TOO MANY TARGET (SEGMENT)
//     DESCRIPTORS;
//   - a target descriptor other than E4h, a segment descriptor other than 02h:
//     UNSUPPORTED TARGET (SEGMENT) DESCRIPTOR TYPE CODE;
//   - a malformed descriptor: INVALID FIELD IN PARAMETER LIST at it.
//
// Which logical units the descriptors name, and whether the blocks exist, is the copy
// manager's to judge. The LU ID TYPE and NUL bits are obsolete in SPC-4 and ignored. It
// allocates the list (control path).
func DecodeExtendedCopy(b []byte, lim *CopyLimits) (XCopyList, error) {
	if len(b) < xcopyHeaderLen {
		return XCopyList{}, ErrParameterListLength
	}
	l := XCopyList{ListID: b[0], STR: b[1]&0x20 != 0, ListIDUsage: b[1] >> 3 & 3,
		Priority: b[1] & 7}
	tgtLen := int(be.Uint16(b[2:4]))
	segLen := uint64(be.Uint32(b[8:12]))
	inline := uint64(be.Uint32(b[12:16]))
	if uint64(tgtLen)+segLen > uint64(lim.MaxDescriptorListLength) ||
		xcopyHeaderLen+uint64(tgtLen)+segLen+inline > uint64(len(b)) {
		return XCopyList{}, ErrParameterListLength
	}
	if inline != 0 {
		return XCopyList{}, InvalidFieldInParameterList(12, -1)
	}
	if l.ListIDUsage == 1 {
		return XCopyList{}, InvalidFieldInParameterList(1, 4) // reserved
	}
	tl := b[xcopyHeaderLen : xcopyHeaderLen+tgtLen]
	sl := b[xcopyHeaderLen+tgtLen : xcopyHeaderLen+tgtLen+int(segLen)]
	var err error
	if l.Targets, err = decodeXCopyTargets(tl, lim); err != nil {
		return XCopyList{}, err
	}
	if l.Segments, err = decodeXCopySegments(sl, xcopyHeaderLen+tgtLen, lim); err != nil {
		return XCopyList{}, err
	}
	return l, nil
}

func decodeXCopyTargets(b []byte, lim *CopyLimits) ([]XCopyTarget, error) {
	var ts []XCopyTarget
	for off := 0; off < len(b); {
		if len(ts) == int(lim.MaxTargetDescriptors) {
			return nil, xcopyError(ASCTooManyTargetDescriptors)
		}
		typ := b[off]
		n := xcopyTargetLen
		if typ == 0xEA || typ == 0xEB {
			n = xcopyTargetLenIP
		}
		switch {
		case typ < 0xE0 || typ > 0xEB:
			return nil, xcopyError(ASCUnsupportedTargetDescriptorType)
		case off+n > len(b):
			return nil, InvalidFieldInParameterList(xcopyHeaderLen+off, -1)
		case typ != XCopyTgtIdentification:
			return nil, xcopyError(ASCUnsupportedTargetDescriptorType)
		}
		d := b[off : off+n]
		dl := int(d[7])
		if dl > 16 { // the designation descriptor has 20 bytes, 4 of them its header
			return nil, InvalidFieldInParameterList(xcopyHeaderLen+off+7, -1)
		}
		ts = append(ts, XCopyTarget{Type: typ, PeripheralType: d[1] & 0x1F,
			CodeSet: d[4] & 0x0F, Association: d[5] >> 4 & 3, DesignatorType: d[5] & 0x0F,
			Designator: d[8 : 8+dl], Pad: d[28]&0x04 != 0,
			BlockLength: uint32(d[29])<<16 | uint32(d[30])<<8 | uint32(d[31])})
		off += n
	}
	return ts, nil
}

func decodeXCopySegments(b []byte, at int, lim *CopyLimits) ([]XCopySegment, error) {
	var ss []XCopySegment
	for off := 0; off < len(b); {
		if len(ss) == int(lim.MaxSegmentDescriptors) {
			return nil, xcopyError(ASCTooManySegmentDescriptors)
		}
		if off+xcopySegHeaderLen > len(b) {
			return nil, InvalidFieldInParameterList(at+off, -1)
		}
		d := b[off:]
		n := xcopySegHeaderLen + int(be.Uint16(d[2:4]))
		switch {
		case d[0] != XCopySegBlockToBlock:
			return nil, xcopyError(ASCUnsupportedSegmentDescriptorType)
		case n != xcopySegB2BLen || off+n > len(b):
			return nil, InvalidFieldInParameterList(at+off+2, -1)
		}
		ss = append(ss, XCopySegment{Type: d[0], DC: d[1]&0x02 != 0, CAT: d[1]&0x01 != 0,
			Src: be.Uint16(d[4:6]), Dst: be.Uint16(d[6:8]), Blocks: be.Uint16(d[10:12]),
			SrcLBA: be.Uint64(d[12:20]), DstLBA: be.Uint64(d[20:28])})
		off += n
	}
	return ss, nil
}

// xcopyError is ILLEGAL REQUEST with code, for the descriptor errors SPC-4 names.
func xcopyError(code SenseCode) *SenseError {
	return NewSenseError(SenseKeyIllegalRequest, code, SenseSpecific{})
}

// Append encodes the list (tests, and a Go initiator).
func (l *XCopyList) Append(b []byte) []byte {
	start := len(b)
	b = append(b, l.ListID, bit(l.STR, 5)|(l.ListIDUsage&3)<<3|l.Priority&7, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	for _, t := range l.Targets {
		d := make([]byte, xcopyTargetLen)
		d[0], d[1] = t.Type, t.PeripheralType&0x1F
		d[4], d[5], d[7] = t.CodeSet&0x0F, (t.Association&3)<<4|t.DesignatorType&0x0F, byte(len(t.Designator))
		copy(d[8:24], t.Designator)
		d[28] = bit(t.Pad, 2)
		d[29], d[30], d[31] = byte(t.BlockLength>>16), byte(t.BlockLength>>8), byte(t.BlockLength)
		b = append(b, d...)
	}
	be.PutUint16(b[start+2:], uint16(len(b)-start-xcopyHeaderLen))
	segStart := len(b)
	for _, s := range l.Segments {
		b = append(b, s.Type, bit(s.DC, 1)|bit(s.CAT, 0))
		b = be.AppendUint16(b, xcopySegB2BLen-xcopySegHeaderLen)
		b = be.AppendUint16(b, s.Src)
		b = be.AppendUint16(b, s.Dst)
		b = append(b, 0, 0)
		b = be.AppendUint16(b, s.Blocks)
		b = be.AppendUint64(b, s.SrcLBA)
		b = be.AppendUint64(b, s.DstLBA)
	}
	be.PutUint32(b[start+8:], uint32(len(b)-segStart))
	return b
}

// AppendCopyOperatingParameters appends RECEIVE COPY RESULTS OPERATING PARAMETERS data
// (SPC-4 §6.18.4): AVAILABLE DATA @0, SNLID @4 bit 0 (LIST ID USAGE 11b is supported),
// the limits, no inline or held data, MAXIMUM CONCURRENT COPIES @36, and the implemented
// descriptor type codes from @44.
func AppendCopyOperatingParameters(b []byte, lim *CopyLimits) []byte {
	start := len(b)
	b = append(b, make([]byte, 44)...)
	v := b[start:]
	v[4] = 0x01
	be.PutUint16(v[8:], lim.MaxTargetDescriptors)
	be.PutUint16(v[10:], lim.MaxSegmentDescriptors)
	be.PutUint32(v[12:], lim.MaxDescriptorListLength)
	be.PutUint32(v[16:], lim.MaxSegmentLength)
	be.PutUint16(v[34:], lim.TotalConcurrentCopies)
	v[36] = byte(min(lim.TotalConcurrentCopies, 0xFF))
	v[43] = 2
	b = append(b, XCopySegBlockToBlock, XCopyTgtIdentification)
	be.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// COPY MANAGER STATUS values of COPY STATUS data (SPC-4 table "COPY MANAGER STATUS").
const (
	CopyInProgress     uint8 = 0x00
	CopyCompleted      uint8 = 0x01
	CopyCompletedError uint8 = 0x02
)

// CopyStatus is RECEIVE COPY RESULTS COPY STATUS data (SPC-4 §6.18.2) of one copy.
type CopyStatus struct {
	Status            uint8  // COPY MANAGER STATUS
	SegmentsProcessed uint16 // @5
	Bytes             uint64 // the data moved, reported in the smallest unit that fits
}

// AppendCopyStatus appends COPY STATUS data: AVAILABLE DATA @0 (8), HDD @4 bit 7 (no held
// data), COPY MANAGER STATUS @4 bits 6:0, SEGMENTS PROCESSED @5-6, TRANSFER COUNT UNITS
// @7 (00h bytes, 01h KiB, 02h MiB, ...) and TRANSFER COUNT @8-11.
func AppendCopyStatus(b []byte, s *CopyStatus) []byte {
	units, n := uint8(0), s.Bytes
	for n > 0xFFFFFFFF {
		units, n = units+1, n>>10
	}
	b = be.AppendUint32(b, 8)
	b = append(b, s.Status&0x7F)
	b = be.AppendUint16(b, s.SegmentsProcessed)
	b = append(b, units)
	return be.AppendUint32(b, uint32(n))
}
