package scsi

// CDB is a decoded command descriptor block: one flat value for every command this
// package knows, so the command layer switches on Opcode (and ServiceAction) and reads
// the fields that command defines. Fields a command does not define stay zero. Values
// are plain data: copy them freely; decoding one allocates nothing.
//
// Reserved and obsolete bits are not kept (SPC-4 §4.4.2 lets a device server ignore
// them), so [CDB.Append] writes them as zero.
type CDB struct {
	Opcode Opcode
	// ServiceAction is the SERVICE ACTION of opcodes that have one (5Eh, 5Fh, 7Fh, 9Eh,
	// A3h; see [Opcode.HasServiceActions]).
	ServiceAction uint16
	// Length is the CDB length in bytes: 6, 10, 12, 16, or 8 + ADDITIONAL CDB LENGTH for
	// the variable-length opcode 7Fh. An iSCSI BHS carries 16 bytes; the rest is padding.
	Length uint8
	// Control is the CONTROL byte (SAM-5 §5.2). NACA=1 is refused by the decoder: this
	// package's targets report NORMACA=0.
	Control uint8

	LBA uint64
	// TransferLength is in logical blocks: TRANSFER LENGTH of READ/WRITE/ORWRITE, VERIFY
	// LENGTH, NUMBER OF LOGICAL BLOCKS of WRITE SAME, COMPARE AND WRITE, SYNCHRONIZE
	// CACHE, and PREFETCH LENGTH. READ(6)/WRITE(6) with 0 decode as 256 (SBC-3 §5.15).
	TransferLength uint32
	// AllocationLength caps data-in commands; the device server truncates its data to
	// it and it is never an error (SPC-4 §4.2.5.6). READ CAPACITY(10) reports 8.
	AllocationLength uint32
	// ParameterListLength is the data-out length of MODE SELECT, UNMAP, PERSISTENT
	// RESERVE OUT and RESERVE/RELEASE(10).
	ParameterListLength uint32

	Protect   uint8 // RDPROTECT, WRPROTECT, VRPROTECT or ORPROTECT: byte 1 bits 7:5
	ByteCheck uint8 // BYTCHK of VERIFY and WRITE AND VERIFY: byte 1 bits 2:1
	Group     uint8 // GROUP NUMBER, bits 4:0
	DPO       bool
	FUA       bool
	Immed     bool // PRE-FETCH, SYNCHRONIZE CACHE, START STOP UNIT
	Unmap     bool // WRITE SAME
	Anchor    bool // WRITE SAME, UNMAP
	NDOB      bool // WRITE SAME(16): no Data-Out buffer, write zeros

	EVPD        bool  // INQUIRY
	PageCode    uint8 // INQUIRY (VPD page), MODE SENSE (bits 5:0)
	PageControl uint8 // MODE SENSE PC: 0 current, 1 changeable, 2 default, 3 saved
	Subpage     uint8 // MODE SENSE
	DBD         bool  // MODE SENSE: no block descriptors
	LLBAA       bool  // MODE SENSE(10): long LBA block descriptors allowed
	PF          bool  // MODE SELECT: page format
	SP          bool  // MODE SELECT: save pages
	Desc        bool  // REQUEST SENSE: descriptor format
	PMI         bool  // READ CAPACITY

	Start                  bool  // START STOP UNIT
	LoEj                   bool  // START STOP UNIT
	NoFlush                bool  // START STOP UNIT
	PowerCondition         uint8 // START STOP UNIT byte 4 bits 7:4
	PowerConditionModifier uint8 // START STOP UNIT byte 3 bits 3:0
	Prevent                uint8 // PREVENT ALLOW MEDIUM REMOVAL bits 1:0

	SelectReport uint8  // REPORT LUNS
	PRScope      uint8  // PERSISTENT RESERVE OUT byte 2 bits 7:4
	PRType       PRType // PERSISTENT RESERVE OUT byte 2 bits 3:0

	RCTD                   bool   // REPORT SUPPORTED OPERATION CODES: timeouts wanted
	ReportingOptions       uint8  // REPORT SUPPORTED OPERATION CODES bits 2:0
	RequestedOpcode        Opcode // REPORT SUPPORTED OPERATION CODES
	RequestedServiceAction uint16 // REPORT SUPPORTED OPERATION CODES
	REPD                   bool   // REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS

	ThirdParty       bool  // RESERVE/RELEASE(10) 3RDPTY
	LongID           bool  // RESERVE/RELEASE(10) LONGID
	ThirdPartyDevice uint8 // RESERVE/RELEASE(10) THIRD-PARTY DEVICE ID

	AUSE bool // SANITIZE: allow unrestricted sanitize exit
	// AtomicBoundary is WRITE ATOMIC(16)'s ATOMIC BOUNDARY @10-11 (SBC-4 §5.48).
	AtomicBoundary uint16

	ListIdentifier uint8 // RECEIVE COPY RESULTS (LID1) @2

	ReqPList               bool   // READ DEFECT DATA: REQ_PLIST
	ReqGList               bool   // READ DEFECT DATA: REQ_GLIST
	DefectListFormat       uint8  // READ DEFECT DATA: DEFECT LIST FORMAT, 3 bits
	AddressDescriptorIndex uint32 // READ DEFECT DATA(12) @2-5
}

// Direction is the way a command's data moves, seen from the initiator.
type Direction uint8

// Data directions.
const (
	DirNone Direction = iota
	DirIn             // device server to application client (iSCSI R bit, Data-In)
	DirOut            // application client to device server (iSCSI W bit, Data-Out)
)

// Byte-1 fields of the block commands, as a set per layout.
const (
	b1Protect      = 1 << iota // bits 7:5 *PROTECT
	b1DPO                      // bit 4
	b1FUA                      // bit 3
	b1ByteCheck                // bits 2:1 BYTCHK, 00b/01b (WRITE AND VERIFY)
	b1ByteCheckVfy             // bits 2:1 BYTCHK, 00b/01b/11b (VERIFY)
	b1Immed                    // bit 1 IMMED
	b1WriteSame                // bit 4 ANCHOR, bit 3 UNMAP, bits 2:1 PBDATA/LBDATA
	b1NDOB                     // bit 0 NDOB

	b1ReadWrite = b1Protect | b1DPO | b1FUA
)

// blockLayout places the fields of a block command (SBC-3 §5): where the LBA, the
// transfer length and the group number sit, and which byte-1 fields it defines.
type blockLayout struct {
	length   uint8
	lbaOff   uint8
	lbaLen   uint8 // 3 (READ/WRITE(6): 21 bits), 4 or 8
	tlOff    uint8
	tlLen    uint8 // 1, 2 or 4
	groupOff uint8 // 0: no GROUP NUMBER
	byte1    uint8
}

// blockLayouts is indexed by opcode; length 0 marks opcodes that are not block commands.
var blockLayouts = [256]blockLayout{
	// SBC-3 table "READ (6) command": LBA byte 1 bits 4:0 and @2-3, TRANSFER LENGTH @4.
	OpRead6:  {length: 6, lbaOff: 1, lbaLen: 3, tlOff: 4, tlLen: 1},
	OpWrite6: {length: 6, lbaOff: 1, lbaLen: 3, tlOff: 4, tlLen: 1},
	// 10-byte: LBA @2-5, GROUP NUMBER @6, TRANSFER LENGTH @7-8.
	OpRead10:             {10, 2, 4, 7, 2, 6, b1ReadWrite},
	OpWrite10:            {10, 2, 4, 7, 2, 6, b1ReadWrite},
	OpWriteAndVerify10:   {10, 2, 4, 7, 2, 6, b1Protect | b1DPO | b1ByteCheck},
	OpVerify10:           {10, 2, 4, 7, 2, 6, b1Protect | b1DPO | b1ByteCheckVfy},
	OpPreFetch10:         {10, 2, 4, 7, 2, 6, b1Immed},
	OpSynchronizeCache10: {10, 2, 4, 7, 2, 6, b1Immed},
	OpWriteSame10:        {10, 2, 4, 7, 2, 6, b1Protect | b1WriteSame},
	// 12-byte: LBA @2-5, TRANSFER LENGTH @6-9, GROUP NUMBER @10.
	OpRead12:           {12, 2, 4, 6, 4, 10, b1ReadWrite},
	OpWrite12:          {12, 2, 4, 6, 4, 10, b1ReadWrite},
	OpWriteAndVerify12: {12, 2, 4, 6, 4, 10, b1Protect | b1DPO | b1ByteCheck},
	OpVerify12:         {12, 2, 4, 6, 4, 10, b1Protect | b1DPO | b1ByteCheckVfy},
	// 16-byte: LBA @2-9, TRANSFER LENGTH @10-13, GROUP NUMBER @14.
	OpRead16:             {16, 2, 8, 10, 4, 14, b1ReadWrite},
	OpWrite16:            {16, 2, 8, 10, 4, 14, b1ReadWrite},
	OpOrWrite16:          {16, 2, 8, 10, 4, 14, b1ReadWrite},
	OpWriteAndVerify16:   {16, 2, 8, 10, 4, 14, b1Protect | b1DPO | b1ByteCheck},
	OpVerify16:           {16, 2, 8, 10, 4, 14, b1Protect | b1DPO | b1ByteCheckVfy},
	OpPreFetch16:         {16, 2, 8, 10, 4, 14, b1Immed},
	OpSynchronizeCache16: {16, 2, 8, 10, 4, 14, b1Immed},
	OpWriteSame16:        {16, 2, 8, 10, 4, 14, b1Protect | b1WriteSame | b1NDOB},
	// SBC-3 table "COMPARE AND WRITE command": NUMBER OF LOGICAL BLOCKS @13.
	OpCompareAndWrite: {16, 2, 8, 13, 1, 14, b1ReadWrite},
	// SBC-4 table "WRITE ATOMIC (16) command": LBA @2-9, ATOMIC BOUNDARY @10-11 (decoded
	// apart), TRANSFER LENGTH @12-13, GROUP NUMBER @14.
	OpWriteAtomic16: {16, 2, 8, 12, 2, 14, b1ReadWrite},
}

// errCDBShort answers a CDB shorter than its operation code requires. An iSCSI BHS
// always carries 16 bytes, so only a variable-length CDB without its AHS gets here.
var errCDBShort = InvalidFieldInCDB(0, -1)

// DecodeCDB decodes a command descriptor block. b may be longer than the CDB (the
// 16-byte iSCSI CDB field); bytes past [CDB.Length] are ignored. On failure it returns
// the zero CDB and a preallocated [*SenseError] to answer with: INVALID COMMAND
// OPERATION CODE for an opcode it does not know, INVALID FIELD IN CDB (with the field
// pointer) for a field no device server may accept. Limits that depend on the logical
// unit (capacity, block limits, protection, ANC_SUP) are checked by limits.go.
func DecodeCDB(b []byte) (CDB, error) {
	if len(b) == 0 {
		return CDB{}, errCDBShort
	}
	op := Opcode(b[0])
	n, err := cdbLength(op, b)
	if err != nil {
		return CDB{}, err
	}
	c := CDB{Opcode: op, Length: uint8(n)}
	ctl := n - 1
	if op == OpVariableLength {
		ctl = 1 // SPC-4 table "Typical variable length CDB": CONTROL @1
	}
	c.Control = b[ctl]
	if c.Control&0x04 != 0 { // NACA: SAM-5 §5.2, refused when NORMACA=0
		return CDB{}, InvalidFieldInCDB(ctl, 2)
	}
	if l := &blockLayouts[op]; l.length != 0 {
		err = decodeBlock(b, &c, l)
	} else {
		err = decodeOther(b, &c)
	}
	if err != nil {
		return CDB{}, err
	}
	return c, nil
}

// cdbLength returns the length of the CDB starting at b, or INVALID COMMAND OPERATION
// CODE for an opcode this package does not decode.
func cdbLength(op Opcode, b []byte) (int, error) {
	n := blockLayouts[op].length
	if n == 0 {
		n = otherLengths[op]
	}
	if n == 0 {
		return 0, ErrInvalidOpcode
	}
	if op == OpVariableLength {
		if len(b) < 8 {
			return 0, errCDBShort
		}
		// SPC-4 §4.2.3: ADDITIONAL CDB LENGTH @7, a multiple of 4 bytes.
		add := int(b[7])
		if add < 2 || add%4 != 0 || 8+add > 255 {
			return 0, InvalidFieldInCDB(7, -1)
		}
		n = uint8(8 + add)
	}
	if len(b) < int(n) {
		return 0, errCDBShort
	}
	return int(n), nil
}

// otherLengths gives the CDB length of the non-block commands DecodeCDB knows.
var otherLengths = [256]uint8{
	OpTestUnitReady: 6, OpRequestSense: 6, OpInquiry: 6, OpModeSelect6: 6, OpReserve6: 6,
	OpRelease6: 6, OpModeSense6: 6, OpStartStopUnit: 6, OpPreventAllowRemoval: 6,
	OpReadCapacity10: 10, OpUnmap: 10, OpModeSelect10: 10, OpReserve10: 10, OpRelease10: 10,
	OpModeSense10: 10, OpPersistentReserveIn: 10, OpPersistentReserveOut: 10,
	OpServiceActionIn16: 16, OpReportLUNs: 12, OpMaintenanceIn: 12,
	OpSanitize: 10, OpReadDefectData10: 10, OpReadDefectData12: 12,
	OpExtendedCopy: 16, OpReceiveCopyResults: 16,
	OpVariableLength: 8, // lower bound; the real length is in the CDB
}

func decodeBlock(b []byte, c *CDB, l *blockLayout) error {
	switch l.lbaLen {
	case 3:
		c.LBA = uint64(b[1]&0x1F)<<16 | uint64(be.Uint16(b[2:4]))
	case 4:
		c.LBA = uint64(be.Uint32(b[l.lbaOff:]))
	default:
		c.LBA = be.Uint64(b[l.lbaOff:])
	}
	switch l.tlLen {
	case 1:
		c.TransferLength = uint32(b[l.tlOff])
		if l.lbaLen == 3 && c.TransferLength == 0 {
			c.TransferLength = 256 // SBC-3 §5.15: 0 means 256 blocks in READ(6)/WRITE(6)
		}
	case 2:
		c.TransferLength = uint32(be.Uint16(b[l.tlOff:]))
	default:
		c.TransferLength = be.Uint32(b[l.tlOff:])
	}
	if l.groupOff != 0 {
		c.Group = b[l.groupOff] & 0x1F
	}
	if c.Opcode == OpWriteAtomic16 {
		c.AtomicBoundary = be.Uint16(b[10:12])
	}
	return decodeByte1(b[1], c, l.byte1)
}

func decodeByte1(x byte, c *CDB, f uint8) error {
	if f&b1Protect != 0 {
		c.Protect = x >> 5
	}
	c.DPO = f&b1DPO != 0 && x&0x10 != 0
	c.FUA = f&b1FUA != 0 && x&0x08 != 0
	c.Immed = f&b1Immed != 0 && x&0x02 != 0
	if f&(b1ByteCheck|b1ByteCheckVfy) != 0 {
		// SBC-3 §5.33: BYTCHK 10b is reserved; 11b (compare every block with one
		// transferred block) exists for VERIFY only (SBC-4 §5.44).
		c.ByteCheck = x >> 1 & 3
		if c.ByteCheck == 2 || c.ByteCheck == 3 && f&b1ByteCheck != 0 {
			return InvalidFieldInCDB(1, 2)
		}
	}
	if f&b1WriteSame != 0 {
		c.Anchor, c.Unmap = x&0x10 != 0, x&0x08 != 0
		// PBDATA/LBDATA are obsolete (SBC-3 §5.41): ignoring them would write data the
		// application client did not ask for, so refuse them as LIO does.
		if x&0x06 != 0 {
			return InvalidFieldInCDB(1, 2)
		}
		// SBC-3 §4.7.3.4: ANCHOR=1 with UNMAP=0 is invalid (libiscsi WriteSame*.Unmap).
		if c.Anchor && !c.Unmap {
			return InvalidFieldInCDB(1, 4)
		}
	}
	c.NDOB = f&b1NDOB != 0 && x&0x01 != 0
	return nil
}

// decodeOther decodes the non-block commands.
func decodeOther(b []byte, c *CDB) error {
	switch c.Opcode {
	case OpTestUnitReady, OpReserve6, OpRelease6, OpVariableLength:
		if c.Opcode == OpVariableLength {
			c.ServiceAction = be.Uint16(b[8:10]) // SPC-4 §4.2.3: SERVICE ACTION @8-9
		}
		return nil
	case OpRequestSense:
		c.Desc, c.AllocationLength = b[1]&0x01 != 0, uint32(b[4])
		return nil
	case OpInquiry:
		return decodeInquiry(b, c)
	case OpModeSense6, OpModeSense10, OpModeSelect6, OpModeSelect10:
		decodeMode(b, c)
		return nil
	case OpStartStopUnit:
		// SBC-3 table "START STOP UNIT command".
		c.Immed = b[1]&0x01 != 0
		c.PowerConditionModifier = b[3] & 0x0F
		c.PowerCondition = b[4] >> 4
		c.NoFlush, c.LoEj, c.Start = b[4]&0x04 != 0, b[4]&0x02 != 0, b[4]&0x01 != 0
		return nil
	case OpPreventAllowRemoval:
		c.Prevent = b[4] & 0x03
		return nil
	case OpReadCapacity10:
		return decodeReadCapacity10(b, c)
	case OpUnmap:
		// SBC-3 table "UNMAP command": ANCHOR @1 bit 0, GROUP @6, LENGTH @7-8.
		c.Anchor, c.Group = b[1]&0x01 != 0, b[6]&0x1F
		c.ParameterListLength = uint32(be.Uint16(b[7:9]))
		return nil
	case OpReserve10, OpRelease10:
		// SPC-2 §7.21: 3RDPTY @1 bit 4, LONGID @1 bit 1, device ID @2, length @7-8.
		c.ThirdParty, c.LongID = b[1]&0x10 != 0, b[1]&0x02 != 0
		c.ThirdPartyDevice = b[2]
		c.ParameterListLength = uint32(be.Uint16(b[7:9]))
		return nil
	case OpPersistentReserveIn, OpPersistentReserveOut:
		return decodePR(b, c)
	case OpServiceActionIn16:
		return decodeServiceActionIn(b, c)
	case OpReportLUNs:
		return decodeReportLUNs(b, c)
	case OpMaintenanceIn:
		return decodeMaintenanceIn(b, c)
	case OpSanitize:
		return decodeSanitize(b, c)
	case OpReadDefectData10, OpReadDefectData12:
		return decodeReadDefectData(b, c)
	case OpExtendedCopy, OpReceiveCopyResults:
		return decodeCopy(b, c)
	}
	panic("scsi: otherLengths lists an opcode decodeOther does not decode")
}

func decodeInquiry(b []byte, c *CDB) error {
	// SPC-4 table "INQUIRY command": EVPD @1 bit 0, CMDDT (obsolete) @1 bit 1, PAGE CODE
	// @2, ALLOCATION LENGTH @3-4.
	c.EVPD, c.PageCode = b[1]&0x01 != 0, b[2]
	c.AllocationLength = uint32(be.Uint16(b[3:5]))
	if b[1]&0x02 != 0 {
		return InvalidFieldInCDB(1, 1) // SPC-3 §6.4.1: CMDDT=1 is no longer supported
	}
	if !c.EVPD && c.PageCode != 0 {
		return InvalidFieldInCDB(2, 7) // libiscsi Inquiry.EVPD
	}
	return nil
}

func decodeMode(b []byte, c *CDB) {
	switch c.Opcode {
	case OpModeSense6, OpModeSense10:
		// SPC-4 tables "MODE SENSE(6)/(10) command": LLBAA @1 bit 4 (10 only), DBD @1
		// bit 3, PC @2 bits 7:6, PAGE CODE @2 bits 5:0, SUBPAGE CODE @3.
		c.DBD = b[1]&0x08 != 0
		c.PageControl, c.PageCode, c.Subpage = b[2]>>6, b[2]&0x3F, b[3]
		if c.Opcode == OpModeSense6 {
			c.AllocationLength = uint32(b[4])
		} else {
			c.LLBAA = b[1]&0x10 != 0
			c.AllocationLength = uint32(be.Uint16(b[7:9]))
		}
	default:
		// SPC-4 tables "MODE SELECT(6)/(10) command": PF @1 bit 4, SP @1 bit 0.
		c.PF, c.SP = b[1]&0x10 != 0, b[1]&0x01 != 0
		if c.Opcode == OpModeSelect6 {
			c.ParameterListLength = uint32(b[4])
		} else {
			c.ParameterListLength = uint32(be.Uint16(b[7:9]))
		}
	}
}

func decodeReadCapacity10(b []byte, c *CDB) error {
	// SBC-3 table "READ CAPACITY (10) command": LBA @2-5, PMI @8 bit 0.
	c.LBA, c.PMI = uint64(be.Uint32(b[2:6])), b[8]&0x01 != 0
	c.AllocationLength = ReadCapacity10Len
	// SBC-2 §5.10: PMI=0 with a non-zero LBA is invalid. SBC-3 made both fields
	// obsolete, but compliance suites still probe it (LIO keeps the check for that).
	if !c.PMI && c.LBA != 0 {
		return InvalidFieldInCDB(2, 7)
	}
	return nil
}

func decodeServiceActionIn(b []byte, c *CDB) error {
	// SBC-3 tables "READ CAPACITY (16)" and "GET LBA STATUS": SERVICE ACTION @1 bits
	// 4:0, LBA @2-9, ALLOCATION LENGTH @10-13, PMI @14 bit 0 (READ CAPACITY only).
	c.ServiceAction = uint16(b[1] & 0x1F)
	switch c.ServiceAction {
	case SAReadCapacity16, SAGetLBAStatus:
	default:
		// libiscsi counts INVALID FIELD IN CDB at byte 1 as "not implemented".
		return InvalidFieldInCDB(1, 4)
	}
	// The LBA and PMI of READ CAPACITY (16) are obsolete (SBC-3 §5.17) and not checked.
	c.LBA = be.Uint64(b[2:10])
	c.AllocationLength = be.Uint32(b[10:14])
	c.PMI = c.ServiceAction == SAReadCapacity16 && b[14]&0x01 != 0
	return nil
}

func decodeReportLUNs(b []byte, c *CDB) error {
	// SPC-4 table "REPORT LUNS command": SELECT REPORT @2, ALLOCATION LENGTH @6-9.
	c.SelectReport = b[2]
	c.AllocationLength = be.Uint32(b[6:10])
	if c.SelectReport > SelectReportAll {
		return InvalidFieldInCDB(2, 7)
	}
	return nil
}

func decodeMaintenanceIn(b []byte, c *CDB) error {
	// SPC-4 §6.35, §6.36, §6.37: SERVICE ACTION @1 bits 4:0, ALLOCATION LENGTH @6-9.
	c.ServiceAction = uint16(b[1] & 0x1F)
	c.AllocationLength = be.Uint32(b[6:10])
	switch c.ServiceAction {
	case SAReportTargetPortGroups:
		return nil
	case SAReportSupportedOpcodes:
		// RCTD @2 bit 7, REPORTING OPTIONS @2 bits 2:0, REQUESTED OPERATION CODE @3,
		// REQUESTED SERVICE ACTION @4-5.
		c.RCTD, c.ReportingOptions = b[2]&0x80 != 0, b[2]&0x07
		c.RequestedOpcode = Opcode(b[3])
		c.RequestedServiceAction = be.Uint16(b[4:6])
		if c.ReportingOptions > RSOCOneCommandOptionalSA {
			return InvalidFieldInCDB(2, 2)
		}
		return nil
	case SAReportSupportedTMFs:
		c.REPD = b[2]&0x80 != 0 // REPD @2 bit 7
		return nil
	}
	return InvalidFieldInCDB(1, 4)
}

// decodeSanitize decodes SANITIZE (SBC-3 table "SANITIZE command"): IMMED @1 bit 7, AUSE
// @1 bit 5, SERVICE ACTION @1 bits 4:0, PARAMETER LIST LENGTH @7-8. SANITIZE destroys
// the volume, so it is the one command whose reserved fields are checked (SPC-4 §4.4.2
// allows it): a CDB carrying a field this decoder does not know (SBC-4's ZNR @1 bit 6,
// anything in bytes 2-6) is refused rather than half understood (libiscsi
// Sanitize.*Reserved). Service actions other than the four SBC-3 defines are INVALID
// FIELD IN CDB (libiscsi Sanitize.InvalidServiceAction); which of those the logical unit
// supports is its decision.
func decodeSanitize(b []byte, c *CDB) error {
	c.ServiceAction = uint16(b[1] & 0x1F)
	c.Immed, c.AUSE = b[1]&0x80 != 0, b[1]&0x20 != 0
	c.ParameterListLength = uint32(be.Uint16(b[7:9]))
	if b[1]&0x40 != 0 {
		return InvalidFieldInCDB(1, 6)
	}
	for i := 2; i <= 6; i++ {
		if b[i] != 0 {
			return InvalidFieldInCDB(i, -1)
		}
	}
	switch c.ServiceAction {
	case SASanitizeOverwrite, SASanitizeBlockErase, SASanitizeCryptoErase,
		SASanitizeExitFailureMode:
		return nil
	}
	return InvalidFieldInCDB(1, 4)
}

// decodeReadDefectData decodes READ DEFECT DATA (10) and (12) (SBC-3 §5.13, §5.14):
// REQ_PLIST bit 4, REQ_GLIST bit 3 and DEFECT LIST FORMAT bits 2:0 @2 of the 10-byte CDB
// and @1 of the 12-byte one, whose ADDRESS DESCRIPTOR INDEX is @2-5; ALLOCATION LENGTH
// @7-8 and @6-9. A reserved DEFECT LIST FORMAT (001b, 010b, 111b) is INVALID FIELD IN CDB.
func decodeReadDefectData(b []byte, c *CDB) error {
	at := 2
	if c.Opcode == OpReadDefectData10 {
		c.AllocationLength = uint32(be.Uint16(b[7:9]))
	} else {
		at = 1
		c.AddressDescriptorIndex = be.Uint32(b[2:6])
		c.AllocationLength = be.Uint32(b[6:10])
	}
	c.ReqPList, c.ReqGList = b[at]&0x10 != 0, b[at]&0x08 != 0
	c.DefectListFormat = b[at] & 0x07
	switch c.DefectListFormat {
	case DefectFormatShortBlock, DefectFormatLongBlock, DefectFormatBytesFromIndex,
		DefectFormatPhysicalSector, DefectFormatVendor:
		return nil
	}
	return InvalidFieldInCDB(at, 2)
}

// decodeCopy decodes EXTENDED COPY(LID1) (SPC-4 §6.4: SERVICE ACTION @1 bits 4:0, 00h,
// PARAMETER LIST LENGTH @10-13) and RECEIVE COPY RESULTS (SPC-4 §6.18: SERVICE ACTION @1,
// LIST IDENTIFIER @2, ALLOCATION LENGTH @10-13, LID1 service actions 00h-04h). The LID4
// forms are INVALID FIELD IN CDB @1.
func decodeCopy(b []byte, c *CDB) error {
	c.ServiceAction = uint16(b[1] & 0x1F)
	if c.Opcode == OpExtendedCopy {
		c.ParameterListLength = be.Uint32(b[10:14])
		if c.ServiceAction != SAExtendedCopyLID1 {
			return InvalidFieldInCDB(1, 4)
		}
		return nil
	}
	c.ListIdentifier = b[2]
	c.AllocationLength = be.Uint32(b[10:14])
	switch c.ServiceAction {
	case SACopyStatus, SACopyReceiveData, SACopyOperatingParams, SACopyFailedSegments:
		return nil
	}
	return InvalidFieldInCDB(1, 4)
}

func decodePR(b []byte, c *CDB) error {
	c.ServiceAction = uint16(b[1] & 0x1F) // SPC-4 §6.13, §6.14: @1 bits 4:0
	if c.Opcode == OpPersistentReserveIn {
		c.AllocationLength = uint32(be.Uint16(b[7:9]))
		if c.ServiceAction > uint16(PRInReadFullStatus) {
			return InvalidFieldInCDB(1, 4) // libiscsi PrinServiceactionRange
		}
		return nil
	}
	c.PRScope, c.PRType = b[2]>>4, PRType(b[2]&0x0F)
	c.ParameterListLength = be.Uint32(b[5:9])
	sa := PROutAction(c.ServiceAction)
	if sa > PROutRegisterAndMove {
		return InvalidFieldInCDB(1, 4)
	}
	if sa.usesType() {
		// SPC-4 §6.15.3: only LU_SCOPE (0h) is defined; TYPE must be a known type.
		if c.PRScope != 0 {
			return InvalidFieldInCDB(2, 7)
		}
		if !c.PRType.Valid() {
			return InvalidFieldInCDB(2, 3)
		}
	}
	return nil
}

// DataLength returns the direction and the number of bytes the CDB asks to move, the
// SCSI counterpart of the iSCSI Expected Data Transfer Length that residual counts are
// taken against (RFC 7143 §11.4.5.2). For data-in commands with an allocation length it
// is an upper bound: the device server sends min(allocation length, data available).
// A command that moves no byte reports DirNone.
func (c *CDB) DataLength(blockSize uint32) (Direction, uint64) {
	blocks := uint64(c.TransferLength) * uint64(blockSize)
	switch c.Opcode {
	case OpRead6, OpRead10, OpRead12, OpRead16:
		return dirOf(DirIn, blocks)
	case OpWrite6, OpWrite10, OpWrite12, OpWrite16, OpOrWrite16, OpWriteAndVerify10,
		OpWriteAndVerify12, OpWriteAndVerify16, OpWriteAtomic16:
		return dirOf(DirOut, blocks)
	case OpVerify10, OpVerify12, OpVerify16:
		switch {
		case c.ByteCheck == 1:
			return dirOf(DirOut, blocks)
		case c.ByteCheck == 3 && c.TransferLength != 0:
			return dirOf(DirOut, uint64(blockSize))
		}
		return DirNone, 0
	case OpWriteSame10, OpWriteSame16:
		if c.NDOB {
			return DirNone, 0
		}
		// One block, even when NUMBER OF LOGICAL BLOCKS is 0 (libiscsi WriteSame*).
		return dirOf(DirOut, uint64(blockSize))
	case OpCompareAndWrite:
		return dirOf(DirOut, 2*blocks) // SBC-3 §5.2: verify data, then write data
	case OpUnmap, OpModeSelect6, OpModeSelect10, OpPersistentReserveOut, OpReserve10,
		OpRelease10, OpSanitize, OpExtendedCopy:
		return dirOf(DirOut, uint64(c.ParameterListLength))
	}
	return dirOf(DirIn, uint64(c.AllocationLength))
}

func dirOf(d Direction, n uint64) (Direction, uint64) {
	if n == 0 {
		return DirNone, 0
	}
	return d, n
}
