package nvme

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// NQN limits and well-known names (Base §4.5 "NVMe Qualified Names").
const (
	// NQNFieldLen is the size of an NQN field in Connect data, Identify and the
	// Discovery log: the name, a NUL, and zero padding.
	NQNFieldLen = 256
	// NQNMaxLen is the longest NQN in bytes, without its NUL terminator.
	NQNMaxLen = 223
	// DiscoveryNQN is the well-known NQN of a discovery subsystem.
	DiscoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"
	// UUIDNQNPrefix starts an NQN built from a UUID instead of a domain name.
	UUIDNQNPrefix = "nqn.2014-08.org.nvmexpress:uuid:"
)

// ErrInvalidNQN is wrapped by every NQN validation failure.
var ErrInvalidNQN = errors.New("invalid nqn")

// ValidateNQN checks an NQN against Base §4.5: at most 223 bytes of UTF-8, no NUL, and
// one of three forms:
//
//   - the discovery NQN "nqn.2014-08.org.nvmexpress.discovery";
//   - "nqn.2014-08.org.nvmexpress:uuid:" followed by a UUID in 8-4-4-4-12 hex form;
//   - "nqn.yyyy-mm.reverse.domain:anything", where yyyy-mm are digits, the reverse
//     domain is dot-separated labels of letters, digits and inner hyphens (each 1..63
//     bytes; labels may start with a digit, as RFC 1123 allows), and at least one byte
//     follows the colon.
func ValidateNQN(nqn string) error {
	switch {
	case len(nqn) == 0:
		return nqnError(nqn, "empty")
	case len(nqn) > NQNMaxLen:
		return nqnError(nqn, "longer than 223 bytes")
	case !utf8.ValidString(nqn):
		return nqnError(nqn, "not UTF-8")
	case strings.IndexByte(nqn, 0) >= 0:
		return nqnError(nqn, "contains NUL")
	case nqn == DiscoveryNQN:
		return nil
	case strings.HasPrefix(nqn, UUIDNQNPrefix):
		if !validUUID(nqn[len(UUIDNQNPrefix):]) {
			return nqnError(nqn, "bad uuid")
		}
		return nil
	}
	return validateDomainNQN(nqn)
}

func validateDomainNQN(nqn string) error {
	// "nqn." yyyy "-" mm "." : bytes 0..11.
	if len(nqn) < 12 || nqn[:4] != "nqn." || nqn[8] != '-' || nqn[11] != '.' ||
		!allDigits(nqn[4:8]) || !allDigits(nqn[9:11]) {
		return nqnError(nqn, `does not start with "nqn.yyyy-mm."`)
	}
	colon := strings.IndexByte(nqn[12:], ':')
	if colon < 0 {
		return nqnError(nqn, "no ':' after the reverse domain")
	}
	if 12+colon == len(nqn)-1 {
		return nqnError(nqn, "nothing after ':'")
	}
	for label := range strings.SplitSeq(nqn[12:12+colon], ".") {
		if !validLabel(label) {
			return nqnError(nqn, "bad reverse domain label "+strconv.Quote(label))
		}
	}
	return nil
}

func nqnError(nqn, why string) error {
	if len(nqn) > 64 {
		nqn = nqn[:64] + "..."
	}
	return &nqnErr{nqn: nqn, why: why}
}

type nqnErr struct{ nqn, why string }

func (e *nqnErr) Error() string {
	return "nqn " + strconv.Quote(e.nqn) + ": " + e.why + ": " + ErrInvalidNQN.Error()
}

func (e *nqnErr) Unwrap() error { return ErrInvalidNQN }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func validLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || !isAlnum(l[0]) || !isAlnum(l[len(l)-1]) {
		return false
	}
	for i := 1; i < len(l)-1; i++ {
		if !isAlnum(l[i]) && l[i] != '-' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// validUUID accepts the 36-character 8-4-4-4-12 form, either case.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// PutNQN writes nqn NUL-terminated and zero-padded into an NQN field.
//
// Preconditions: len(nqn) < len(dst).
func PutNQN(dst []byte, nqn string) {
	n := copy(dst, nqn)
	if n >= len(dst) {
		panic("nvme: nqn does not fit its field")
	}
	clear(dst[n:])
}

// NQNString returns the NUL-terminated string in an NQN field, or the whole field if it
// has no NUL.
func NQNString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// ConnectDataLen is the size of the Connect command data.
const ConnectDataLen = 1024

// Connect data field offsets (Fabrics §6.3, Figure "Connect Command – Data").
const (
	ConnectDataHostIDOffset  = 0
	ConnectDataCNTLIDOffset  = 16
	ConnectDataSubNQNOffset  = 256
	ConnectDataHostNQNOffset = 512
)

// CNTLIDDynamic in Connect data asks the subsystem to allocate a controller (dynamic
// controller model); CNTLIDStatic asks for any static controller.
const (
	CNTLIDDynamic uint16 = 0xFFFF
	CNTLIDStatic  uint16 = 0xFFFE
)

// ConnectData is the 1024-byte data of a Connect command (Fabrics §6.3): HOSTID[16] @0,
// CNTLID u16 @16, reserved @18..255, SUBNQN[256] @256, HOSTNQN[256] @512, reserved
// @768..1023.
type ConnectData struct {
	HostID  [16]byte
	CNTLID  uint16
	SubNQN  string
	HostNQN string
}

// ConnectDataError reports a bad Connect data field. The target answers with
// StatusConnectInvalidParameters and DW0 = ConnectInvalidParamDW0(IPO, IATTRData).
type ConnectDataError struct {
	IPO uint16 // byte offset of the field in the Connect data
	Err error
}

func (e *ConnectDataError) Error() string {
	return "connect data @" + strconv.Itoa(int(e.IPO)) + ": " + e.Err.Error()
}

func (e *ConnectDataError) Unwrap() error { return e.Err }

var errNQNNotTerminated = errors.New("nqn field has no NUL within its first 224 bytes")

// DecodeConnectData decodes Connect data. Each NQN field must hold a NUL within its
// first 224 bytes (an NQN is at most 223 bytes, Base §4.5), and that is all: the bytes
// before it are returned as they are, empty (SPDK's initiator sends an empty host NQN
// unless told one) or in any format, as SPDK's target and Linux nvmet accept them. The
// subsystem lookup and the host allow-list decide what a name is worth. Failures are
// *ConnectDataError naming the field; the zero value comes back with any error.
func DecodeConnectData(b []byte) (ConnectData, error) {
	if len(b) < ConnectDataLen {
		return ConnectData{}, ErrShortBuffer
	}
	sub, err := decodeNQNField(b, ConnectDataSubNQNOffset)
	if err != nil {
		return ConnectData{}, err
	}
	host, err := decodeNQNField(b, ConnectDataHostNQNOffset)
	if err != nil {
		return ConnectData{}, err
	}
	d := ConnectData{CNTLID: le.Uint16(b[16:18]), SubNQN: sub, HostNQN: host}
	copy(d.HostID[:], b[0:16])
	return d, nil
}

func decodeNQNField(b []byte, off int) (string, error) {
	f := b[off : off+NQNMaxLen+1]
	i := bytes.IndexByte(f, 0)
	if i < 0 {
		return "", &ConnectDataError{IPO: uint16(off), Err: errNQNNotTerminated}
	}
	return string(f[:i]), nil
}

// MarshalTo validates the NQNs and writes the Connect data to b, zeroing reserved bytes.
// An empty host NQN is allowed: it is an anonymous host, as SPDK's initiator sends.
func (d *ConnectData) MarshalTo(b *[ConnectDataLen]byte) error {
	if err := ValidateNQN(d.SubNQN); err != nil {
		return &ConnectDataError{IPO: ConnectDataSubNQNOffset, Err: err}
	}
	if d.HostNQN != "" {
		if err := ValidateNQN(d.HostNQN); err != nil {
			return &ConnectDataError{IPO: ConnectDataHostNQNOffset, Err: err}
		}
	}
	d.Put(b)
	return nil
}

// Put writes the Connect data to b as it is, zeroing reserved bytes; names longer than
// 223 bytes are cut. A host uses MarshalTo; Put serves tools that send what they are
// given, and the decoder's round-trip test.
func (d *ConnectData) Put(b *[ConnectDataLen]byte) {
	*b = [ConnectDataLen]byte{}
	copy(b[0:16], d.HostID[:])
	le.PutUint16(b[16:18], d.CNTLID)
	PutNQN(b[256:512], d.SubNQN[:min(len(d.SubNQN), NQNMaxLen)])
	PutNQN(b[512:768], d.HostNQN[:min(len(d.HostNQN), NQNMaxLen)])
}

// Controller properties (Fabrics §3.5 / Base §3.1.4, Figure "Property Definition"):
// offsets for Property Get/Set. CAP is 8 bytes, the others 4.
const (
	PropCAP   uint32 = 0x00
	PropVS    uint32 = 0x08
	PropINTMS uint32 = 0x0C
	PropINTMC uint32 = 0x10
	PropCC    uint32 = 0x14
	PropCSTS  uint32 = 0x1C
	PropNSSR  uint32 = 0x20
)

// PropertySize returns the size of the property at ofst over fabrics, and false for an
// offset fabrics does not define (INTMS/INTMC and the admin queue registers are PCIe
// only; nvmet and SPDK answer them with Invalid Field).
func PropertySize(ofst uint32) (size int, ok bool) {
	switch ofst {
	case PropCAP:
		return 8, true
	case PropVS, PropCC, PropCSTS, PropNSSR:
		return 4, true
	}
	return 0, false
}

// NSSRReset is the value written to NSSR to request an NVM subsystem reset ("NVMe").
const NSSRReset uint32 = 0x4E564D65

// CAP is Controller Capabilities (Base §3.1.4.1, Figure "Offset 0h: CAP").
type CAP struct {
	MQES   uint16 // 15:0 maximum queue entries, 0's based
	CQR    bool   // 16 contiguous queues required
	AMS    uint8  // 18:17 arbitration mechanisms supported
	TO     uint8  // 31:24 timeout for CSTS.RDY changes, 500 ms units
	DSTRD  uint8  // 35:32 doorbell stride
	NSSRS  bool   // 36 NVM subsystem reset supported
	CSS    uint8  // 44:37 command sets supported: bit0 NVM, bit6 I/O command sets, bit7 none
	BPS    bool   // 45 boot partition support
	CPS    uint8  // 47:46 controller power scope
	MPSMIN uint8  // 51:48 memory page size minimum, 2^(12+n)
	MPSMAX uint8  // 55:52 memory page size maximum
	PMRS   bool   // 56 persistent memory region supported
	CMBS   bool   // 57 controller memory buffer supported
	NSSS   bool   // 58 NVM subsystem shutdown supported
	CRMS   uint8  // 60:59 controller ready modes supported
}

// CAP.CSS bits.
const (
	CSSNVM        uint8 = 1 << 0
	CSSIOCS       uint8 = 1 << 6
	CSSNoIOCSOnly uint8 = 1 << 7
)

// DecodeCAP splits a CAP value into its fields.
func DecodeCAP(v uint64) CAP {
	return CAP{
		MQES:   uint16(v),
		CQR:    v>>16&1 != 0,
		AMS:    uint8(v>>17) & 0x3,
		TO:     uint8(v >> 24),
		DSTRD:  uint8(v>>32) & 0xF,
		NSSRS:  v>>36&1 != 0,
		CSS:    uint8(v >> 37),
		BPS:    v>>45&1 != 0,
		CPS:    uint8(v>>46) & 0x3,
		MPSMIN: uint8(v>>48) & 0xF,
		MPSMAX: uint8(v>>52) & 0xF,
		PMRS:   v>>56&1 != 0,
		CMBS:   v>>57&1 != 0,
		NSSS:   v>>58&1 != 0,
		CRMS:   uint8(v>>59) & 0x3,
	}
}

// Value packs the fields; out-of-range field values are masked.
func (c CAP) Value() uint64 {
	v := uint64(c.MQES) | uint64(c.AMS&0x3)<<17 | uint64(c.TO)<<24 |
		uint64(c.DSTRD&0xF)<<32 | uint64(c.CSS)<<37 | uint64(c.CPS&0x3)<<46 |
		uint64(c.MPSMIN&0xF)<<48 | uint64(c.MPSMAX&0xF)<<52 | uint64(c.CRMS&0x3)<<59
	v |= bit64(c.CQR, 16) | bit64(c.NSSRS, 36) | bit64(c.BPS, 45) | bit64(c.PMRS, 56) |
		bit64(c.CMBS, 57) | bit64(c.NSSS, 58)
	return v
}

func bit64(b bool, n uint) uint64 {
	if b {
		return 1 << n
	}
	return 0
}

func bit32(b bool, n uint) uint32 {
	if b {
		return 1 << n
	}
	return 0
}

// Version encodes a VS value (Base §3.1.4.2): MJR 31:16, MNR 15:8, TER 7:0.
func Version(major uint16, minor, tertiary uint8) uint32 {
	return uint32(major)<<16 | uint32(minor)<<8 | uint32(tertiary)
}

// Common VS values.
const (
	VS13 uint32 = 1<<16 | 3<<8
	VS14 uint32 = 1<<16 | 4<<8
	VS20 uint32 = 2 << 16
)

// CC is Controller Configuration (Base §3.1.4.5, Figure "Offset 14h: CC").
type CC struct {
	EN     bool  // 0 enable
	CSS    uint8 // 6:4 I/O command set selected: 0 NVM, 6 all supported I/O sets, 7 admin only
	MPS    uint8 // 10:7 memory page size, 2^(12+n)
	AMS    uint8 // 13:11 arbitration mechanism selected
	SHN    uint8 // 15:14 shutdown notification
	IOSQES uint8 // 19:16 I/O SQ entry size, 2^n (6 for 64 bytes)
	IOCQES uint8 // 23:20 I/O CQ entry size, 2^n (4 for 16 bytes)
	CRIME  bool  // 24 controller ready independent of media enable
}

// CC.SHN values.
const (
	SHNNone   uint8 = 0
	SHNNormal uint8 = 1
	SHNAbrupt uint8 = 2
)

// DecodeCC splits a CC value into its fields.
func DecodeCC(v uint32) CC {
	return CC{
		EN:     v&1 != 0,
		CSS:    uint8(v>>4) & 0x7,
		MPS:    uint8(v>>7) & 0xF,
		AMS:    uint8(v>>11) & 0x7,
		SHN:    uint8(v>>14) & 0x3,
		IOSQES: uint8(v>>16) & 0xF,
		IOCQES: uint8(v>>20) & 0xF,
		CRIME:  v>>24&1 != 0,
	}
}

// Value packs the fields; out-of-range field values are masked.
func (c CC) Value() uint32 {
	return bit32(c.EN, 0) | uint32(c.CSS&0x7)<<4 | uint32(c.MPS&0xF)<<7 |
		uint32(c.AMS&0x7)<<11 | uint32(c.SHN&0x3)<<14 | uint32(c.IOSQES&0xF)<<16 |
		uint32(c.IOCQES&0xF)<<20 | bit32(c.CRIME, 24)
}

// CSTS is Controller Status (Base §3.1.4.6, Figure "Offset 1Ch: CSTS").
type CSTS struct {
	RDY   bool  // 0 ready
	CFS   bool  // 1 controller fatal status
	SHST  uint8 // 3:2 shutdown status
	NSSRO bool  // 4 NVM subsystem reset occurred
	PP    bool  // 5 processing paused
	ST    bool  // 6 shutdown type
}

// CSTS.SHST values.
const (
	SHSTNormal    uint8 = 0
	SHSTOccurring uint8 = 1
	SHSTComplete  uint8 = 2
)

// DecodeCSTS splits a CSTS value into its fields.
func DecodeCSTS(v uint32) CSTS {
	return CSTS{
		RDY:   v&1 != 0,
		CFS:   v>>1&1 != 0,
		SHST:  uint8(v>>2) & 0x3,
		NSSRO: v>>4&1 != 0,
		PP:    v>>5&1 != 0,
		ST:    v>>6&1 != 0,
	}
}

// Value packs the fields.
func (c CSTS) Value() uint32 {
	return bit32(c.RDY, 0) | bit32(c.CFS, 1) | uint32(c.SHST&0x3)<<2 | bit32(c.NSSRO, 4) |
		bit32(c.PP, 5) | bit32(c.ST, 6)
}
