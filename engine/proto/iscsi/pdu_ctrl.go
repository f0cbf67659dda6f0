package iscsi

// The control PDUs: NOP-Out/In, Task Management, Text, Logout, SNACK, Asynchronous
// Message and Reject. Same conventions as pdu_scsi.go: Decode reads a *BHS and checks
// the opcode only; Put writes all 48 bytes with reserved fields zeroed.

// NOPOut is the NOP-Out BHS (RFC 7143 §11.18): a ping from the initiator (ITT not
// 0xffffffff, TTT 0xffffffff) or the answer to a target's NOP-In ping (ITT 0xffffffff,
// TTT echoed).
type NOPOut struct {
	Immediate         bool   // @0 bit 6
	DataSegmentLength uint32 // @5..7: ping data, echoed by the NOP-In
	LUN               LUN    // @8: echoed when answering a NOP-In
	ITT               uint32 // @16
	TTT               uint32 // @20
	CmdSN             uint32 // @24
	ExpStatSN         uint32 // @28
}

// DecodeNOPOut reads a NOP-Out BHS.
func DecodeNOPOut(b *BHS) (NOPOut, error) {
	if b.Opcode() != OpNOPOut {
		return NOPOut{}, ErrOpcode
	}
	return NOPOut{
		Immediate:         b.Immediate(),
		DataSegmentLength: b.DataSegmentLength(),
		LUN:               b.LUN(),
		ITT:               b.ITT(),
		TTT:               be.Uint32(b[20:24]),
		CmdSN:             be.Uint32(b[24:28]),
		ExpStatSN:         be.Uint32(b[28:32]),
	}, nil
}

// Put writes the NOP-Out BHS (byte @1 bit 7 is always 1).
//
// Preconditions: DataSegmentLength < 1<<24.
func (n *NOPOut) Put(b *BHS) {
	b.putHeader(OpNOPOut, n.Immediate, flagF, n.DataSegmentLength)
	copy(b[8:16], n.LUN[:])
	be.PutUint32(b[16:20], n.ITT)
	be.PutUint32(b[20:24], n.TTT)
	be.PutUint32(b[24:28], n.CmdSN)
	be.PutUint32(b[28:32], n.ExpStatSN)
}

// NOPIn is the NOP-In BHS (RFC 7143 §11.19): the answer to a NOP-Out ping (ITT echoed,
// TTT 0xffffffff) or a target ping (ITT 0xffffffff, TTT not 0xffffffff, which the
// initiator answers with a NOP-Out).
type NOPIn struct {
	DataSegmentLength uint32 // @5..7
	LUN               LUN    // @8
	ITT               uint32 // @16
	TTT               uint32 // @20
	StatSN            uint32 // @24
	ExpCmdSN          uint32 // @28
	MaxCmdSN          uint32 // @32
}

// DecodeNOPIn reads a NOP-In BHS.
func DecodeNOPIn(b *BHS) (NOPIn, error) {
	if b.Opcode() != OpNOPIn {
		return NOPIn{}, ErrOpcode
	}
	return NOPIn{
		DataSegmentLength: b.DataSegmentLength(),
		LUN:               b.LUN(),
		ITT:               b.ITT(),
		TTT:               be.Uint32(b[20:24]),
		StatSN:            be.Uint32(b[24:28]),
		ExpCmdSN:          be.Uint32(b[28:32]),
		MaxCmdSN:          be.Uint32(b[32:36]),
	}, nil
}

// Put writes the NOP-In BHS (byte @1 bit 7 is always 1).
//
// Preconditions: DataSegmentLength < 1<<24.
func (n *NOPIn) Put(b *BHS) {
	b.putHeader(OpNOPIn, false, flagF, n.DataSegmentLength)
	copy(b[8:16], n.LUN[:])
	be.PutUint32(b[16:20], n.ITT)
	be.PutUint32(b[20:24], n.TTT)
	be.PutUint32(b[24:28], n.StatSN)
	be.PutUint32(b[28:32], n.ExpCmdSN)
	be.PutUint32(b[32:36], n.MaxCmdSN)
}

// TMFRequest is the Task Management Function Request BHS (RFC 7143 §11.5).
type TMFRequest struct {
	Immediate bool       // @0 bit 6
	Function  TMFunction // @1 bits 6..0
	LUN       LUN        // @8
	ITT       uint32     // @16
	// ReferencedTaskTag (@20) is the ITT of the task to abort for ABORT TASK, else
	// 0xffffffff.
	ReferencedTaskTag uint32
	CmdSN             uint32 // @24
	ExpStatSN         uint32 // @28
	RefCmdSN          uint32 // @32: CmdSN of the task to abort (ABORT TASK)
	ExpDataSN         uint32 // @36: for TASK REASSIGN
}

// DecodeTMFRequest reads a TMF Request BHS.
func DecodeTMFRequest(b *BHS) (TMFRequest, error) {
	if b.Opcode() != OpTMFRequest {
		return TMFRequest{}, ErrOpcode
	}
	return TMFRequest{
		Immediate:         b.Immediate(),
		Function:          TMFunction(b[1] & 0x7f),
		LUN:               b.LUN(),
		ITT:               b.ITT(),
		ReferencedTaskTag: be.Uint32(b[20:24]),
		CmdSN:             be.Uint32(b[24:28]),
		ExpStatSN:         be.Uint32(b[28:32]),
		RefCmdSN:          be.Uint32(b[32:36]),
		ExpDataSN:         be.Uint32(b[36:40]),
	}, nil
}

// Put writes the TMF Request BHS (byte @1 bit 7 is always 1).
//
// Preconditions: Function <= 127.
func (r *TMFRequest) Put(b *BHS) {
	b.putHeader(OpTMFRequest, r.Immediate, flagF|byte(r.Function&0x7f), 0)
	copy(b[8:16], r.LUN[:])
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint32(b[20:24], r.ReferencedTaskTag)
	be.PutUint32(b[24:28], r.CmdSN)
	be.PutUint32(b[28:32], r.ExpStatSN)
	be.PutUint32(b[32:36], r.RefCmdSN)
	be.PutUint32(b[36:40], r.ExpDataSN)
}

// TMFResponse is the Task Management Function Response BHS (RFC 7143 §11.6).
type TMFResponse struct {
	Response TMFResponseCode // @2
	ITT      uint32          // @16
	StatSN   uint32          // @24
	ExpCmdSN uint32          // @28
	MaxCmdSN uint32          // @32
}

// DecodeTMFResponse reads a TMF Response BHS.
func DecodeTMFResponse(b *BHS) (TMFResponse, error) {
	if b.Opcode() != OpTMFResponse {
		return TMFResponse{}, ErrOpcode
	}
	return TMFResponse{
		Response: TMFResponseCode(b[2]),
		ITT:      b.ITT(),
		StatSN:   be.Uint32(b[24:28]),
		ExpCmdSN: be.Uint32(b[28:32]),
		MaxCmdSN: be.Uint32(b[32:36]),
	}, nil
}

// Put writes the TMF Response BHS (byte @1 bit 7 is always 1).
func (r *TMFResponse) Put(b *BHS) {
	b.putHeader(OpTMFResponse, false, flagF, 0)
	b[2] = byte(r.Response)
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint32(b[24:28], r.StatSN)
	be.PutUint32(b[28:32], r.ExpCmdSN)
	be.PutUint32(b[32:36], r.MaxCmdSN)
}

// TextRequest is the Text Request BHS (RFC 7143 §11.10).
type TextRequest struct {
	Immediate bool // @0 bit 6
	Final     bool // @1 bit 7: last request of the text negotiation sequence
	// Continue (@1 bit 6, C) says the key=value text goes on in the next PDU (§11.10.2).
	// F and C are never both set.
	Continue          bool
	DataSegmentLength uint32 // @5..7
	LUN               LUN    // @8
	ITT               uint32 // @16
	// TTT (@20) is 0xffffffff to start a sequence, or the TTT of the Text Response being
	// continued.
	TTT       uint32
	CmdSN     uint32 // @24
	ExpStatSN uint32 // @28
}

// DecodeTextRequest reads a Text Request BHS.
func DecodeTextRequest(b *BHS) (TextRequest, error) {
	if b.Opcode() != OpTextRequest {
		return TextRequest{}, ErrOpcode
	}
	return TextRequest{
		Immediate:         b.Immediate(),
		Final:             b[1]&flagF != 0,
		Continue:          b[1]&flagC != 0,
		DataSegmentLength: b.DataSegmentLength(),
		LUN:               b.LUN(),
		ITT:               b.ITT(),
		TTT:               be.Uint32(b[20:24]),
		CmdSN:             be.Uint32(b[24:28]),
		ExpStatSN:         be.Uint32(b[28:32]),
	}, nil
}

// Put writes the Text Request BHS.
//
// Preconditions: DataSegmentLength < 1<<24.
func (r *TextRequest) Put(b *BHS) {
	flags := bit(r.Final, flagF) | bit(r.Continue, flagC)
	b.putHeader(OpTextRequest, r.Immediate, flags, r.DataSegmentLength)
	copy(b[8:16], r.LUN[:])
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint32(b[20:24], r.TTT)
	be.PutUint32(b[24:28], r.CmdSN)
	be.PutUint32(b[28:32], r.ExpStatSN)
}

// TextResponse is the Text Response BHS (RFC 7143 §11.11).
type TextResponse struct {
	Final bool // @1 bit 7: the target has no more text for this sequence
	// Continue (@1 bit 6, C): the text goes on in the next Text Response, which the
	// initiator fetches with an empty Text Request carrying this TTT.
	Continue          bool
	DataSegmentLength uint32 // @5..7
	LUN               LUN    // @8
	ITT               uint32 // @16
	// TTT (@20) is 0xffffffff with F, and a tag of the target's choosing while more
	// responses follow (§11.11.4).
	TTT      uint32
	StatSN   uint32 // @24
	ExpCmdSN uint32 // @28
	MaxCmdSN uint32 // @32
}

// DecodeTextResponse reads a Text Response BHS.
func DecodeTextResponse(b *BHS) (TextResponse, error) {
	if b.Opcode() != OpTextResponse {
		return TextResponse{}, ErrOpcode
	}
	return TextResponse{
		Final:             b[1]&flagF != 0,
		Continue:          b[1]&flagC != 0,
		DataSegmentLength: b.DataSegmentLength(),
		LUN:               b.LUN(),
		ITT:               b.ITT(),
		TTT:               be.Uint32(b[20:24]),
		StatSN:            be.Uint32(b[24:28]),
		ExpCmdSN:          be.Uint32(b[28:32]),
		MaxCmdSN:          be.Uint32(b[32:36]),
	}, nil
}

// Put writes the Text Response BHS.
//
// Preconditions: DataSegmentLength < 1<<24.
func (r *TextResponse) Put(b *BHS) {
	b.putHeader(OpTextResponse, false, bit(r.Final, flagF)|bit(r.Continue, flagC),
		r.DataSegmentLength)
	copy(b[8:16], r.LUN[:])
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint32(b[20:24], r.TTT)
	be.PutUint32(b[24:28], r.StatSN)
	be.PutUint32(b[28:32], r.ExpCmdSN)
	be.PutUint32(b[32:36], r.MaxCmdSN)
}

// LogoutRequest is the Logout Request BHS (RFC 7143 §11.14).
type LogoutRequest struct {
	Immediate bool         // @0 bit 6
	Reason    LogoutReason // @1 bits 6..0
	ITT       uint32       // @16
	CID       uint16       // @20: the connection to close (reasons 1 and 2)
	CmdSN     uint32       // @24
	ExpStatSN uint32       // @28
}

// DecodeLogoutRequest reads a Logout Request BHS.
func DecodeLogoutRequest(b *BHS) (LogoutRequest, error) {
	if b.Opcode() != OpLogoutRequest {
		return LogoutRequest{}, ErrOpcode
	}
	return LogoutRequest{
		Immediate: b.Immediate(),
		Reason:    LogoutReason(b[1] & 0x7f),
		ITT:       b.ITT(),
		CID:       be.Uint16(b[20:22]),
		CmdSN:     be.Uint32(b[24:28]),
		ExpStatSN: be.Uint32(b[28:32]),
	}, nil
}

// Put writes the Logout Request BHS (byte @1 bit 7 is always 1).
//
// Preconditions: Reason <= 127.
func (r *LogoutRequest) Put(b *BHS) {
	b.putHeader(OpLogoutRequest, r.Immediate, flagF|byte(r.Reason&0x7f), 0)
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint16(b[20:22], r.CID)
	be.PutUint32(b[24:28], r.CmdSN)
	be.PutUint32(b[28:32], r.ExpStatSN)
}

// LogoutResponse is the Logout Response BHS (RFC 7143 §11.15).
type LogoutResponse struct {
	Response    LogoutResponseCode // @2
	ITT         uint32             // @16
	StatSN      uint32             // @24
	ExpCmdSN    uint32             // @28
	MaxCmdSN    uint32             // @32
	Time2Wait   uint16             // @40: seconds before reconnecting (recovery)
	Time2Retain uint16             // @42: seconds the target keeps the tasks
}

// DecodeLogoutResponse reads a Logout Response BHS.
func DecodeLogoutResponse(b *BHS) (LogoutResponse, error) {
	if b.Opcode() != OpLogoutResponse {
		return LogoutResponse{}, ErrOpcode
	}
	return LogoutResponse{
		Response:    LogoutResponseCode(b[2]),
		ITT:         b.ITT(),
		StatSN:      be.Uint32(b[24:28]),
		ExpCmdSN:    be.Uint32(b[28:32]),
		MaxCmdSN:    be.Uint32(b[32:36]),
		Time2Wait:   be.Uint16(b[40:42]),
		Time2Retain: be.Uint16(b[42:44]),
	}, nil
}

// Put writes the Logout Response BHS (byte @1 bit 7 is always 1).
func (r *LogoutResponse) Put(b *BHS) {
	b.putHeader(OpLogoutResponse, false, flagF, 0)
	b[2] = byte(r.Response)
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint32(b[24:28], r.StatSN)
	be.PutUint32(b[28:32], r.ExpCmdSN)
	be.PutUint32(b[32:36], r.MaxCmdSN)
	be.PutUint16(b[40:42], r.Time2Wait)
	be.PutUint16(b[42:44], r.Time2Retain)
}

// SNACKRequest is the SNACK Request BHS (RFC 7143 §11.16). A target running
// ErrorRecoveryLevel 0 answers every SNACK with a Reject.
type SNACKRequest struct {
	Type      SNACKType // @1 bits 3..0
	LUN       LUN       // @8
	ITT       uint32    // @16: the task, or 0xffffffff for Status SNACK
	TTT       uint32    // @20: TTT (DataACK) or SNACK Tag (R-Data), else 0xffffffff
	ExpStatSN uint32    // @28
	BegRun    uint32    // @40: first DataSN/R2TSN/StatSN asked for
	RunLength uint32    // @44: how many, 0 for all from BegRun
}

// DecodeSNACKRequest reads a SNACK Request BHS.
func DecodeSNACKRequest(b *BHS) (SNACKRequest, error) {
	if b.Opcode() != OpSNACKRequest {
		return SNACKRequest{}, ErrOpcode
	}
	return SNACKRequest{
		Type:      SNACKType(b[1] & 0x0f),
		LUN:       b.LUN(),
		ITT:       b.ITT(),
		TTT:       be.Uint32(b[20:24]),
		ExpStatSN: be.Uint32(b[28:32]),
		BegRun:    be.Uint32(b[40:44]),
		RunLength: be.Uint32(b[44:48]),
	}, nil
}

// Put writes the SNACK Request BHS (byte @1 bit 7 is always 1).
//
// Preconditions: Type <= 15.
func (r *SNACKRequest) Put(b *BHS) {
	b.putHeader(OpSNACKRequest, false, flagF|byte(r.Type&0x0f), 0)
	copy(b[8:16], r.LUN[:])
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint32(b[20:24], r.TTT)
	be.PutUint32(b[28:32], r.ExpStatSN)
	be.PutUint32(b[40:44], r.BegRun)
	be.PutUint32(b[44:48], r.RunLength)
}

// AsyncMessage is the Asynchronous Message BHS (RFC 7143 §11.9). ITT @16 is always
// 0xffffffff.
type AsyncMessage struct {
	// DataSegmentLength (@5..7): sense data (2-byte SenseLength prefix) for
	// AsyncSCSIEvent, optionally followed by iSCSI event data.
	DataSegmentLength uint32
	LUN               LUN        // @8: valid for AsyncSCSIEvent
	StatSN            uint32     // @24
	ExpCmdSN          uint32     // @28
	MaxCmdSN          uint32     // @32
	Event             AsyncEvent // @36
	VCode             uint8      // @37: vendor code for AsyncVendorSpecific
	Parameter1        uint16     // @38
	Parameter2        uint16     // @40
	Parameter3        uint16     // @42
}

// DecodeAsyncMessage reads an Asynchronous Message BHS.
func DecodeAsyncMessage(b *BHS) (AsyncMessage, error) {
	if b.Opcode() != OpAsyncMessage {
		return AsyncMessage{}, ErrOpcode
	}
	return AsyncMessage{
		DataSegmentLength: b.DataSegmentLength(),
		LUN:               b.LUN(),
		StatSN:            be.Uint32(b[24:28]),
		ExpCmdSN:          be.Uint32(b[28:32]),
		MaxCmdSN:          be.Uint32(b[32:36]),
		Event:             AsyncEvent(b[36]),
		VCode:             b[37],
		Parameter1:        be.Uint16(b[38:40]),
		Parameter2:        be.Uint16(b[40:42]),
		Parameter3:        be.Uint16(b[42:44]),
	}, nil
}

// Put writes the Asynchronous Message BHS (byte @1 bit 7 is always 1, ITT 0xffffffff).
//
// Preconditions: DataSegmentLength < 1<<24.
func (m *AsyncMessage) Put(b *BHS) {
	b.putHeader(OpAsyncMessage, false, flagF, m.DataSegmentLength)
	copy(b[8:16], m.LUN[:])
	be.PutUint32(b[16:20], ReservedTag)
	be.PutUint32(b[24:28], m.StatSN)
	be.PutUint32(b[28:32], m.ExpCmdSN)
	be.PutUint32(b[32:36], m.MaxCmdSN)
	b[36] = byte(m.Event)
	b[37] = m.VCode
	be.PutUint16(b[38:40], m.Parameter1)
	be.PutUint16(b[40:42], m.Parameter2)
	be.PutUint16(b[42:44], m.Parameter3)
}

// Reject is the Reject BHS (RFC 7143 §11.17). Its data segment is the header of the
// rejected PDU (its BHS, and its AHS and header digest when present, as SPDK and LIO
// send). ITT @16 is always 0xffffffff.
type Reject struct {
	Reason            RejectReason // @2
	DataSegmentLength uint32       // @5..7
	StatSN            uint32       // @24
	ExpCmdSN          uint32       // @28
	MaxCmdSN          uint32       // @32
	// DataSN (@36) is valid only when a Data/R2T SNACK is rejected with reason protocol
	// error: the next DataSN/R2TSN the target would send for the task; 0 otherwise.
	DataSN uint32
}

// DecodeReject reads a Reject BHS.
func DecodeReject(b *BHS) (Reject, error) {
	if b.Opcode() != OpReject {
		return Reject{}, ErrOpcode
	}
	return Reject{
		Reason:            RejectReason(b[2]),
		DataSegmentLength: b.DataSegmentLength(),
		StatSN:            be.Uint32(b[24:28]),
		ExpCmdSN:          be.Uint32(b[28:32]),
		MaxCmdSN:          be.Uint32(b[32:36]),
		DataSN:            be.Uint32(b[36:40]),
	}, nil
}

// Put writes the Reject BHS (byte @1 bit 7 is always 1, ITT 0xffffffff).
//
// Preconditions: DataSegmentLength < 1<<24.
func (r *Reject) Put(b *BHS) {
	b.putHeader(OpReject, false, flagF, r.DataSegmentLength)
	b[2] = byte(r.Reason)
	be.PutUint32(b[16:20], ReservedTag)
	be.PutUint32(b[24:28], r.StatSN)
	be.PutUint32(b[28:32], r.ExpCmdSN)
	be.PutUint32(b[32:36], r.MaxCmdSN)
	be.PutUint32(b[36:40], r.DataSN)
}
