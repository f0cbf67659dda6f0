package scsi

import "errors"

// SELECT REPORT values of REPORT LUNS @2 (SPC-4 table "SELECT REPORT field").
const (
	// SelectReportLUNs lists the logical units, well-known ones excepted.
	SelectReportLUNs uint8 = 0x00
	// SelectReportWellKnown lists only well-known logical units (this target has none).
	SelectReportWellKnown uint8 = 0x01
	// SelectReportAll lists every logical unit.
	SelectReportAll uint8 = 0x02
)

// LUNLen is the size of a LUN field, in REPORT LUNS data and in the iSCSI BHS.
const LUNLen = 8

// MaxLUN is the highest LUN this package encodes: the 14 bits of flat space addressing.
const MaxLUN = 0x3FFF

// Address methods, LUN byte 0 bits 7:6 (SAM-5 table "ADDRESS METHOD field").
const (
	addrPeripheral = 0x0
	addrFlat       = 0x1
)

// EncodeLUN returns the single-level 8-byte LUN of lun (SAM-5 §4.7): peripheral device
// addressing (bus 0) up to 255, as Linux and Windows expect for small LUNs, and flat
// space addressing up to 16383. Larger values are a programming error and panic.
func EncodeLUN(lun uint16) [LUNLen]byte {
	var b [LUNLen]byte
	switch {
	case lun <= 0xFF:
		b[1] = byte(lun) // @0 ADDRESS METHOD 00b, BUS IDENTIFIER 0; @1 TARGET OR LUN
	case lun <= MaxLUN:
		b[0], b[1] = addrFlat<<6|byte(lun>>8), byte(lun) // @0-1 ADDRESS METHOD 01b, FLAT LUN
	default:
		panic("scsi: LUN above flat space addressing")
	}
	return b
}

// ErrLUNFormat is returned for an 8-byte LUN this target cannot address: a second level,
// a non-zero bus, or the logical unit or extended address methods. The command layer
// answers such commands LOGICAL UNIT NOT SUPPORTED.
var ErrLUNFormat = errors.New("scsi: unsupported LUN address format")

// DecodeLUN returns the LUN of an 8-byte single-level LUN field in the peripheral (bus 0)
// or flat space address method. On error the LUN is 0.
func DecodeLUN(b [LUNLen]byte) (uint16, error) {
	if b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
		return 0, ErrLUNFormat // SAM-5 §4.7.3: levels 2-4 must be zero for one level
	}
	switch b[0] >> 6 {
	case addrPeripheral:
		if b[0]&0x3F != 0 {
			return 0, ErrLUNFormat
		}
		return uint16(b[1]), nil
	case addrFlat:
		return uint16(b[0]&0x3F)<<8 | uint16(b[1]), nil
	}
	return 0, ErrLUNFormat
}

// AppendReportLUNs appends REPORT LUNS parameter data (SPC-4 §6.33): LUN LIST LENGTH @0
// (8 bytes per LUN, for the whole list however the allocation length cuts it), 4
// reserved bytes, then the 8-byte LUNs. LUNs must be unique (libiscsi ReportLuns.Simple
// checks). REPORT LUNS is answered through LUN 0 even when no logical unit is mapped
// there (SPC-4 §6.33); listing LUN 0 then is the caller's choice, as LIO does.
func AppendReportLUNs(b []byte, luns []uint16) []byte {
	b = be.AppendUint32(b, uint32(LUNLen*len(luns)))
	b = append(b, 0, 0, 0, 0)
	for _, l := range luns {
		e := EncodeLUN(l)
		b = append(b, e[:]...)
	}
	return b
}
