package nvme

// SQE is a 64-byte submission queue entry (Base §4.2, Figure "Common Command Format"):
// CDW0 (OPC @0, FUSE/PSDT @1, CID @2), NSID @4, CDW2 @8, CDW3 @12, MPTR @16,
// DPTR @24..39 (for fabrics: SGL1), CDW10..CDW15 @40..63. In a Fabrics command byte @4
// is FCTYPE instead of NSID (Fabrics §6.1).
//
// Accessors read and write the array in place and never allocate. Use pointers
// (*SQE) so the entry is not copied; [CapsuleSQE] views one inside a PDU header.
type SQE [64]byte

// SQELen is the size of a submission queue entry.
const SQELen = 64

// Opcode returns CDW0 bits 7:0 (@0).
func (s *SQE) Opcode() uint8 { return s[0] }

// AdminOpcode returns the opcode typed as an admin opcode.
func (s *SQE) AdminOpcode() AdminOpcode { return AdminOpcode(s[0]) }

// NVMOpcode returns the opcode typed as an NVM I/O opcode.
func (s *SQE) NVMOpcode() NVMOpcode { return NVMOpcode(s[0]) }

// SetOpcode sets CDW0 bits 7:0.
func (s *SQE) SetOpcode(op uint8) { s[0] = op }

// Fused operation values, CDW0 bits 9:8.
const (
	FuseNone   uint8 = 0
	FuseFirst  uint8 = 1 // first command of a fused pair (Compare)
	FuseSecond uint8 = 2 // second command of a fused pair (Write)
)

// FUSE returns CDW0 bits 9:8 (byte @1 bits 1:0).
func (s *SQE) FUSE() uint8 { return s[1] & 0x3 }

// SetFUSE sets CDW0 bits 9:8.
func (s *SQE) SetFUSE(f uint8) { s[1] = s[1]&^0x3 | f&0x3 }

// PRP or SGL for Data Transfer values, CDW0 bits 15:14.
const (
	PSDTPRP        uint8 = 0 // PRPs: not used by fabrics
	PSDTSGLMPTR    uint8 = 1 // SGLs, MPTR is a contiguous buffer: what fabrics hosts send
	PSDTSGLMPTRSGL uint8 = 2 // SGLs, MPTR is an SGL segment
)

// PSDT returns CDW0 bits 15:14 (byte @1 bits 7:6). Fabrics commands and capsules
// describe data with SGLs only, so hosts send PSDT 01b; nvmet answers any other value
// with Invalid Field at the flags byte.
func (s *SQE) PSDT() uint8 { return s[1] >> 6 }

// SetPSDT sets CDW0 bits 15:14.
func (s *SQE) SetPSDT(p uint8) { s[1] = s[1]&0x3F | p<<6 }

// CID returns the command identifier, CDW0 bits 31:16 (@2).
func (s *SQE) CID() uint16 { return le.Uint16(s[2:4]) }

// SetCID sets the command identifier.
func (s *SQE) SetCID(cid uint16) { le.PutUint16(s[2:4], cid) }

// NSID returns the namespace identifier (@4).
func (s *SQE) NSID() uint32 { return le.Uint32(s[4:8]) }

// SetNSID sets the namespace identifier.
func (s *SQE) SetNSID(nsid uint32) { le.PutUint32(s[4:8], nsid) }

// CDW2 returns command dword 2 (@8).
func (s *SQE) CDW2() uint32 { return le.Uint32(s[8:12]) }

// SetCDW2 sets command dword 2.
func (s *SQE) SetCDW2(v uint32) { le.PutUint32(s[8:12], v) }

// CDW3 returns command dword 3 (@12).
func (s *SQE) CDW3() uint32 { return le.Uint32(s[12:16]) }

// SetCDW3 sets command dword 3.
func (s *SQE) SetCDW3(v uint32) { le.PutUint32(s[12:16], v) }

// MPTR returns the metadata pointer (@16).
func (s *SQE) MPTR() uint64 { return le.Uint64(s[16:24]) }

// SetMPTR sets the metadata pointer.
func (s *SQE) SetMPTR(v uint64) { le.PutUint64(s[16:24], v) }

// SGL1 returns the first SGL descriptor, DPTR @24..39.
func (s *SQE) SGL1() SGLDescriptor {
	d, _ := DecodeSGL(s[24:40])
	return d
}

// SetSGL1 writes the first SGL descriptor at DPTR @24..39.
func (s *SQE) SetSGL1(d SGLDescriptor) { d.Put(s[24:40]) }

// CDW returns command dword n (0..15) at @4n.
//
// Preconditions: n < 16.
func (s *SQE) CDW(n int) uint32 { return le.Uint32(s[4*n : 4*n+4]) }

// SetCDW sets command dword n (0..15).
//
// Preconditions: n < 16.
func (s *SQE) SetCDW(n int, v uint32) { le.PutUint32(s[4*n:4*n+4], v) }

// CDW10 returns command dword 10 (@40).
func (s *SQE) CDW10() uint32 { return le.Uint32(s[40:44]) }

// CDW11 returns command dword 11 (@44).
func (s *SQE) CDW11() uint32 { return le.Uint32(s[44:48]) }

// CDW12 returns command dword 12 (@48).
func (s *SQE) CDW12() uint32 { return le.Uint32(s[48:52]) }

// CDW13 returns command dword 13 (@52).
func (s *SQE) CDW13() uint32 { return le.Uint32(s[52:56]) }

// CDW14 returns command dword 14 (@56).
func (s *SQE) CDW14() uint32 { return le.Uint32(s[56:60]) }

// CDW15 returns command dword 15 (@60).
func (s *SQE) CDW15() uint32 { return le.Uint32(s[60:64]) }

// SetCDW10 sets command dword 10.
func (s *SQE) SetCDW10(v uint32) { le.PutUint32(s[40:44], v) }

// SetCDW11 sets command dword 11.
func (s *SQE) SetCDW11(v uint32) { le.PutUint32(s[44:48], v) }

// SetCDW12 sets command dword 12.
func (s *SQE) SetCDW12(v uint32) { le.PutUint32(s[48:52], v) }

// SetCDW13 sets command dword 13.
func (s *SQE) SetCDW13(v uint32) { le.PutUint32(s[52:56], v) }

// SetCDW14 sets command dword 14.
func (s *SQE) SetCDW14(v uint32) { le.PutUint32(s[56:60], v) }

// SetCDW15 sets command dword 15.
func (s *SQE) SetCDW15(v uint32) { le.PutUint32(s[60:64], v) }

// Reset zeroes the entry.
func (s *SQE) Reset() { *s = SQE{} }

// NVM command set fields (NVM §3.2.4 Read, §3.2.6 Write: SLBA CDW10-11, NLB CDW12
// bits 15:0 0's based, PRINFO 29:26, FUA bit 30, LR bit 31; Write Zeroes DEAC bit 25).
const (
	cdw12FUA  = 1 << 30
	cdw12LR   = 1 << 31
	cdw12DEAC = 1 << 25
)

// SLBA returns the starting LBA, CDW10-11 (@40, u64).
func (s *SQE) SLBA() uint64 { return le.Uint64(s[40:48]) }

// SetSLBA sets the starting LBA.
func (s *SQE) SetSLBA(lba uint64) { le.PutUint64(s[40:48], lba) }

// NLB returns the 0's based number of logical blocks, CDW12 bits 15:0 (@48). The
// transfer is NLB+1 blocks; see [SQE.Blocks].
func (s *SQE) NLB() uint16 { return le.Uint16(s[48:50]) }

// SetNLB sets the 0's based number of logical blocks.
func (s *SQE) SetNLB(nlb uint16) { le.PutUint16(s[48:50], nlb) }

// Blocks returns the number of logical blocks, NLB+1.
func (s *SQE) Blocks() uint32 { return uint32(s.NLB()) + 1 }

// FUA returns Force Unit Access, CDW12 bit 30.
func (s *SQE) FUA() bool { return s.CDW12()&cdw12FUA != 0 }

// SetFUA sets or clears CDW12 bit 30.
func (s *SQE) SetFUA(on bool) { s.setCDW12Bit(cdw12FUA, on) }

// LR returns Limited Retry, CDW12 bit 31.
func (s *SQE) LR() bool { return s.CDW12()&cdw12LR != 0 }

// DEAC returns the Write Zeroes Deallocate bit, CDW12 bit 25.
func (s *SQE) DEAC() bool { return s.CDW12()&cdw12DEAC != 0 }

// SetDEAC sets or clears CDW12 bit 25.
func (s *SQE) SetDEAC(on bool) { s.setCDW12Bit(cdw12DEAC, on) }

func (s *SQE) setCDW12Bit(bit uint32, on bool) {
	v := s.CDW12() &^ bit
	if on {
		v |= bit
	}
	s.SetCDW12(v)
}

// Dataset Management attributes, CDW11 (NVM §3.2.3): IDR bit 0, IDW bit 1, AD bit 2.
const (
	DSMIntegralRead  uint32 = 1 << 0
	DSMIntegralWrite uint32 = 1 << 1
	DSMDeallocate    uint32 = 1 << 2
)

// DSMRangeLen is the size of one Dataset Management range (NVM Figure "Dataset
// Management – Range Definition").
const DSMRangeLen = 16

// DSMRanges returns the number of ranges of a Dataset Management command: CDW10 bits
// 7:0 (NR, 0's based) plus one, 1..256.
func (s *SQE) DSMRanges() int { return int(s[40]) + 1 }

// SetDSMRanges sets NR to n-1.
//
// Preconditions: 1 <= n <= 256.
func (s *SQE) SetDSMRanges(n int) { s[40] = uint8(n - 1) }

// DSMAttributes returns CDW11 (DSMIntegralRead, DSMIntegralWrite, DSMDeallocate).
func (s *SQE) DSMAttributes() uint32 { return s.CDW11() }

// DSMRange is one 16-byte Dataset Management range: context attributes u32 @0,
// length in logical blocks u32 @4 (not 0's based), starting LBA u64 @8.
type DSMRange struct {
	Attributes uint32
	NLB        uint32
	SLBA       uint64
}

// DecodeDSMRange reads a range from b[0:16].
func DecodeDSMRange(b []byte) (DSMRange, error) {
	if len(b) < DSMRangeLen {
		return DSMRange{}, ErrShortBuffer
	}
	return DSMRange{
		Attributes: le.Uint32(b[0:4]),
		NLB:        le.Uint32(b[4:8]),
		SLBA:       le.Uint64(b[8:16]),
	}, nil
}

// Put writes the range to b[0:16].
//
// Preconditions: len(b) >= 16.
func (r DSMRange) Put(b []byte) {
	_ = b[DSMRangeLen-1]
	le.PutUint32(b[0:4], r.Attributes)
	le.PutUint32(b[4:8], r.NLB)
	le.PutUint64(b[8:16], r.SLBA)
}

// Fabrics command fields (Fabrics §6).

// FCTYPE returns the Fabrics command type (@4) of a Fabrics command (opcode 7Fh).
func (s *SQE) FCTYPE() FCTYPE { return FCTYPE(s[4]) }

// SetFCTYPE sets byte @4. It overwrites the low byte of NSID, as the two share it.
func (s *SQE) SetFCTYPE(t FCTYPE) { s[4] = uint8(t) }

// Connect command fields (Fabrics §6.3, Figure "Connect Command – Submission Queue
// Entry"): RECFMT u16 @40, QID u16 @42, SQSIZE u16 @44 (0's based), CATTR u8 @46,
// KATO u32 @48 (milliseconds).

// RECFMT returns the record format (@40) of Connect and Disconnect; 0 is the only one.
func (s *SQE) RECFMT() uint16 { return le.Uint16(s[40:42]) }

// SetRECFMT sets the record format.
func (s *SQE) SetRECFMT(v uint16) { le.PutUint16(s[40:42], v) }

// QID returns the queue ID the Connect creates (@42); 0 is the admin queue.
func (s *SQE) QID() uint16 { return le.Uint16(s[42:44]) }

// SetQID sets the Connect queue ID.
func (s *SQE) SetQID(v uint16) { le.PutUint16(s[42:44], v) }

// SQSIZE returns the 0's based submission queue size (@44).
func (s *SQE) SQSIZE() uint16 { return le.Uint16(s[44:46]) }

// SetSQSIZE sets the 0's based submission queue size.
func (s *SQE) SetSQSIZE(v uint16) { le.PutUint16(s[44:46], v) }

// Connect attributes, CATTR (@46).
const (
	CATTRPriorityMask      uint8 = 0x3    // bits 1:0: queue priority class
	CATTRDisableSQFlowCtrl uint8 = 1 << 2 // bit 2: host disables SQ flow control (no SQHD)
)

// CATTR returns the Connect attributes (@46).
func (s *SQE) CATTR() uint8 { return s[46] }

// SetCATTR sets the Connect attributes.
func (s *SQE) SetCATTR(v uint8) { s[46] = v }

// KATO returns the keep alive timeout in milliseconds (@48); 0 disables it.
func (s *SQE) KATO() uint32 { return le.Uint32(s[48:52]) }

// SetKATO sets the keep alive timeout in milliseconds.
func (s *SQE) SetKATO(ms uint32) { le.PutUint32(s[48:52], ms) }

// Property Get/Set fields (Fabrics §6.5, §6.6): ATTRIB u8 @40 (bits 2:0 size: 0 four
// bytes, 1 eight bytes), OFST u32 @44, VALUE u64 @48 (Set only). A Property Get returns
// the value in CQE DW0 (and DW1 for eight bytes).
const (
	PropSize4 uint8 = 0
	PropSize8 uint8 = 1
)

// PropAttrib returns the property ATTRIB byte (@40).
func (s *SQE) PropAttrib() uint8 { return s[40] }

// SetPropAttrib sets the property ATTRIB byte.
func (s *SQE) SetPropAttrib(v uint8) { s[40] = v }

// PropOffset returns the property offset OFST (@44).
func (s *SQE) PropOffset() uint32 { return le.Uint32(s[44:48]) }

// SetPropOffset sets the property offset.
func (s *SQE) SetPropOffset(v uint32) { le.PutUint32(s[44:48], v) }

// PropValue returns the Property Set VALUE (@48).
func (s *SQE) PropValue() uint64 { return le.Uint64(s[48:56]) }

// SetPropValue sets the Property Set VALUE.
func (s *SQE) SetPropValue(v uint64) { le.PutUint64(s[48:56], v) }

// Identify fields (Base §5.17): CNS CDW10 bits 7:0, CNTID CDW10 bits 31:16, CNS
// specific identifier CDW11 bits 15:0, CSI CDW11 bits 31:24.

// IdentifyCNS returns CDW10 bits 7:0.
func (s *SQE) IdentifyCNS() CNS { return CNS(s[40]) }

// IdentifyCNTID returns CDW10 bits 31:16.
func (s *SQE) IdentifyCNTID() uint16 { return le.Uint16(s[42:44]) }

// IdentifyCSI returns CDW11 bits 31:24, the command set identifier.
func (s *SQE) IdentifyCSI() uint8 { return s[47] }

// SetIdentify sets CNS, CNTID and CSI, clearing the rest of CDW10-11.
func (s *SQE) SetIdentify(cns CNS, cntid uint16, csi uint8) {
	s.SetCDW10(uint32(cns) | uint32(cntid)<<16)
	s.SetCDW11(uint32(csi) << 24)
}

// Features fields (Base §5.27, §5.15): FID CDW10 bits 7:0, SEL CDW10 bits 10:8 (Get),
// SV CDW10 bit 31 (Set).

// FeatureID returns CDW10 bits 7:0.
func (s *SQE) FeatureID() FeatureID { return FeatureID(s[40]) }

// FeatureSEL returns the Get Features select field, CDW10 bits 10:8.
func (s *SQE) FeatureSEL() uint8 { return s[41] & 0x7 }

// FeatureSV returns the Set Features save bit, CDW10 bit 31.
func (s *SQE) FeatureSV() bool { return s[43]&0x80 != 0 }

// SGL descriptor types, byte @15 bits 7:4 (Base §4.1.8, Figure "SGL Descriptor Type").
const (
	SGLTypeDataBlock          uint8 = 0x0
	SGLTypeBitBucket          uint8 = 0x1
	SGLTypeSegment            uint8 = 0x2
	SGLTypeLastSegment        uint8 = 0x3
	SGLTypeKeyedDataBlock     uint8 = 0x4
	SGLTypeTransportDataBlock uint8 = 0x5
)

// SGL descriptor subtypes, byte @15 bits 3:0.
const (
	SGLSubtypeAddress   uint8 = 0x0
	SGLSubtypeOffset    uint8 = 0x1 // in-capsule data: address is an offset into it
	SGLSubtypeTransport uint8 = 0xA // transport specific (NVMe/TCP: data via R2T/C2HData)
)

// SGL identifiers NVMe/TCP uses (TCP transport binding, command capsule SGL rules, as
// SPDK and nvmet implement them): in-capsule data is a Data Block with
// subtype Offset (01h); data moved by R2T/H2CData or C2HData is a Transport SGL Data
// Block with subtype Transport (5Ah).
const (
	SGLIDInCapsule = SGLTypeDataBlock<<4 | SGLSubtypeOffset
	SGLIDTransport = SGLTypeTransportDataBlock<<4 | SGLSubtypeTransport
)

// SGLDescLen is the size of an SGL descriptor.
const SGLDescLen = 16

// SGLDescriptor is a 16-byte SGL descriptor (Base §4.1.8): Address u64 @0, Length u32
// @8, reserved @12..14, SGL identifier @15 (type bits 7:4, subtype bits 3:0). A Keyed
// Data Block (type 4, RDMA) instead has a 24-bit Length @8 and Key u32 @11.
type SGLDescriptor struct {
	Address uint64 // @0: address, or offset into the in-capsule data
	Length  uint32 // @8
	Key     uint32 // @11: keyed data block only
	ID      uint8  // @15: type<<4 | subtype
}

// Type returns the descriptor type (ID bits 7:4).
func (d SGLDescriptor) Type() uint8 { return d.ID >> 4 }

// Subtype returns the descriptor subtype (ID bits 3:0).
func (d SGLDescriptor) Subtype() uint8 { return d.ID & 0xF }

// DecodeSGL reads a descriptor from b[0:16]. Any identifier decodes; checking it
// against what the transport supports is the caller's job (SGL Descriptor Type Invalid,
// Invalid SGL Offset, Data SGL Length Invalid are command statuses).
func DecodeSGL(b []byte) (SGLDescriptor, error) {
	if len(b) < SGLDescLen {
		return SGLDescriptor{}, ErrShortBuffer
	}
	d := SGLDescriptor{Address: le.Uint64(b[0:8]), ID: b[15]}
	if d.Type() == SGLTypeKeyedDataBlock {
		d.Length = uint32(b[8]) | uint32(b[9])<<8 | uint32(b[10])<<16
		d.Key = le.Uint32(b[11:15])
	} else {
		d.Length = le.Uint32(b[8:12])
	}
	return d, nil
}

// Put writes the descriptor to b[0:16]; reserved bytes are zeroed. For a Keyed Data
// Block only the low 24 bits of Length are written.
//
// Preconditions: len(b) >= 16.
func (d SGLDescriptor) Put(b []byte) {
	_ = b[SGLDescLen-1]
	le.PutUint64(b[0:8], d.Address)
	if d.Type() == SGLTypeKeyedDataBlock {
		b[8], b[9], b[10] = uint8(d.Length), uint8(d.Length>>8), uint8(d.Length>>16)
		le.PutUint32(b[11:15], d.Key)
	} else {
		le.PutUint32(b[8:12], d.Length)
		b[12], b[13], b[14] = 0, 0, 0
	}
	b[15] = d.ID
}
