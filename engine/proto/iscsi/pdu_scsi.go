package iscsi

// The data-path PDUs: SCSI Command, SCSI Response, Data-In, Data-Out and R2T. Each has
// a Decode function reading a *BHS and a Put method writing all 48 bytes (reserved
// fields zeroed); neither allocates. Decoders check only the opcode: reserved bits are
// ignored on receipt, and field checks that need connection state (sequence numbers,
// tags, lengths against the task) are the caller's.

// CDBLen is the CDB room in the SCSI Command BHS; longer CDBs continue in an Extended CDB
// AHS (RFC 7143 §11.3.5, §11.2.2.3).
const CDBLen = 16

// Byte @1 flag bits.
const (
	flagF   = 0x80 // Final (SCSI Command, Data-In/Out, Text), Transit (Login)
	flagR   = 0x40 // Read (SCSI Command)
	flagW   = 0x20 // Write (SCSI Command)
	flagC   = 0x40 // Continue (Text, Login)
	flagA   = 0x40 // Acknowledge (Data-In)
	flagBiO = 0x10 // o: bidirectional read residual overflow (SCSI Response)
	flagBiU = 0x08 // u: bidirectional read residual underflow (SCSI Response)
	flagO   = 0x04 // O: residual overflow (SCSI Response, Data-In)
	flagU   = 0x02 // U: residual underflow (SCSI Response, Data-In)
	flagS   = 0x01 // S: status (Data-In)
)

// SCSICommand is the SCSI Command BHS (RFC 7143 §11.3).
type SCSICommand struct {
	Immediate bool     // @0 bit 6
	Final     bool     // @1 bit 7: no unsolicited Data-Out follows (§11.3.1)
	Read      bool     // @1 bit 6: data flows target to initiator
	Write     bool     // @1 bit 5: data flows initiator to target
	Attr      TaskAttr // @1 bits 2..0
	// TotalAHSLength (@4, words) counts the Extended CDB and Bidirectional Read Expected
	// Data Transfer Length AHSs that may follow the BHS (§11.3.5).
	TotalAHSLength    uint8
	DataSegmentLength uint32 // @5..7: immediate data
	LUN               LUN    // @8
	ITT               uint32 // @16
	// ExpectedDataTransferLength (@20) is the write length for W, the read length for R
	// and the write length for bidirectional commands (§11.3.4).
	ExpectedDataTransferLength uint32
	CmdSN                      uint32       // @24
	ExpStatSN                  uint32       // @28
	CDB                        [CDBLen]byte // @32..47
}

// DecodeSCSICommand reads a SCSI Command BHS.
func DecodeSCSICommand(b *BHS) (SCSICommand, error) {
	if b.Opcode() != OpSCSICommand {
		return SCSICommand{}, ErrOpcode
	}
	c := SCSICommand{
		Immediate:                  b.Immediate(),
		Final:                      b[1]&flagF != 0,
		Read:                       b[1]&flagR != 0,
		Write:                      b[1]&flagW != 0,
		Attr:                       TaskAttr(b[1] & 0x07),
		TotalAHSLength:             b[4],
		DataSegmentLength:          b.DataSegmentLength(),
		LUN:                        b.LUN(),
		ITT:                        b.ITT(),
		ExpectedDataTransferLength: be.Uint32(b[20:24]),
		CmdSN:                      be.Uint32(b[24:28]),
		ExpStatSN:                  be.Uint32(b[28:32]),
	}
	copy(c.CDB[:], b[32:48])
	return c, nil
}

// Put writes the SCSI Command BHS.
//
// Preconditions: Attr <= 7, DataSegmentLength < 1<<24.
func (c *SCSICommand) Put(b *BHS) {
	flags := bit(c.Final, flagF) | bit(c.Read, flagR) | bit(c.Write, flagW) | byte(c.Attr&7)
	b.putHeader(OpSCSICommand, c.Immediate, flags, c.DataSegmentLength)
	b[4] = c.TotalAHSLength
	copy(b[8:16], c.LUN[:])
	be.PutUint32(b[16:20], c.ITT)
	be.PutUint32(b[20:24], c.ExpectedDataTransferLength)
	be.PutUint32(b[24:28], c.CmdSN)
	be.PutUint32(b[28:32], c.ExpStatSN)
	copy(b[32:48], c.CDB[:])
}

// SCSIResponse is the SCSI Response BHS (RFC 7143 §11.4). Its data segment, when
// present, is a 2-byte SenseLength, the sense data and any response data
// (§11.4.7; see [AppendSenseData]).
type SCSIResponse struct {
	BidiOverflow  bool             // @1 bit 4 (o): bidirectional read residual overflow
	BidiUnderflow bool             // @1 bit 3 (u): bidirectional read residual underflow
	Overflow      bool             // @1 bit 2 (O): residual overflow
	Underflow     bool             // @1 bit 1 (U): residual underflow
	Response      SCSIResponseCode // @2
	Status        uint8            // @3: SCSI status, valid when Response is 0
	// DataSegmentLength (@5..7) is the sense/response data length without padding.
	DataSegmentLength uint32
	ITT               uint32 // @16
	SNACKTag          uint32 // @20: 0 unless answering an R-Data SNACK
	StatSN            uint32 // @24
	ExpCmdSN          uint32 // @28
	MaxCmdSN          uint32 // @32
	ExpDataSN         uint32 // @36: Data-In PDUs sent for the command (0 if none)
	// BidiReadResidualCount (@40) is valid when o or u is set.
	BidiReadResidualCount uint32
	// ResidualCount (@44) is valid when O or U is set (§11.4.5).
	ResidualCount uint32
}

// DecodeSCSIResponse reads a SCSI Response BHS.
func DecodeSCSIResponse(b *BHS) (SCSIResponse, error) {
	if b.Opcode() != OpSCSIResponse {
		return SCSIResponse{}, ErrOpcode
	}
	return SCSIResponse{
		BidiOverflow:          b[1]&flagBiO != 0,
		BidiUnderflow:         b[1]&flagBiU != 0,
		Overflow:              b[1]&flagO != 0,
		Underflow:             b[1]&flagU != 0,
		Response:              SCSIResponseCode(b[2]),
		Status:                b[3],
		DataSegmentLength:     b.DataSegmentLength(),
		ITT:                   b.ITT(),
		SNACKTag:              be.Uint32(b[20:24]),
		StatSN:                be.Uint32(b[24:28]),
		ExpCmdSN:              be.Uint32(b[28:32]),
		MaxCmdSN:              be.Uint32(b[32:36]),
		ExpDataSN:             be.Uint32(b[36:40]),
		BidiReadResidualCount: be.Uint32(b[40:44]),
		ResidualCount:         be.Uint32(b[44:48]),
	}, nil
}

// Put writes the SCSI Response BHS (byte @1 bit 7 is always 1).
//
// Preconditions: DataSegmentLength < 1<<24.
func (r *SCSIResponse) Put(b *BHS) {
	flags := flagF | bit(r.BidiOverflow, flagBiO) | bit(r.BidiUnderflow, flagBiU) |
		bit(r.Overflow, flagO) | bit(r.Underflow, flagU)
	b.putHeader(OpSCSIResponse, false, flags, r.DataSegmentLength)
	b[2] = byte(r.Response)
	b[3] = r.Status
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint32(b[20:24], r.SNACKTag)
	be.PutUint32(b[24:28], r.StatSN)
	be.PutUint32(b[28:32], r.ExpCmdSN)
	be.PutUint32(b[32:36], r.MaxCmdSN)
	be.PutUint32(b[36:40], r.ExpDataSN)
	be.PutUint32(b[40:44], r.BidiReadResidualCount)
	be.PutUint32(b[44:48], r.ResidualCount)
}

// SetResidual sets Overflow/Underflow and ResidualCount from the command's expected
// data transfer length and the bytes the command actually transferred (RFC 7143
// §11.4.5: underflow when the target moved less than expected, overflow when the
// command wanted more than the initiator expected; the count is the difference).
// libiscsi's iSCSIResiduals tests exactly this arithmetic.
func (r *SCSIResponse) SetResidual(expected, transferred uint32) {
	r.Overflow, r.Underflow, r.ResidualCount = residual(expected, transferred)
}

func residual(expected, transferred uint32) (over, under bool, count uint32) {
	switch {
	case transferred < expected:
		return false, true, expected - transferred
	case transferred > expected:
		return true, false, transferred - expected
	}
	return false, false, 0
}

// DataIn is the SCSI Data-In BHS (RFC 7143 §11.7).
type DataIn struct {
	Final     bool // @1 bit 7: last PDU of the sequence
	Ack       bool // @1 bit 6 (A): the target wants a DataACK SNACK (ERL >= 1 only)
	Overflow  bool // @1 bit 2 (O), valid with S
	Underflow bool // @1 bit 1 (U), valid with S
	// HasStatus (@1 bit 0, S) folds the SCSI Response into the last Data-In (phase
	// collapse, §11.7): Status, StatSN, the residual bits and ResidualCount are then
	// valid. It requires Final.
	HasStatus         bool
	Status            uint8  // @3: SCSI status, valid with S
	DataSegmentLength uint32 // @5..7
	LUN               LUN    // @8: valid with A
	ITT               uint32 // @16
	TTT               uint32 // @20: valid with A, otherwise 0xffffffff
	StatSN            uint32 // @24: valid with S
	ExpCmdSN          uint32 // @28
	MaxCmdSN          uint32 // @32
	DataSN            uint32 // @36
	BufferOffset      uint32 // @40
	ResidualCount     uint32 // @44: valid with S
}

// DecodeDataIn reads a Data-In BHS.
func DecodeDataIn(b *BHS) (DataIn, error) {
	if b.Opcode() != OpDataIn {
		return DataIn{}, ErrOpcode
	}
	return DataIn{
		Final:             b[1]&flagF != 0,
		Ack:               b[1]&flagA != 0,
		Overflow:          b[1]&flagO != 0,
		Underflow:         b[1]&flagU != 0,
		HasStatus:         b[1]&flagS != 0,
		Status:            b[3],
		DataSegmentLength: b.DataSegmentLength(),
		LUN:               b.LUN(),
		ITT:               b.ITT(),
		TTT:               be.Uint32(b[20:24]),
		StatSN:            be.Uint32(b[24:28]),
		ExpCmdSN:          be.Uint32(b[28:32]),
		MaxCmdSN:          be.Uint32(b[32:36]),
		DataSN:            be.Uint32(b[36:40]),
		BufferOffset:      be.Uint32(b[40:44]),
		ResidualCount:     be.Uint32(b[44:48]),
	}, nil
}

// Put writes the Data-In BHS.
//
// Preconditions: DataSegmentLength < 1<<24.
func (d *DataIn) Put(b *BHS) {
	flags := bit(d.Final, flagF) | bit(d.Ack, flagA) | bit(d.Overflow, flagO) |
		bit(d.Underflow, flagU) | bit(d.HasStatus, flagS)
	b.putHeader(OpDataIn, false, flags, d.DataSegmentLength)
	b[3] = d.Status
	copy(b[8:16], d.LUN[:])
	be.PutUint32(b[16:20], d.ITT)
	be.PutUint32(b[20:24], d.TTT)
	be.PutUint32(b[24:28], d.StatSN)
	be.PutUint32(b[28:32], d.ExpCmdSN)
	be.PutUint32(b[32:36], d.MaxCmdSN)
	be.PutUint32(b[36:40], d.DataSN)
	be.PutUint32(b[40:44], d.BufferOffset)
	be.PutUint32(b[44:48], d.ResidualCount)
}

// SetResidual sets Overflow/Underflow and ResidualCount on a Data-In that carries status
// (see [SCSIResponse.SetResidual]).
func (d *DataIn) SetResidual(expected, transferred uint32) {
	d.Overflow, d.Underflow, d.ResidualCount = residual(expected, transferred)
}

// DataOut is the SCSI Data-Out BHS (RFC 7143 §11.7).
type DataOut struct {
	Final             bool   // @1 bit 7: last PDU of the (solicited or unsolicited) sequence
	DataSegmentLength uint32 // @5..7
	LUN               LUN    // @8: valid when TTT is not 0xffffffff
	ITT               uint32 // @16
	TTT               uint32 // @20: the R2T's tag, 0xffffffff for unsolicited data
	ExpStatSN         uint32 // @28
	DataSN            uint32 // @36: per R2T sequence (or unsolicited sequence), from 0
	BufferOffset      uint32 // @40
}

// DecodeDataOut reads a Data-Out BHS.
func DecodeDataOut(b *BHS) (DataOut, error) {
	if b.Opcode() != OpDataOut {
		return DataOut{}, ErrOpcode
	}
	return DataOut{
		Final:             b[1]&flagF != 0,
		DataSegmentLength: b.DataSegmentLength(),
		LUN:               b.LUN(),
		ITT:               b.ITT(),
		TTT:               be.Uint32(b[20:24]),
		ExpStatSN:         be.Uint32(b[28:32]),
		DataSN:            be.Uint32(b[36:40]),
		BufferOffset:      be.Uint32(b[40:44]),
	}, nil
}

// Put writes the Data-Out BHS.
//
// Preconditions: DataSegmentLength < 1<<24.
func (d *DataOut) Put(b *BHS) {
	b.putHeader(OpDataOut, false, bit(d.Final, flagF), d.DataSegmentLength)
	copy(b[8:16], d.LUN[:])
	be.PutUint32(b[16:20], d.ITT)
	be.PutUint32(b[20:24], d.TTT)
	be.PutUint32(b[28:32], d.ExpStatSN)
	be.PutUint32(b[36:40], d.DataSN)
	be.PutUint32(b[40:44], d.BufferOffset)
}

// R2T is the Ready To Transfer BHS (RFC 7143 §11.8). It carries no data segment.
type R2T struct {
	LUN                       LUN    // @8
	ITT                       uint32 // @16
	TTT                       uint32 // @20: echoed by the Data-Out PDUs that answer
	StatSN                    uint32 // @24
	ExpCmdSN                  uint32 // @28
	MaxCmdSN                  uint32 // @32
	R2TSN                     uint32 // @36: per command, from 0
	BufferOffset              uint32 // @40
	DesiredDataTransferLength uint32 // @44: at most MaxBurstLength, never 0
}

// DecodeR2T reads an R2T BHS.
func DecodeR2T(b *BHS) (R2T, error) {
	if b.Opcode() != OpR2T {
		return R2T{}, ErrOpcode
	}
	return R2T{
		LUN:                       b.LUN(),
		ITT:                       b.ITT(),
		TTT:                       be.Uint32(b[20:24]),
		StatSN:                    be.Uint32(b[24:28]),
		ExpCmdSN:                  be.Uint32(b[28:32]),
		MaxCmdSN:                  be.Uint32(b[32:36]),
		R2TSN:                     be.Uint32(b[36:40]),
		BufferOffset:              be.Uint32(b[40:44]),
		DesiredDataTransferLength: be.Uint32(b[44:48]),
	}, nil
}

// Put writes the R2T BHS (byte @1 bit 7 is always 1, no data segment).
func (r *R2T) Put(b *BHS) {
	b.putHeader(OpR2T, false, flagF, 0)
	copy(b[8:16], r.LUN[:])
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint32(b[20:24], r.TTT)
	be.PutUint32(b[24:28], r.StatSN)
	be.PutUint32(b[28:32], r.ExpCmdSN)
	be.PutUint32(b[32:36], r.MaxCmdSN)
	be.PutUint32(b[36:40], r.R2TSN)
	be.PutUint32(b[40:44], r.BufferOffset)
	be.PutUint32(b[44:48], r.DesiredDataTransferLength)
}

// SenseLengthLen is the size of the SenseLength prefix of a SCSI Response data segment.
const SenseLengthLen = 2

// AppendSenseData appends a SCSI Response data segment carrying sense: the 2-byte
// big-endian SenseLength, then the sense bytes (RFC 7143 §11.4.7.2). Padding to 4 bytes
// is framing, not part of the segment. It allocates only if dst lacks capacity.
//
// Preconditions: len(sense) <= 65535.
func AppendSenseData(dst, sense []byte) []byte {
	if len(sense) > 0xffff {
		panic("iscsi: sense data above 65535 bytes")
	}
	dst = append(dst, byte(len(sense)>>8), byte(len(sense)))
	return append(dst, sense...)
}

var errSenseLength = newPDUError(RejectProtocolError, 5,
	"SenseLength runs past the data segment")

// SplitSenseData splits a SCSI Response data segment into its sense data and the
// response data that follows it (RFC 7143 §11.4.7). An empty segment has neither. Both
// results alias seg.
func SplitSenseData(seg []byte) (sense, response []byte, err error) {
	if len(seg) == 0 {
		return nil, nil, nil
	}
	if len(seg) < SenseLengthLen {
		return nil, nil, errSenseLength
	}
	n := int(be.Uint16(seg[:2]))
	if n > len(seg)-SenseLengthLen {
		return nil, nil, errSenseLength
	}
	return seg[2 : 2+n], seg[2+n:], nil
}
