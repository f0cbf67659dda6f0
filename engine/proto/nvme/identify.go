package nvme

import (
	"errors"
	"strings"
)

// IdentifyLen is the size of every Identify data structure.
const IdentifyLen = 4096

// PutASCII writes s left-justified and padded with spaces (20h), as Identify string
// fields require (Base §1.5 "ASCII string"). Longer strings are truncated.
func PutASCII(dst []byte, s string) {
	n := copy(dst, s)
	for i := n; i < len(dst); i++ {
		dst[i] = ' '
	}
}

// ASCIIString returns an ASCII field without its trailing padding (spaces, and NULs
// that some implementations use instead).
func ASCIIString(b []byte) string { return strings.TrimRight(string(b), " \x00") }

// Uint128 is a 128-bit little-endian counter (SMART data units, capacities).
type Uint128 struct{ Lo, Hi uint64 }

func getU128(b []byte) Uint128 { return Uint128{Lo: le.Uint64(b[0:8]), Hi: le.Uint64(b[8:16])} }

func putU128(b []byte, v Uint128) {
	le.PutUint64(b[0:8], v.Lo)
	le.PutUint64(b[8:16], v.Hi)
}

// Identify Controller bit fields a fabrics target sets (Base §5.17.2.1).
const (
	// CMIC @76.
	CMICMultiPort uint8 = 1 << 0
	CMICMultiCtrl uint8 = 1 << 1
	CMICSRIOV     uint8 = 1 << 2
	CMICANA       uint8 = 1 << 3

	// OAES @92: which notices the controller can send.
	OAESNSAttribute        uint32 = 1 << 8
	OAESFWActivation       uint32 = 1 << 9
	OAESANAChange          uint32 = 1 << 11
	OAESDiscoveryLogChange uint32 = 1 << 31

	// CTRATT @96.
	CTRATTHostID128 uint32 = 1 << 0
	CTRATTTBKAS     uint32 = 1 << 6

	// CNTRLTYPE @111.
	CntrlTypeIO        uint8 = 1
	CntrlTypeDiscovery uint8 = 2
	CntrlTypeAdmin     uint8 = 3

	// LPA @261.
	LPASMARTPerNS      uint8 = 1 << 0
	LPACommandEffects  uint8 = 1 << 1
	LPAExtendedData    uint8 = 1 << 2 // NUMDU and LPO in Get Log Page
	LPATelemetry       uint8 = 1 << 3
	LPAPersistentEvent uint8 = 1 << 4

	// ONCS @520.
	ONCSCompare            uint16 = 1 << 0
	ONCSWriteUncorrectable uint16 = 1 << 1
	ONCSDSM                uint16 = 1 << 2
	ONCSWriteZeroes        uint16 = 1 << 3
	ONCSSaveSelect         uint16 = 1 << 4
	ONCSReservations       uint16 = 1 << 5
	ONCSTimestamp          uint16 = 1 << 6
	ONCSVerify             uint16 = 1 << 7
	ONCSCopy               uint16 = 1 << 8

	// FUSES @522.
	FUSESCompareWrite uint16 = 1 << 0

	// VWC @525.
	VWCPresent uint8 = 1 << 0

	// SGLS @536.
	SGLSSupported       uint32 = 1 << 0 // bits 1:0 = 01b: SGLs, no alignment rule
	SGLSKeyed           uint32 = 1 << 2
	SGLSBitBucket       uint32 = 1 << 16
	SGLSOffset          uint32 = 1 << 20 // SGL address may be an offset (in-capsule data)
	SGLSTransportDBlock uint32 = 1 << 21

	// FCATT @1802.
	FCATTStaticModel uint8 = 1 << 0

	// OFCS @1804.
	OFCSDisconnect uint16 = 1 << 0
)

// PowerState is a 32-byte Power State Descriptor (Base §5.17.2.1, Figure "Power State
// Descriptor Data Structure").
type PowerState struct {
	MP    uint16 // @0 maximum power, centiwatts (0.01 W) unless MXPS
	Flags uint8  // @3 bit0 MXPS, bit1 NOPS (non-operational state)
	ENLAT uint32 // @4 entry latency, µs
	EXLAT uint32 // @8 exit latency, µs
	RRT   uint8  // @12 bits 4:0 relative read throughput
	RRL   uint8  // @13 bits 4:0 relative read latency
	RWT   uint8  // @14 bits 4:0 relative write throughput
	RWL   uint8  // @15 bits 4:0 relative write latency
	IDLP  uint16 // @16 idle power
	IPS   uint8  // @18 bits 7:6 idle power scale
	ACTP  uint16 // @20 active power
	APWS  uint8  // @22 bits 2:0 APW active power workload, bits 7:6 APS scale
}

func (p *PowerState) put(b []byte) {
	le.PutUint16(b[0:2], p.MP)
	b[3] = p.Flags
	le.PutUint32(b[4:8], p.ENLAT)
	le.PutUint32(b[8:12], p.EXLAT)
	b[12], b[13], b[14], b[15] = p.RRT, p.RRL, p.RWT, p.RWL
	le.PutUint16(b[16:18], p.IDLP)
	b[18] = p.IPS
	le.PutUint16(b[20:22], p.ACTP)
	b[22] = p.APWS
}

func (p *PowerState) get(b []byte) {
	*p = PowerState{
		MP: le.Uint16(b[0:2]), Flags: b[3], ENLAT: le.Uint32(b[4:8]), EXLAT: le.Uint32(b[8:12]),
		RRT: b[12], RRL: b[13], RWT: b[14], RWL: b[15], IDLP: le.Uint16(b[16:18]), IPS: b[18],
		ACTP: le.Uint16(b[20:22]), APWS: b[22],
	}
}

// IdentifyController is the Identify Controller data structure, CNS 01h (Base
// §5.17.2.1, Figure "Identify – Identify Controller Data Structure, I/O Command Set
// Independent"), restricted to the fields a fabrics controller reports. Bytes not
// represented are reserved or PCIe-only and marshal as zero. String fields are
// space-padded ASCII (use [PutASCII]); SUBNQN is NUL-terminated UTF-8 ([PutNQN]).
type IdentifyController struct {
	VID       uint16   // @0 PCI vendor ID
	SSVID     uint16   // @2 PCI subsystem vendor ID
	SN        [20]byte // @4 serial number, ASCII
	MN        [40]byte // @24 model number, ASCII
	FR        [8]byte  // @64 firmware revision, ASCII
	RAB       uint8    // @72 recommended arbitration burst
	IEEE      [3]byte  // @73 IEEE OUI
	CMIC      uint8    // @76 multi-path I/O and namespace sharing
	MDTS      uint8    // @77 maximum data transfer size, 2^n * CAP.MPSMIN; 0 = none
	CNTLID    uint16   // @78 controller ID
	VER       uint32   // @80 version, as VS
	RTD3R     uint32   // @84 RTD3 resume latency, µs
	RTD3E     uint32   // @88 RTD3 entry latency, µs
	OAES      uint32   // @92 optional asynchronous events supported
	CTRATT    uint32   // @96 controller attributes
	RRLS      uint16   // @100 read recovery levels supported
	CNTRLTYPE uint8    // @111 controller type
	FGUID     [16]byte // @112 FRU GUID
	CRDT1     uint16   // @128 command retry delay time 1, 100 ms units
	CRDT2     uint16   // @130
	CRDT3     uint16   // @132

	OACS      uint16  // @256 optional admin command support
	ACL       uint8   // @258 abort command limit, 0's based
	AERL      uint8   // @259 async event request limit, 0's based
	FRMW      uint8   // @260 firmware updates
	LPA       uint8   // @261 log page attributes
	ELPE      uint8   // @262 error log page entries, 0's based
	NPSS      uint8   // @263 number of power states support, 0's based
	AVSCC     uint8   // @264 admin vendor specific command configuration
	APSTA     uint8   // @265 autonomous power state transition attributes
	WCTEMP    uint16  // @266 warning composite temperature threshold, kelvin
	CCTEMP    uint16  // @268 critical composite temperature threshold, kelvin
	MTFA      uint16  // @270 maximum time for firmware activation
	HMPRE     uint32  // @272
	HMMIN     uint32  // @276
	TNVMCAP   Uint128 // @280 total NVM capacity, bytes
	UNVMCAP   Uint128 // @296 unallocated NVM capacity, bytes
	RPMBS     uint32  // @312
	EDSTT     uint16  // @316
	DSTO      uint8   // @318
	FWUG      uint8   // @319
	KAS       uint16  // @320 keep alive support, 100 ms granularity; 0 = none
	HCTMA     uint16  // @322
	MNTMT     uint16  // @324
	MXTMT     uint16  // @326
	SANICAP   uint32  // @328
	HMMINDS   uint32  // @332
	HMMAXD    uint16  // @336
	NSETIDMAX uint16  // @338
	ENDGIDMAX uint16  // @340
	ANATT     uint8   // @342 ANA transition time, seconds
	ANACAP    uint8   // @343 ANA capabilities
	ANAGRPMAX uint32  // @344
	NANAGRPID uint32  // @348
	PELS      uint32  // @352 persistent event log size, 64 KiB units

	SQES   uint8     // @512 bits 3:0 required, 7:4 maximum SQ entry size, 2^n
	CQES   uint8     // @513 bits 3:0 required, 7:4 maximum CQ entry size, 2^n
	MAXCMD uint16    // @514 maximum outstanding commands per queue
	NN     uint32    // @516 number of namespaces (largest NSID)
	ONCS   uint16    // @520 optional NVM command support
	FUSES  uint16    // @522 fused operation support
	FNA    uint8     // @524 format NVM attributes
	VWC    uint8     // @525 volatile write cache
	AWUN   uint16    // @526 atomic write unit normal, 0's based blocks
	AWUPF  uint16    // @528 atomic write unit power fail, 0's based blocks
	NVSCC  uint8     // @530 I/O command set vendor specific command configuration
	NWPC   uint8     // @531 namespace write protection capabilities
	ACWU   uint16    // @532 atomic compare & write unit, 0's based blocks
	OCFS   uint16    // @534 optional copy formats supported
	SGLS   uint32    // @536 SGL support
	MNAN   uint32    // @540 maximum number of allowed namespaces
	SUBNQN [256]byte // @768 NVM subsystem NQN, NUL-terminated

	IOCCSZ uint32 // @1792 I/O queue command capsule size, 16-byte units (SQE + ICD)
	IORCSZ uint32 // @1796 I/O queue response capsule size, 16-byte units
	ICDOFF uint16 // @1800 in-capsule data offset, 16-byte units (must be 0 for Linux)
	FCATT  uint8  // @1802 fabrics controller attributes
	MSDBD  uint8  // @1803 maximum SGL data block descriptors
	OFCS   uint16 // @1804 optional fabric commands support
	DCTYPE uint8  // @1806 discovery controller type

	PSD [32]PowerState // @2048 power state descriptors 0..31, 32 bytes each
}

// MarshalTo writes the structure to b; bytes it does not represent are zeroed.
func (c *IdentifyController) MarshalTo(b *[IdentifyLen]byte) {
	*b = [IdentifyLen]byte{}
	c.putHead(b)
	c.putAdmin(b)
	c.putNVM(b)
	c.putFabrics(b)
	for i := range c.PSD {
		c.PSD[i].put(b[2048+32*i : 2048+32*(i+1)])
	}
}

// Unmarshal reads the structure from b.
func (c *IdentifyController) Unmarshal(b *[IdentifyLen]byte) {
	*c = IdentifyController{}
	c.getHead(b)
	c.getAdmin(b)
	c.getNVM(b)
	c.getFabrics(b)
	for i := range c.PSD {
		c.PSD[i].get(b[2048+32*i : 2048+32*(i+1)])
	}
}

// putHead writes the controller capabilities and features, bytes 0..255.
func (c *IdentifyController) putHead(b *[IdentifyLen]byte) {
	le.PutUint16(b[0:], c.VID)
	le.PutUint16(b[2:], c.SSVID)
	copy(b[4:24], c.SN[:])
	copy(b[24:64], c.MN[:])
	copy(b[64:72], c.FR[:])
	b[72] = c.RAB
	copy(b[73:76], c.IEEE[:])
	b[76], b[77] = c.CMIC, c.MDTS
	le.PutUint16(b[78:], c.CNTLID)
	le.PutUint32(b[80:], c.VER)
	le.PutUint32(b[84:], c.RTD3R)
	le.PutUint32(b[88:], c.RTD3E)
	le.PutUint32(b[92:], c.OAES)
	le.PutUint32(b[96:], c.CTRATT)
	le.PutUint16(b[100:], c.RRLS)
	b[111] = c.CNTRLTYPE
	copy(b[112:128], c.FGUID[:])
	le.PutUint16(b[128:], c.CRDT1)
	le.PutUint16(b[130:], c.CRDT2)
	le.PutUint16(b[132:], c.CRDT3)
}

func (c *IdentifyController) getHead(b *[IdentifyLen]byte) {
	c.VID = le.Uint16(b[0:])
	c.SSVID = le.Uint16(b[2:])
	copy(c.SN[:], b[4:24])
	copy(c.MN[:], b[24:64])
	copy(c.FR[:], b[64:72])
	c.RAB = b[72]
	copy(c.IEEE[:], b[73:76])
	c.CMIC, c.MDTS = b[76], b[77]
	c.CNTLID = le.Uint16(b[78:])
	c.VER = le.Uint32(b[80:])
	c.RTD3R = le.Uint32(b[84:])
	c.RTD3E = le.Uint32(b[88:])
	c.OAES = le.Uint32(b[92:])
	c.CTRATT = le.Uint32(b[96:])
	c.RRLS = le.Uint16(b[100:])
	c.CNTRLTYPE = b[111]
	copy(c.FGUID[:], b[112:128])
	c.CRDT1 = le.Uint16(b[128:])
	c.CRDT2 = le.Uint16(b[130:])
	c.CRDT3 = le.Uint16(b[132:])
}

// putAdmin writes the admin command set attributes, bytes 256..511.
func (c *IdentifyController) putAdmin(b *[IdentifyLen]byte) {
	le.PutUint16(b[256:], c.OACS)
	b[258], b[259], b[260], b[261] = c.ACL, c.AERL, c.FRMW, c.LPA
	b[262], b[263], b[264], b[265] = c.ELPE, c.NPSS, c.AVSCC, c.APSTA
	le.PutUint16(b[266:], c.WCTEMP)
	le.PutUint16(b[268:], c.CCTEMP)
	le.PutUint16(b[270:], c.MTFA)
	le.PutUint32(b[272:], c.HMPRE)
	le.PutUint32(b[276:], c.HMMIN)
	putU128(b[280:], c.TNVMCAP)
	putU128(b[296:], c.UNVMCAP)
	le.PutUint32(b[312:], c.RPMBS)
	le.PutUint16(b[316:], c.EDSTT)
	b[318], b[319] = c.DSTO, c.FWUG
	le.PutUint16(b[320:], c.KAS)
	le.PutUint16(b[322:], c.HCTMA)
	le.PutUint16(b[324:], c.MNTMT)
	le.PutUint16(b[326:], c.MXTMT)
	le.PutUint32(b[328:], c.SANICAP)
	le.PutUint32(b[332:], c.HMMINDS)
	le.PutUint16(b[336:], c.HMMAXD)
	le.PutUint16(b[338:], c.NSETIDMAX)
	le.PutUint16(b[340:], c.ENDGIDMAX)
	b[342], b[343] = c.ANATT, c.ANACAP
	le.PutUint32(b[344:], c.ANAGRPMAX)
	le.PutUint32(b[348:], c.NANAGRPID)
	le.PutUint32(b[352:], c.PELS)
}

func (c *IdentifyController) getAdmin(b *[IdentifyLen]byte) {
	c.OACS = le.Uint16(b[256:])
	c.ACL, c.AERL, c.FRMW, c.LPA = b[258], b[259], b[260], b[261]
	c.ELPE, c.NPSS, c.AVSCC, c.APSTA = b[262], b[263], b[264], b[265]
	c.WCTEMP = le.Uint16(b[266:])
	c.CCTEMP = le.Uint16(b[268:])
	c.MTFA = le.Uint16(b[270:])
	c.HMPRE = le.Uint32(b[272:])
	c.HMMIN = le.Uint32(b[276:])
	c.TNVMCAP = getU128(b[280:])
	c.UNVMCAP = getU128(b[296:])
	c.RPMBS = le.Uint32(b[312:])
	c.EDSTT = le.Uint16(b[316:])
	c.DSTO, c.FWUG = b[318], b[319]
	c.KAS = le.Uint16(b[320:])
	c.HCTMA = le.Uint16(b[322:])
	c.MNTMT = le.Uint16(b[324:])
	c.MXTMT = le.Uint16(b[326:])
	c.SANICAP = le.Uint32(b[328:])
	c.HMMINDS = le.Uint32(b[332:])
	c.HMMAXD = le.Uint16(b[336:])
	c.NSETIDMAX = le.Uint16(b[338:])
	c.ENDGIDMAX = le.Uint16(b[340:])
	c.ANATT, c.ANACAP = b[342], b[343]
	c.ANAGRPMAX = le.Uint32(b[344:])
	c.NANAGRPID = le.Uint32(b[348:])
	c.PELS = le.Uint32(b[352:])
}

// putNVM writes the NVM command set attributes (bytes 512..703) and SUBNQN (@768).
func (c *IdentifyController) putNVM(b *[IdentifyLen]byte) {
	b[512], b[513] = c.SQES, c.CQES
	le.PutUint16(b[514:], c.MAXCMD)
	le.PutUint32(b[516:], c.NN)
	le.PutUint16(b[520:], c.ONCS)
	le.PutUint16(b[522:], c.FUSES)
	b[524], b[525] = c.FNA, c.VWC
	le.PutUint16(b[526:], c.AWUN)
	le.PutUint16(b[528:], c.AWUPF)
	b[530], b[531] = c.NVSCC, c.NWPC
	le.PutUint16(b[532:], c.ACWU)
	le.PutUint16(b[534:], c.OCFS)
	le.PutUint32(b[536:], c.SGLS)
	le.PutUint32(b[540:], c.MNAN)
	copy(b[768:1024], c.SUBNQN[:])
}

func (c *IdentifyController) getNVM(b *[IdentifyLen]byte) {
	c.SQES, c.CQES = b[512], b[513]
	c.MAXCMD = le.Uint16(b[514:])
	c.NN = le.Uint32(b[516:])
	c.ONCS = le.Uint16(b[520:])
	c.FUSES = le.Uint16(b[522:])
	c.FNA, c.VWC = b[524], b[525]
	c.AWUN = le.Uint16(b[526:])
	c.AWUPF = le.Uint16(b[528:])
	c.NVSCC, c.NWPC = b[530], b[531]
	c.ACWU = le.Uint16(b[532:])
	c.OCFS = le.Uint16(b[534:])
	c.SGLS = le.Uint32(b[536:])
	c.MNAN = le.Uint32(b[540:])
	copy(c.SUBNQN[:], b[768:1024])
}

// putFabrics writes the NVMe over Fabrics attributes, bytes 1792..2047.
func (c *IdentifyController) putFabrics(b *[IdentifyLen]byte) {
	le.PutUint32(b[1792:], c.IOCCSZ)
	le.PutUint32(b[1796:], c.IORCSZ)
	le.PutUint16(b[1800:], c.ICDOFF)
	b[1802], b[1803] = c.FCATT, c.MSDBD
	le.PutUint16(b[1804:], c.OFCS)
	b[1806] = c.DCTYPE
}

func (c *IdentifyController) getFabrics(b *[IdentifyLen]byte) {
	c.IOCCSZ = le.Uint32(b[1792:])
	c.IORCSZ = le.Uint32(b[1796:])
	c.ICDOFF = le.Uint16(b[1800:])
	c.FCATT, c.MSDBD = b[1802], b[1803]
	c.OFCS = le.Uint16(b[1804:])
	c.DCTYPE = b[1806]
}

// LBAFormat is an LBA Format descriptor (NVM §4.1.5.1, Figure "LBA Format Data
// Structure"): MS u16 @0 metadata bytes, LBADS u8 @2 data size 2^n bytes, RP u8 @3
// bits 1:0 relative performance.
type LBAFormat struct {
	MS    uint16
	LBADS uint8
	RP    uint8
}

// Identify Namespace bit fields (NVM §4.1.5.1).
const (
	// NSFEAT @24.
	NSFEATThinProvisioning uint8 = 1 << 0
	NSFEATNSABP            uint8 = 1 << 1 // NAWUN/NAWUPF/NACWU valid
	NSFEATDAE              uint8 = 1 << 2 // deallocated or unwritten block error
	NSFEATUIDReuse         uint8 = 1 << 3
	NSFEATOptPerf          uint8 = 1 << 4 // NPWG, NPWA, NPDG, NPDA, NOWS valid

	// FLBAS @26: bits 3:0 low bits of the format index, bit 4 extended metadata.
	FLBASIndexMask   uint8 = 0xF
	FLBASExtendedLBA uint8 = 1 << 4

	// NMIC @30.
	NMICShared uint8 = 1 << 0

	// RESCAP @31: reservation capabilities.
	RESCAPPTPL                   uint8 = 1 << 0
	RESCAPWriteExclusive         uint8 = 1 << 1
	RESCAPExclusiveAccess        uint8 = 1 << 2
	RESCAPWriteExclusiveRegOnly  uint8 = 1 << 3
	RESCAPExclusiveAccessRegOnly uint8 = 1 << 4
	RESCAPWriteExclusiveAllReg   uint8 = 1 << 5
	RESCAPExclusiveAccessAllReg  uint8 = 1 << 6
	RESCAPIgnoreExistingKey      uint8 = 1 << 7

	// DLFEAT @33 bits 2:0: what reading a deallocated block returns (1 = zeroes).
	DLFEATReadZeroes uint8 = 1

	// NSATTR @99.
	NSATTRWriteProtected uint8 = 1 << 0
)

// IdentifyNamespace is the Identify Namespace data structure for the NVM command set,
// CNS 00h (NVM §4.1.5.1, Figure "Identify Namespace Data Structure, NVM Command Set").
type IdentifyNamespace struct {
	NSZE     uint64        // @0 namespace size, logical blocks
	NCAP     uint64        // @8 namespace capacity
	NUSE     uint64        // @16 namespace utilization
	NSFEAT   uint8         // @24 namespace features
	NLBAF    uint8         // @25 number of LBA formats, 0's based
	FLBAS    uint8         // @26 formatted LBA size
	MC       uint8         // @27 metadata capabilities
	DPC      uint8         // @28 end-to-end data protection capabilities
	DPS      uint8         // @29 end-to-end data protection type settings
	NMIC     uint8         // @30 namespace multi-path I/O and sharing
	RESCAP   uint8         // @31 reservation capabilities
	FPI      uint8         // @32 format progress indicator
	DLFEAT   uint8         // @33 deallocate logical block features
	NAWUN    uint16        // @34 namespace atomic write unit normal, 0's based
	NAWUPF   uint16        // @36 namespace atomic write unit power fail, 0's based
	NACWU    uint16        // @38 namespace atomic compare & write unit, 0's based
	NABSN    uint16        // @40 namespace atomic boundary size normal
	NABO     uint16        // @42 namespace atomic boundary offset
	NABSPF   uint16        // @44 namespace atomic boundary size power fail
	NOIOB    uint16        // @46 namespace optimal I/O boundary, blocks
	NVMCAP   Uint128       // @48 NVM capacity, bytes
	NPWG     uint16        // @64 preferred write granularity, 0's based blocks
	NPWA     uint16        // @66 preferred write alignment, 0's based blocks
	NPDG     uint16        // @68 preferred deallocate granularity, 0's based blocks
	NPDA     uint16        // @70 preferred deallocate alignment, 0's based blocks
	NOWS     uint16        // @72 optimal write size, 0's based blocks
	MSSRL    uint16        // @74 maximum single source range length (Copy)
	MCL      uint32        // @76 maximum copy length
	MSRC     uint8         // @80 maximum source range count, 0's based
	ANAGRPID uint32        // @92 ANA group identifier
	NSATTR   uint8         // @99 namespace attributes
	NVMSETID uint16        // @100 NVM set identifier
	ENDGID   uint16        // @102 endurance group identifier
	NGUID    [16]byte      // @104 namespace globally unique identifier
	EUI64    [8]byte       // @120 IEEE extended unique identifier
	LBAF     [64]LBAFormat // @128 LBA formats 0..63, 4 bytes each
}

// MarshalTo writes the structure to b; bytes it does not represent are zeroed.
func (n *IdentifyNamespace) MarshalTo(b *[IdentifyLen]byte) {
	*b = [IdentifyLen]byte{}
	le.PutUint64(b[0:], n.NSZE)
	le.PutUint64(b[8:], n.NCAP)
	le.PutUint64(b[16:], n.NUSE)
	b[24], b[25], b[26], b[27] = n.NSFEAT, n.NLBAF, n.FLBAS, n.MC
	b[28], b[29], b[30], b[31] = n.DPC, n.DPS, n.NMIC, n.RESCAP
	b[32], b[33] = n.FPI, n.DLFEAT
	for i, v := range [...]uint16{n.NAWUN, n.NAWUPF, n.NACWU, n.NABSN, n.NABO, n.NABSPF,
		n.NOIOB} {
		le.PutUint16(b[34+2*i:], v)
	}
	putU128(b[48:], n.NVMCAP)
	for i, v := range [...]uint16{n.NPWG, n.NPWA, n.NPDG, n.NPDA, n.NOWS, n.MSSRL} {
		le.PutUint16(b[64+2*i:], v)
	}
	le.PutUint32(b[76:], n.MCL)
	b[80] = n.MSRC
	le.PutUint32(b[92:], n.ANAGRPID)
	b[99] = n.NSATTR
	le.PutUint16(b[100:], n.NVMSETID)
	le.PutUint16(b[102:], n.ENDGID)
	copy(b[104:120], n.NGUID[:])
	copy(b[120:128], n.EUI64[:])
	for i, f := range n.LBAF {
		o := 128 + 4*i
		le.PutUint16(b[o:], f.MS)
		b[o+2], b[o+3] = f.LBADS, f.RP
	}
}

// Unmarshal reads the structure from b.
func (n *IdentifyNamespace) Unmarshal(b *[IdentifyLen]byte) {
	*n = IdentifyNamespace{
		NSZE: le.Uint64(b[0:]), NCAP: le.Uint64(b[8:]), NUSE: le.Uint64(b[16:]),
		NSFEAT: b[24], NLBAF: b[25], FLBAS: b[26], MC: b[27],
		DPC: b[28], DPS: b[29], NMIC: b[30], RESCAP: b[31], FPI: b[32], DLFEAT: b[33],
		NAWUN: le.Uint16(b[34:]), NAWUPF: le.Uint16(b[36:]), NACWU: le.Uint16(b[38:]),
		NABSN: le.Uint16(b[40:]), NABO: le.Uint16(b[42:]), NABSPF: le.Uint16(b[44:]),
		NOIOB:  le.Uint16(b[46:]),
		NVMCAP: getU128(b[48:]),
		NPWG:   le.Uint16(b[64:]), NPWA: le.Uint16(b[66:]), NPDG: le.Uint16(b[68:]),
		NPDA: le.Uint16(b[70:]), NOWS: le.Uint16(b[72:]), MSSRL: le.Uint16(b[74:]),
		MCL: le.Uint32(b[76:]), MSRC: b[80],
		ANAGRPID: le.Uint32(b[92:]), NSATTR: b[99],
		NVMSETID: le.Uint16(b[100:]), ENDGID: le.Uint16(b[102:]),
	}
	copy(n.NGUID[:], b[104:120])
	copy(n.EUI64[:], b[120:128])
	for i := range n.LBAF {
		o := 128 + 4*i
		n.LBAF[i] = LBAFormat{MS: le.Uint16(b[o:]), LBADS: b[o+2], RP: b[o+3]}
	}
}

// FormatIndex returns the LBA format in use: FLBAS bits 3:0, plus bits 6:5 as the high
// bits when more than 16 formats exist (NVM §4.1.5.1).
func (n *IdentifyNamespace) FormatIndex() int {
	idx := int(n.FLBAS & FLBASIndexMask)
	if n.NLBAF >= 16 {
		idx |= int(n.FLBAS>>5&0x3) << 4
	}
	return idx
}

// BlockSize returns the data size of the LBA format in use, in bytes; 0 if LBADS is
// outside the 9..31 the spec allows.
func (n *IdentifyNamespace) BlockSize() uint32 {
	ds := n.LBAF[n.FormatIndex()].LBADS
	if ds < 9 || ds > 31 {
		return 0
	}
	return 1 << ds
}

// NSListLen is the number of entries of a namespace list (Identify CNS 02h, Changed
// Namespace List log 04h): 4096 bytes of u32 NSIDs.
const NSListLen = 1024

// ChangedNSListOverflow in entry 0 of the Changed Namespace List means more than 1024
// namespaces changed (Base §5.16.1.5).
const ChangedNSListOverflow uint32 = 0xFFFFFFFF

// NSList is a namespace list: up to 1024 NSIDs, terminated by a zero entry or the end
// of the 4096 bytes (Base §5.17.2.2 for CNS 02h; Figure "Changed Namespace List Log").
type NSList struct {
	N   int // entries in use
	IDs [NSListLen]uint32
}

// MarshalTo writes the N entries and zero-fills the rest.
func (l *NSList) MarshalTo(b *[IdentifyLen]byte) {
	*b = [IdentifyLen]byte{}
	for i := 0; i < l.N && i < NSListLen; i++ {
		le.PutUint32(b[4*i:], l.IDs[i])
	}
}

// Unmarshal reads entries up to the first zero.
func (l *NSList) Unmarshal(b *[IdentifyLen]byte) {
	*l = NSList{}
	for i := range NSListLen {
		id := le.Uint32(b[4*i:])
		if id == 0 {
			return
		}
		l.IDs[i] = id
		l.N++
	}
}

// List returns the entries in use.
func (l *NSList) List() []uint32 { return l.IDs[:l.N] }

// ActiveNSList fills l for Identify CNS 02h: the active NSIDs greater than after, in
// increasing order, at most 1024 (Base §5.17.2.2). active must be sorted ascending.
// NSIDs FFFFFFFEh and FFFFFFFFh are never listed.
func ActiveNSList(l *NSList, active []uint32, after uint32) {
	*l = NSList{}
	for _, id := range active {
		if id <= after || id >= 0xFFFFFFFE {
			continue
		}
		if l.N == NSListLen {
			return
		}
		l.IDs[l.N] = id
		l.N++
	}
}

// Namespace Identification Descriptor types (Base §5.17.2.3, Figure "Namespace
// Identifier Type").
const (
	NIDTEUI64 uint8 = 1 // 8 bytes
	NIDTNGUID uint8 = 2 // 16 bytes
	NIDTUUID  uint8 = 3 // 16 bytes
	NIDTCSI   uint8 = 4 // 1 byte: command set identifier
)

// CSI values (Base Figure "Command Set Identifiers").
const (
	CSINVM uint8 = 0
	CSIKV  uint8 = 1
	CSIZNS uint8 = 2
)

// nidLen returns the fixed NIDL of a known descriptor type.
func nidLen(nidt uint8) (int, bool) {
	switch nidt {
	case NIDTEUI64:
		return 8, true
	case NIDTNGUID, NIDTUUID:
		return 16, true
	case NIDTCSI:
		return 1, true
	}
	return 0, false
}

// NSIDDescriptor is one Namespace Identification Descriptor (CNS 03h): NIDT u8 @0,
// NIDL u8 @1, reserved u16 @2, NID[NIDL] @4.
type NSIDDescriptor struct {
	NIDT uint8
	NID  [16]byte // first NIDL bytes in use; NIDL follows from NIDT
}

// ErrNSIDDescriptor reports a malformed Namespace Identification Descriptor list.
var ErrNSIDDescriptor = errors.New("nvme: malformed namespace identification descriptor")

// DecodeNSIDDescriptors parses a descriptor list (CNS 03h). The list ends at a zero
// NIDT or at the end of b. Unknown descriptor types are skipped by their NIDL; a known
// type with the wrong NIDL, or a descriptor running past b, is ErrNSIDDescriptor.
func DecodeNSIDDescriptors(b []byte) ([]NSIDDescriptor, error) {
	var out []NSIDDescriptor
	for off := 0; off+4 <= len(b); {
		nidt, nidl := b[off], int(b[off+1])
		if nidt == 0 {
			break
		}
		if off+4+nidl > len(b) {
			return nil, ErrNSIDDescriptor
		}
		want, known := nidLen(nidt)
		if known && nidl != want {
			return nil, ErrNSIDDescriptor
		}
		if known {
			d := NSIDDescriptor{NIDT: nidt}
			copy(d.NID[:], b[off+4:off+4+nidl])
			out = append(out, d)
		}
		off += 4 + nidl
	}
	return out, nil
}

// MarshalNSIDDescriptors writes a descriptor list into b, zero-filling the rest.
// Unknown types are an error, as is a list that does not fit.
func MarshalNSIDDescriptors(b *[IdentifyLen]byte, ds []NSIDDescriptor) error {
	*b = [IdentifyLen]byte{}
	off := 0
	for _, d := range ds {
		n, ok := nidLen(d.NIDT)
		if !ok || off+4+n > IdentifyLen {
			return ErrNSIDDescriptor
		}
		b[off], b[off+1] = d.NIDT, uint8(n)
		copy(b[off+4:off+4+n], d.NID[:n])
		off += 4 + n
	}
	return nil
}
