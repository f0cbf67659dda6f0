package scsi

// VPD page codes a block target serves (SPC-4 §7.8, SBC-3 §6.5).
const (
	VPDSupportedPages             uint8 = 0x00
	VPDUnitSerialNumber           uint8 = 0x80
	VPDDeviceIdentification       uint8 = 0x83
	VPDExtendedInquiry            uint8 = 0x86
	VPDBlockLimits                uint8 = 0xB0
	VPDBlockDeviceCharacteristics uint8 = 0xB1
	VPDLogicalBlockProvisioning   uint8 = 0xB2
)

// appendVPDHeader appends the 4-byte VPD page header (SPC-4 §7.8.1): peripheral @0,
// PAGE CODE @1, PAGE LENGTH @2-3 (patched by endVPD). It returns the page's start.
func appendVPDHeader(b []byte, p Peripheral, page uint8) ([]byte, int) {
	return append(b, byte(p), page, 0, 0), len(b)
}

// endVPD sets PAGE LENGTH to the bytes after the header.
func endVPD(b []byte, start int) []byte {
	be.PutUint16(b[start+2:], uint16(len(b)-start-4))
	return b
}

// AppendSupportedVPDPages appends the Supported VPD Pages page (SPC-4 §7.8.13). pages
// must list every page the target serves, 00h included, in ascending order (libiscsi
// Inquiry.VPDPageCodesSorted reads each one back); out-of-order input panics.
func AppendSupportedVPDPages(b []byte, p Peripheral, pages []uint8) []byte {
	for i := 1; i < len(pages); i++ {
		if pages[i] <= pages[i-1] {
			panic("scsi: supported VPD pages not strictly ascending")
		}
	}
	b, start := appendVPDHeader(b, p, VPDSupportedPages)
	b = append(b, pages...)
	return endVPD(b, start)
}

// AppendUnitSerialNumber appends the Unit Serial Number page (SPC-4 §7.8.15): the
// PRODUCT SERIAL NUMBER @4 in ASCII (libiscsi reads its length from byte 3 only, so
// serials longer than 255 bytes are cut to 255).
func AppendUnitSerialNumber(b []byte, p Peripheral, serial string) []byte {
	b, start := appendVPDHeader(b, p, VPDUnitSerialNumber)
	n := min(len(serial), 255)
	at := len(b)
	b = append(b, make([]byte, n)...)
	PutASCII(b[at:], serial)
	return endVPD(b, start)
}

// Designation descriptor fields (SPC-4 §7.8.6.1, table "Designation descriptor").
const (
	codeSetBinary = 0x1
	codeSetASCII  = 0x2
	codeSetUTF8   = 0x3

	assocLU           = 0x0 << 4
	assocTargetPort   = 0x1 << 4
	assocTargetDevice = 0x2 << 4
	desigPIV          = 0x80

	desigT10Vendor   = 0x1
	desigEUI64       = 0x2
	desigNAA         = 0x3
	desigRelTgtPort  = 0x4
	desigTgtPortGrp  = 0x5
	desigSCSINameStr = 0x8
)

// DeviceIdentification is the input of the Device Identification page (SPC-4 §7.8.6).
// Zero fields are left out. The LU designators come from the volume (DESIGN.md: a
// volume owns its NAA and EUI-64), the port designators from the iSCSI target port.
type DeviceIdentification struct {
	// NAA is a 16-byte NAA IEEE Registered Extended designator (NAA 6h): ESXi's
	// naa.*, the Linux WWID and the Windows cluster disk identity. See
	// [NAARegisteredExtended].
	NAA [16]byte
	// EUI64 is an 8-byte EUI-64 designator.
	EUI64 [8]byte
	// T10VendorID (8 characters, space padded) and T10VendorSpecific form the T10
	// vendor ID based designator; empty T10VendorID leaves it out.
	T10VendorID       string
	T10VendorSpecific string
	// RelativeTargetPort is the RELATIVE TARGET PORT IDENTIFIER (1-based; 0 leaves the
	// designator out). PR READ FULL STATUS reports the same number.
	RelativeTargetPort uint16
	// TargetPortGroup is the TARGET PORT GROUP, reported when HasTargetPortGroup (set
	// it together with TPGS in standard INQUIRY).
	TargetPortGroup    uint16
	HasTargetPortGroup bool
	// TargetPortName is the SCSI name string of the target port,
	// "iqn.2024-01.dev.sluice:vol0,t,0x0001".
	TargetPortName string
	// TargetName is the SCSI name string of the target device, the iSCSI target name.
	TargetName string
}

// NAARegisteredExtended builds a 16-byte NAA IEEE Registered Extended designator (SPC-4
// §7.8.6.6.5): NAA 6h in bits 127:124, the 24-bit IEEE company ID (OUI) in bits 123:100,
// and the low 100 bits of the volume's 16-byte identity (an NGUID or UUID) as the vendor
// specific identifier and its extension. Identities that differ only in their top 28
// bits collide; random (v4) UUIDs and NGUIDs keep their entropy in the low bits.
func NAARegisteredExtended(oui uint32, identity [16]byte) [16]byte {
	d := identity
	d[0] = 0x60 | byte(oui>>20)&0x0F
	d[1] = byte(oui >> 12)
	d[2] = byte(oui >> 4)
	d[3] = byte(oui)<<4 | identity[3]&0x0F
	return d
}

// Append appends the Device Identification page for peripheral p.
func (d *DeviceIdentification) Append(b []byte, p Peripheral) []byte {
	b, start := appendVPDHeader(b, p, VPDDeviceIdentification)
	if d.NAA != [16]byte{} {
		b = appendDesignator(b, codeSetBinary, assocLU|desigNAA, d.NAA[:])
	}
	if d.EUI64 != [8]byte{} {
		b = appendDesignator(b, codeSetBinary, assocLU|desigEUI64, d.EUI64[:])
	}
	if d.T10VendorID != "" {
		v := make([]byte, 8+len(d.T10VendorSpecific))
		PutASCII(v[:8], d.T10VendorID)
		PutASCII(v[8:], d.T10VendorSpecific)
		b = appendDesignator(b, codeSetASCII, assocLU|desigT10Vendor, v[:min(len(v), 255)])
	}
	// Port and device designators carry PIV=1 and PROTOCOL IDENTIFIER 5h (iSCSI).
	const iscsi = protocolISCSI << 4
	if d.RelativeTargetPort != 0 {
		v := [4]byte{2: byte(d.RelativeTargetPort >> 8), 3: byte(d.RelativeTargetPort)}
		b = appendDesignator(b, iscsi|codeSetBinary, desigPIV|assocTargetPort|desigRelTgtPort, v[:])
	}
	if d.HasTargetPortGroup {
		v := [4]byte{2: byte(d.TargetPortGroup >> 8), 3: byte(d.TargetPortGroup)}
		b = appendDesignator(b, iscsi|codeSetBinary, desigPIV|assocTargetPort|desigTgtPortGrp, v[:])
	}
	if d.TargetPortName != "" {
		b = appendSCSIName(b, desigPIV|assocTargetPort, d.TargetPortName)
	}
	if d.TargetName != "" {
		b = appendSCSIName(b, desigPIV|assocTargetDevice, d.TargetName)
	}
	return endVPD(b, start)
}

// appendDesignator appends one designation descriptor: PROTOCOL IDENTIFIER/CODE SET @0,
// PIV/ASSOCIATION/DESIGNATOR TYPE @1, DESIGNATOR LENGTH @3, the designator @4.
func appendDesignator(b []byte, codeSet, kind byte, v []byte) []byte {
	b = append(b, codeSet, kind, 0, byte(len(v)))
	return append(b, v...)
}

// appendSCSIName appends a SCSI name string designator (SPC-4 §7.8.6.11): UTF-8,
// null-terminated, null-padded to a multiple of 4 bytes, at most 256 bytes (names are
// cut to fit).
func appendSCSIName(b []byte, kind byte, name string) []byte {
	name = name[:min(len(name), 251)]
	n := (len(name) + 1 + 3) &^ 3
	b = append(b, protocolISCSI<<4|codeSetUTF8, kind|desigSCSINameStr, 0, byte(n))
	b = append(b, name...)
	return append(b, make([]byte, n-len(name))...)
}

// ExtendedInquiry is the Extended INQUIRY Data page (SPC-4 §7.8.7); ESXi warns when a
// target lacks it (spdk/spdk#405).
type ExtendedInquiry struct {
	UASKSup  bool  // @5 bit 5
	GroupSup bool  // @5 bit 4
	PriorSup bool  // @5 bit 3
	HeadSup  bool  // @5 bit 2: HEAD OF QUEUE task attribute
	OrdSup   bool  // @5 bit 1: ORDERED
	SimpSup  bool  // @5 bit 0: SIMPLE
	WUSup    bool  // @6 bit 3
	CRDSup   bool  // @6 bit 2
	NVSup    bool  // @6 bit 1: non-volatile cache
	VSup     bool  // @6 bit 0: volatile cache
	LUICLR   bool  // @7 bit 0: unit attentions cleared per I_T nexus
	MaxSense uint8 // @13 MAXIMUM SUPPORTED SENSE DATA LENGTH; 0: not reported
}

// extendedInquiryLen is PAGE LENGTH of the Extended INQUIRY Data page.
const extendedInquiryLen = 0x3C

// Append appends the Extended INQUIRY Data page.
func (e *ExtendedInquiry) Append(b []byte, p Peripheral) []byte {
	b, start := appendVPDHeader(b, p, VPDExtendedInquiry)
	b = append(b, make([]byte, extendedInquiryLen)...)
	v := b[start+4:]
	v[1] = bit(e.UASKSup, 5) | bit(e.GroupSup, 4) | bit(e.PriorSup, 3) | bit(e.HeadSup, 2) |
		bit(e.OrdSup, 1) | bit(e.SimpSup, 0)
	v[2] = bit(e.WUSup, 3) | bit(e.CRDSup, 2) | bit(e.NVSup, 1) | bit(e.VSup, 0)
	v[3] = bit(e.LUICLR, 0)
	v[9] = e.MaxSense
	return endVPD(b, start)
}

// BlockLimits is the Block Limits page (SBC-3 §6.5.3) and, through limits.go, the limits
// the command layer enforces, so what is advertised and what is checked cannot drift.
// Lengths are in logical blocks; 0 means "no limit reported".
type BlockLimits struct {
	WSNZ                       bool   // @4 bit 0: WRITE SAME with 0 blocks is refused
	MaxCompareAndWriteLength   uint8  // @5 (ATS needs ≥ 1)
	OptimalTransferGranularity uint16 // @6
	MaxTransferLength          uint32 // @8 (libiscsi issues 256-block commands)
	OptimalTransferLength      uint32 // @12
	MaxPrefetchLength          uint32 // @16
	MaxUnmapLBACount           uint32 // @20 (must be non-zero when LBPU=1)
	MaxUnmapDescriptors        uint32 // @24 (must be non-zero when LBPU=1)
	OptimalUnmapGranularity    uint32 // @28
	UGAValid                   bool   // @32 bit 31
	UnmapGranularityAlignment  uint32 // @32 bits 30:0
	MaxWriteSameLength         uint64 // @36
	// The SBC-4 atomic write fields. MaxAtomicTransferLength 0 says WRITE ATOMIC is not
	// offered (libiscsi WriteAtomic16.VPD checks the fields agree with the command).
	MaxAtomicTransferLength             uint32 // @44
	AtomicAlignment                     uint32 // @48: 0, no alignment required
	AtomicTransferLengthGranularity     uint32 // @52: 0, no granularity required
	MaxAtomicTransferLengthWithBoundary uint32 // @56
	MaxAtomicBoundarySize               uint32 // @60: 0, ATOMIC BOUNDARY not supported
}

// blockLimitsLen is PAGE LENGTH of the SBC-3 Block Limits page; libiscsi
// Inquiry.BlockLimits requires 3Ch when SBC-3 is claimed. SBC-4 put the atomic write
// fields in its last 20 bytes, reserved in SBC-3.
const blockLimitsLen = 0x3C

// Append appends the Block Limits page.
func (l *BlockLimits) Append(b []byte, p Peripheral) []byte {
	b, start := appendVPDHeader(b, p, VPDBlockLimits)
	b = append(b, make([]byte, blockLimitsLen)...)
	v := b[start:]
	v[4] = bit(l.WSNZ, 0)
	v[5] = l.MaxCompareAndWriteLength
	be.PutUint16(v[6:], l.OptimalTransferGranularity)
	be.PutUint32(v[8:], l.MaxTransferLength)
	be.PutUint32(v[12:], l.OptimalTransferLength)
	be.PutUint32(v[16:], l.MaxPrefetchLength)
	be.PutUint32(v[20:], l.MaxUnmapLBACount)
	be.PutUint32(v[24:], l.MaxUnmapDescriptors)
	be.PutUint32(v[28:], l.OptimalUnmapGranularity)
	uga := l.UnmapGranularityAlignment & 0x7FFFFFFF
	if l.UGAValid {
		uga |= 1 << 31
	}
	be.PutUint32(v[32:], uga)
	be.PutUint64(v[36:], l.MaxWriteSameLength)
	be.PutUint32(v[44:], l.MaxAtomicTransferLength)
	be.PutUint32(v[48:], l.AtomicAlignment)
	be.PutUint32(v[52:], l.AtomicTransferLengthGranularity)
	be.PutUint32(v[56:], l.MaxAtomicTransferLengthWithBoundary)
	be.PutUint32(v[60:], l.MaxAtomicBoundarySize)
	return endVPD(b, start)
}

// BlockDeviceCharacteristics is the Block Device Characteristics page (SBC-3 §6.5.2).
type BlockDeviceCharacteristics struct {
	RotationRate uint16 // @4 MEDIUM ROTATION RATE: 1 = non-rotating (solid state)
	ProductType  uint8  // @6
	WABEREQ      uint8  // @7 bits 7:6: reads after a SANITIZE BLOCK ERASE (01b: succeed)
	WACEREQ      uint8  // @7 bits 5:4: reads after a SANITIZE CRYPTOGRAPHIC ERASE
	FormFactor   uint8  // @7 bits 3:0 NOMINAL FORM FACTOR
	FUAB         bool   // @8 bit 1
	VBULS        bool   // @8 bit 0
}

// RotationNonRotating is MEDIUM ROTATION RATE for solid-state media.
const RotationNonRotating = 0x0001

const blockDeviceCharacteristicsLen = 0x3C

// Append appends the Block Device Characteristics page.
func (c *BlockDeviceCharacteristics) Append(b []byte, p Peripheral) []byte {
	b, start := appendVPDHeader(b, p, VPDBlockDeviceCharacteristics)
	b = append(b, make([]byte, blockDeviceCharacteristicsLen)...)
	v := b[start:]
	be.PutUint16(v[4:], c.RotationRate)
	v[6] = c.ProductType
	v[7] = (c.WABEREQ&3)<<6 | (c.WACEREQ&3)<<4 | c.FormFactor&0x0F
	v[8] = bit(c.FUAB, 1) | bit(c.VBULS, 0)
	return endVPD(b, start)
}

// Provisioning types, Logical Block Provisioning page @6 bits 2:0 (SBC-3 table
// "PROVISIONING TYPE field").
const (
	ProvisioningFull     = 0x0
	ProvisioningResource = 0x1
	ProvisioningThin     = 0x2
)

// LogicalBlockProvisioning is the Logical Block Provisioning page (SBC-3 §6.5.4). Keep
// it consistent with READ CAPACITY(16) LBPME/LBPRZ: libiscsi Unmap.VPD and
// WriteSame*.UnmapVPD fail a target that implements UNMAP (or WRITE SAME with UNMAP)
// without LBPME=1 and LBPU (LBPWS, LBPWS10) set, and the other way round.
type LogicalBlockProvisioning struct {
	ThresholdExponent   uint8 // @4
	LBPU                bool  // @5 bit 7: UNMAP supported
	LBPWS               bool  // @5 bit 6: WRITE SAME(16) with UNMAP supported
	LBPWS10             bool  // @5 bit 5: WRITE SAME(10) with UNMAP supported
	LBPRZ               bool  // @5 bit 2: unmapped blocks read as zeros
	ANCSup              bool  // @5 bit 1: ANCHOR supported
	MinimumPercentage   uint8 // @6 bits 7:3
	ProvisioningType    uint8 // @6 bits 2:0
	ThresholdPercentage uint8 // @7
}

// Append appends the Logical Block Provisioning page: PAGE LENGTH 4, with no
// provisioning group descriptor (DP=0).
func (l *LogicalBlockProvisioning) Append(b []byte, p Peripheral) []byte {
	b, start := appendVPDHeader(b, p, VPDLogicalBlockProvisioning)
	b = append(b, l.ThresholdExponent,
		bit(l.LBPU, 7)|bit(l.LBPWS, 6)|bit(l.LBPWS10, 5)|bit(l.LBPRZ, 2)|bit(l.ANCSup, 1),
		l.MinimumPercentage<<3|l.ProvisioningType&0x07, l.ThresholdPercentage)
	return endVPD(b, start)
}
