package iscsi

// Version is the iSCSI protocol version of RFC 7143 (and RFC 3720 "draft20"): 0x00,
// the only one defined. Login Version-max/min/active carry it (§11.12.4, §11.13.1).
const Version uint8 = 0x00

// LoginRequest is the Login Request BHS (RFC 7143 §11.12). Byte @0 always has the I bit
// set: login requests are immediate.
type LoginRequest struct {
	// Transit (@1 bit 7, T): the initiator is ready to move to NSG (§11.12.1).
	Transit bool
	// Continue (@1 bit 6, C): the key=value text goes on in the next Login Request
	// (§11.12.2). T and C are never both set.
	Continue          bool
	CSG               Stage  // @1 bits 3..2: current stage
	NSG               Stage  // @1 bits 1..0: next stage, valid with T
	VersionMax        uint8  // @2
	VersionMin        uint8  // @3
	DataSegmentLength uint32 // @5..7
	ISID              ISID   // @8..13
	// TSIH (@14) is 0 to create a session, or the session's TSIH to add (or reinstate)
	// a connection.
	TSIH      uint16
	ITT       uint32 // @16
	CID       uint16 // @20
	CmdSN     uint32 // @24
	ExpStatSN uint32 // @28: valid when reinstating a connection
}

// DecodeLoginRequest reads a Login Request BHS.
func DecodeLoginRequest(b *BHS) (LoginRequest, error) {
	if b.Opcode() != OpLoginRequest {
		return LoginRequest{}, ErrOpcode
	}
	return LoginRequest{
		Transit:           b[1]&flagF != 0,
		Continue:          b[1]&flagC != 0,
		CSG:               Stage(b[1] >> 2 & 3),
		NSG:               Stage(b[1] & 3),
		VersionMax:        b[2],
		VersionMin:        b[3],
		DataSegmentLength: b.DataSegmentLength(),
		ISID:              ISID(b[8:14]),
		TSIH:              be.Uint16(b[14:16]),
		ITT:               b.ITT(),
		CID:               be.Uint16(b[20:22]),
		CmdSN:             be.Uint32(b[24:28]),
		ExpStatSN:         be.Uint32(b[28:32]),
	}, nil
}

// Put writes the Login Request BHS (the I bit is always set).
//
// Preconditions: CSG and NSG <= 3, DataSegmentLength < 1<<24.
func (r *LoginRequest) Put(b *BHS) {
	b.putHeader(OpLoginRequest, true, loginFlags(r.Transit, r.Continue, r.CSG, r.NSG),
		r.DataSegmentLength)
	b[2] = r.VersionMax
	b[3] = r.VersionMin
	copy(b[8:14], r.ISID[:])
	be.PutUint16(b[14:16], r.TSIH)
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint16(b[20:22], r.CID)
	be.PutUint32(b[24:28], r.CmdSN)
	be.PutUint32(b[28:32], r.ExpStatSN)
}

// LoginResponse is the Login Response BHS (RFC 7143 §11.13).
type LoginResponse struct {
	Transit           bool   // @1 bit 7 (T): the target agrees to move to NSG
	Continue          bool   // @1 bit 6 (C): more text follows in the next response
	CSG               Stage  // @1 bits 3..2
	NSG               Stage  // @1 bits 1..0, valid with T
	VersionMax        uint8  // @2
	VersionActive     uint8  // @3
	DataSegmentLength uint32 // @5..7
	ISID              ISID   // @8..13: echoed
	TSIH              uint16 // @14: the new session's TSIH in the final response
	ITT               uint32 // @16: echoed
	StatSN            uint32 // @24
	ExpCmdSN          uint32 // @28
	MaxCmdSN          uint32 // @32
	Status            Status // @36 Status-Class, @37 Status-Detail
}

// DecodeLoginResponse reads a Login Response BHS.
func DecodeLoginResponse(b *BHS) (LoginResponse, error) {
	if b.Opcode() != OpLoginResponse {
		return LoginResponse{}, ErrOpcode
	}
	return LoginResponse{
		Transit:           b[1]&flagF != 0,
		Continue:          b[1]&flagC != 0,
		CSG:               Stage(b[1] >> 2 & 3),
		NSG:               Stage(b[1] & 3),
		VersionMax:        b[2],
		VersionActive:     b[3],
		DataSegmentLength: b.DataSegmentLength(),
		ISID:              ISID(b[8:14]),
		TSIH:              be.Uint16(b[14:16]),
		ITT:               b.ITT(),
		StatSN:            be.Uint32(b[24:28]),
		ExpCmdSN:          be.Uint32(b[28:32]),
		MaxCmdSN:          be.Uint32(b[32:36]),
		Status:            NewStatus(b[36], b[37]),
	}, nil
}

// Put writes the Login Response BHS.
//
// Preconditions: CSG and NSG <= 3, DataSegmentLength < 1<<24.
func (r *LoginResponse) Put(b *BHS) {
	b.putHeader(OpLoginResponse, false, loginFlags(r.Transit, r.Continue, r.CSG, r.NSG),
		r.DataSegmentLength)
	b[2] = r.VersionMax
	b[3] = r.VersionActive
	copy(b[8:14], r.ISID[:])
	be.PutUint16(b[14:16], r.TSIH)
	be.PutUint32(b[16:20], r.ITT)
	be.PutUint32(b[24:28], r.StatSN)
	be.PutUint32(b[28:32], r.ExpCmdSN)
	be.PutUint32(b[32:36], r.MaxCmdSN)
	b[36] = r.Status.Class()
	b[37] = r.Status.Detail()
}

func loginFlags(t, c bool, csg, nsg Stage) byte {
	if csg > 3 || nsg > 3 {
		panic("iscsi: login stage above 3")
	}
	return bit(t, flagF) | bit(c, flagC) | byte(csg)<<2 | byte(nsg)
}
