package scsi

// Peripheral is byte 0 of standard INQUIRY data and of every VPD page: PERIPHERAL
// QUALIFIER in bits 7:5, PERIPHERAL DEVICE TYPE in bits 4:0 (SPC-4 §6.4.2).
type Peripheral uint8

// Peripheral values a block target reports.
const (
	// PeripheralDisk is a connected direct access block device (PQ 000b, PDT 00h).
	PeripheralDisk Peripheral = 0x00
	// PeripheralNoLUN answers INQUIRY to a LUN that does not exist: PQ 011b ("not
	// capable of supporting a logical unit") and PDT 1Fh (SPC-4 §6.4.2).
	PeripheralNoLUN Peripheral = 0x7F
)

// Qualifier returns the PERIPHERAL QUALIFIER.
func (p Peripheral) Qualifier() uint8 { return uint8(p) >> 5 }

// DeviceType returns the PERIPHERAL DEVICE TYPE.
func (p Peripheral) DeviceType() uint8 { return uint8(p) & 0x1F }

// Standard INQUIRY constants (SPC-4 §6.4.2).
const (
	// StandardInquiryLen is the length this package writes: through the eight version
	// descriptors @58-73 and the reserved bytes to @95, as SPDK and LIO do.
	StandardInquiryLen = 96
	// VersionSPC4 claims SPC-4 in VERSION @2; libiscsi accepts 4, 5 and 6 and reads
	// 5 or 6 as "supports 16-bit allocation lengths".
	VersionSPC4 = 0x06
	// responseDataFormat is RESPONSE DATA FORMAT @3 bits 3:0, 2 since SPC-2.
	responseDataFormat = 0x2
)

// Version descriptors (SPC-4 table "Version descriptor values"). libiscsi looks for SPC
// and SBC ones (Inquiry.VersionDescriptors), and enables its SBC-3 checks (Block Limits
// page length 3Ch) only when one of 04C0h/04C3h/04C5h/04C8h is present.
const (
	VersionDescriptorSAM5  uint16 = 0x00A0
	VersionDescriptorSPC4  uint16 = 0x0460
	VersionDescriptorSBC3  uint16 = 0x04C0
	VersionDescriptorISCSI uint16 = 0x0960
)

// TPGS values, standard INQUIRY @5 bits 5:4 (SPC-4 §6.4.2): which kind of asymmetric
// logical unit access is supported.
const (
	TPGSNone     = 0x0
	TPGSImplicit = 0x1
	TPGSExplicit = 0x2
	TPGSBoth     = 0x3
)

// StandardInquiry is standard INQUIRY data (SPC-4 §6.4.2, table "Standard INQUIRY data
// format"). Strings are written left-aligned and space-padded, with characters outside
// 20h-7Eh replaced by '_' (SPC-4 §4.4.1; libiscsi Inquiry.Standard checks).
type StandardInquiry struct {
	Peripheral     Peripheral // @0
	RMB            bool       // @1 bit 7: removable medium
	Version        uint8      // @2
	NormACA        bool       // @3 bit 5
	HiSup          bool       // @3 bit 4: hierarchical LUN addressing
	SCCS           bool       // @5 bit 7
	ACC            bool       // @5 bit 6
	TPGS           uint8      // @5 bits 5:4
	ThirdPartyCopy bool       // @5 bit 3 3PC
	Protect        bool       // @5 bit 0
	EncServ        bool       // @6 bit 6
	MultiP         bool       // @6 bit 4
	CmdQue         bool       // @7 bit 1
	Vendor         string     // @8-15 T10 VENDOR IDENTIFICATION
	Product        string     // @16-31 PRODUCT IDENTIFICATION
	Revision       string     // @32-35 PRODUCT REVISION LEVEL
	// VersionDescriptors @58-73; zero entries are unused slots.
	VersionDescriptors [8]uint16
}

// Append appends the 96-byte standard INQUIRY data to b. ADDITIONAL LENGTH @4 is 91, the
// bytes after @4, whatever the allocation length later cuts (libiscsi Inquiry.Standard
// checks it against the data it gets).
func (s *StandardInquiry) Append(b []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, StandardInquiryLen)...)
	p := b[start:]
	p[0] = byte(s.Peripheral)
	p[1] = bit(s.RMB, 7)
	p[2] = s.Version
	p[3] = bit(s.NormACA, 5) | bit(s.HiSup, 4) | responseDataFormat
	p[4] = StandardInquiryLen - 5
	p[5] = bit(s.SCCS, 7) | bit(s.ACC, 6) | (s.TPGS&3)<<4 | bit(s.ThirdPartyCopy, 3) |
		bit(s.Protect, 0)
	p[6] = bit(s.EncServ, 6) | bit(s.MultiP, 4)
	p[7] = bit(s.CmdQue, 1)
	PutASCII(p[8:16], s.Vendor)
	PutASCII(p[16:32], s.Product)
	PutASCII(p[32:36], s.Revision)
	for i, d := range s.VersionDescriptors {
		be.PutUint16(p[58+2*i:], d)
	}
	return b
}

// NoLUN returns the INQUIRY data to answer for a LUN the target does not have: the same
// identification with PQ 011b and PDT 1Fh, and no logical unit capabilities.
func (s StandardInquiry) NoLUN() StandardInquiry {
	s.Peripheral = PeripheralNoLUN
	s.RMB, s.Protect, s.ThirdPartyCopy, s.TPGS = false, false, false, TPGSNone
	return s
}

// PutASCII writes s left-aligned into dst and pads it with spaces (SPC-4 §4.4.1), the
// format of INQUIRY and VPD ASCII fields. Longer strings are cut; bytes outside 20h-7Eh
// become '_', so no field leaks binary data.
func PutASCII(dst []byte, s string) {
	for i := range dst {
		c := byte(' ')
		if i < len(s) {
			c = s[i]
			if c < 0x20 || c > 0x7E {
				c = '_'
			}
		}
		dst[i] = c
	}
}

// Truncate cuts parameter data to the ALLOCATION LENGTH of the CDB (SPC-4 §4.2.5.6):
// the device server transfers min(allocation length, available) bytes and a short
// allocation length is never an error. Length fields inside the data keep describing
// the whole data, which is how initiators learn to ask again with more room.
func Truncate(data []byte, allocationLength uint32) []byte {
	if uint64(len(data)) > uint64(allocationLength) {
		return data[:allocationLength]
	}
	return data
}
