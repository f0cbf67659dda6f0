package scsi

// DEFECT LIST FORMAT values (SBC-3 table "DEFECT LIST FORMAT field"); 001b, 010b and
// 111b are reserved.
const (
	DefectFormatShortBlock     uint8 = 0x0
	DefectFormatLongBlock      uint8 = 0x3
	DefectFormatBytesFromIndex uint8 = 0x4
	DefectFormatPhysicalSector uint8 = 0x5
	DefectFormatVendor         uint8 = 0x6
)

// AppendReadDefectData appends READ DEFECT DATA (10) or (12) parameter data, by c's
// opcode, for a logical unit without defects: the header alone, in the requested DEFECT
// LIST FORMAT, with PLISTV and GLISTV set for the lists requested (each is returned, and
// empty) and DEFECT LIST LENGTH 0. The (10) header (SBC-3 §5.13.2) is PLISTV @1 bit 4,
// GLISTV @1 bit 3, DEFECT LIST FORMAT @1 bits 2:0 and DEFECT LIST LENGTH @2-3; the (12)
// header (SBC-3 §5.14.2) has the same byte 1, GENERATION CODE @2-3 (0: not reported)
// and DEFECT LIST LENGTH @4-7.
func AppendReadDefectData(b []byte, c *CDB) []byte {
	b = append(b, 0, bit(c.ReqPList, 4)|bit(c.ReqGList, 3)|c.DefectListFormat&0x07, 0, 0)
	if c.Opcode == OpReadDefectData12 {
		b = append(b, 0, 0, 0, 0)
	}
	return b
}
