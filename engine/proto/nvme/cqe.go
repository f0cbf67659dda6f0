package nvme

// CQE is a 16-byte completion queue entry (Base §4.6, Figure "Common Completion Queue
// Entry Layout"): DW0 @0, DW1 @4, SQHD u16 @8, SQID u16 @10, CID u16 @12, and the
// status field u16 @14 (bit 0 phase tag P, bits 15:1 the status, see [Status]).
//
// Accessors work in place and never allocate; [CapsuleCQE] views one inside a
// CapsuleResp header. Over fabrics the phase tag is reserved (there is no CQ memory to
// wrap), so encoders leave it 0.
type CQE [16]byte

// CQELen is the size of a completion queue entry.
const CQELen = 16

// DW0 returns the command specific dword 0 (@0).
func (c *CQE) DW0() uint32 { return le.Uint32(c[0:4]) }

// SetDW0 sets dword 0.
func (c *CQE) SetDW0(v uint32) { le.PutUint32(c[0:4], v) }

// DW1 returns dword 1 (@4).
func (c *CQE) DW1() uint32 { return le.Uint32(c[4:8]) }

// SetDW1 sets dword 1.
func (c *CQE) SetDW1(v uint32) { le.PutUint32(c[4:8], v) }

// SQHD returns the submission queue head pointer (@8).
func (c *CQE) SQHD() uint16 { return le.Uint16(c[8:10]) }

// SetSQHD sets the submission queue head pointer.
func (c *CQE) SetSQHD(v uint16) { le.PutUint16(c[8:10], v) }

// SQID returns the submission queue identifier (@10).
func (c *CQE) SQID() uint16 { return le.Uint16(c[10:12]) }

// SetSQID sets the submission queue identifier.
func (c *CQE) SetSQID(v uint16) { le.PutUint16(c[10:12], v) }

// CID returns the command identifier (@12).
func (c *CQE) CID() uint16 { return le.Uint16(c[12:14]) }

// SetCID sets the command identifier.
func (c *CQE) SetCID(v uint16) { le.PutUint16(c[12:14], v) }

// Phase returns the phase tag, status field bit 0 (@14).
func (c *CQE) Phase() bool { return c[14]&1 != 0 }

// Status returns the status, status field bits 15:1 (@14) shifted down one bit.
func (c *CQE) Status() Status { return Status(le.Uint16(c[14:16]) >> 1) }

// SetStatus sets the status and keeps the phase tag.
func (c *CQE) SetStatus(s Status) {
	le.PutUint16(c[14:16], uint16(s)<<1|le.Uint16(c[14:16])&1)
}

// SetPhase sets or clears the phase tag.
func (c *CQE) SetPhase(p bool) {
	c[14] &^= 1
	if p {
		c[14] |= 1
	}
}

// Fill writes a whole completion with phase tag 0: the one call a target makes per
// command on the hot path.
func (c *CQE) Fill(cid, sqid, sqhd uint16, dw0, dw1 uint32, s Status) {
	le.PutUint32(c[0:4], dw0)
	le.PutUint32(c[4:8], dw1)
	le.PutUint16(c[8:10], sqhd)
	le.PutUint16(c[10:12], sqid)
	le.PutUint16(c[12:14], cid)
	le.PutUint16(c[14:16], uint16(s)<<1)
}

// Reset zeroes the entry.
func (c *CQE) Reset() { *c = CQE{} }

// Connect response DW0 (Fabrics §6.3, Figure "Connect Response"): on success CNTLID in
// bits 15:0 and AUTHREQ in bits 31:16; on Connect Invalid Parameters, IPO (the byte
// offset of the bad field) in bits 15:0 and IATTR in bits 23:16.

// IATTR values: where the invalid Connect parameter is.
const (
	IATTRCommand uint8 = 0 // IPO is an offset into the SQE
	IATTRData    uint8 = 1 // IPO is an offset into the Connect data
)

// ConnectSuccessDW0 encodes a successful Connect response DW0.
func ConnectSuccessDW0(cntlid, authreq uint16) uint32 {
	return uint32(cntlid) | uint32(authreq)<<16
}

// ConnectCNTLID returns the controller ID and AUTHREQ of a successful Connect DW0.
func ConnectCNTLID(dw0 uint32) (cntlid, authreq uint16) {
	return uint16(dw0), uint16(dw0 >> 16)
}

// ConnectInvalidParamDW0 encodes the DW0 of a Connect Invalid Parameters response.
func ConnectInvalidParamDW0(ipo uint16, iattr uint8) uint32 {
	return uint32(ipo) | uint32(iattr)<<16
}

// ConnectInvalidParam decodes the DW0 of a Connect Invalid Parameters response.
func ConnectInvalidParam(dw0 uint32) (ipo uint16, iattr uint8) {
	return uint16(dw0), uint8(dw0 >> 16)
}
