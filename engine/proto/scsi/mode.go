package scsi

// Mode page codes of a block device (SPC-4 §7.5, SBC-3 §6.4) and the codes that select
// all pages and all subpages in MODE SENSE.
const (
	ModePageReadWriteErrorRecovery  uint8 = 0x01
	ModePageCaching                 uint8 = 0x08
	ModePageControl                 uint8 = 0x0A
	ModePageInformationalExceptions uint8 = 0x1C
	ModePageAll                     uint8 = 0x3F
	ModeSubpageAll                  uint8 = 0xFF
)

// Page control values, MODE SENSE @2 bits 7:6 (SPC-4 table "Page control (PC) field").
const (
	PageControlCurrent    = 0x0
	PageControlChangeable = 0x1
	PageControlDefault    = 0x2
	PageControlSaved      = 0x3
)

// ModePage is one mode page as the device server keeps it: the page parameters (the
// bytes after the 2-byte page_0 or 4-byte sub_page header) in three versions. Changeable
// is the mask MODE SENSE reports for PC=01b and MODE SELECT enforces: a 1 bit may be
// changed. Current, Default and Changeable have the same length.
type ModePage struct {
	Code       uint8 // PAGE CODE, bits 5:0
	Subpage    uint8 // SUBPAGE CODE; non-zero selects the sub_page format (SPF=1)
	Current    []byte
	Default    []byte
	Changeable []byte
}

// NewModePage returns a page whose default values are its current values.
func NewModePage(code, subpage uint8, current, changeable []byte) ModePage {
	if len(current) != len(changeable) {
		panic("scsi: mode page value and mask lengths differ")
	}
	return ModePage{Code: code, Subpage: subpage, Current: current,
		Default: append([]byte(nil), current...), Changeable: changeable}
}

func (p *ModePage) values(pc uint8) []byte {
	switch pc {
	case PageControlChangeable:
		return p.Changeable
	case PageControlDefault:
		return p.Default
	}
	return p.Current
}

// appendPage appends the page header and the values selected by pc. PS (@0 bit 7) is 0:
// no page is savable.
func (p *ModePage) appendPage(b []byte, pc uint8) []byte {
	v := p.values(pc)
	if p.Subpage == 0 {
		b = append(b, p.Code&0x3F, byte(len(v))) // page_0: PAGE LENGTH @1
	} else {
		b = append(b, 0x40|p.Code&0x3F, p.Subpage) // sub_page: SPF=1, PAGE LENGTH @2-3
		b = be.AppendUint16(b, uint16(len(v)))
	}
	return append(b, v...)
}

func (p *ModePage) headerLen() int {
	if p.Subpage == 0 {
		return 2
	}
	return 4
}

// ModePages is a logical unit's mode pages in ascending page code order, the order MODE
// SENSE returns them for page code 3Fh. The command layer owns it: MODE SELECT changes
// Current in place (see [ModePages.Select]), so serialize access like any LU state.
type ModePages []ModePage

// Clone returns a deep copy: logical units built from one template must not share the
// Current values MODE SELECT changes.
func (m ModePages) Clone() ModePages {
	out := make(ModePages, len(m))
	for i, p := range m {
		out[i] = ModePage{Code: p.Code, Subpage: p.Subpage,
			Current:    append([]byte(nil), p.Current...),
			Default:    append([]byte(nil), p.Default...),
			Changeable: append([]byte(nil), p.Changeable...)}
	}
	return out
}

// Find returns the page with that code and subpage, or nil.
func (m ModePages) Find(code, subpage uint8) *ModePage {
	for i := range m {
		if m[i].Code == code && m[i].Subpage == subpage {
			return &m[i]
		}
	}
	return nil
}

// ModeHeader is what the mode parameter header and block descriptor report (SPC-4
// §7.5.4, SBC-3 §6.4.1).
type ModeHeader struct {
	// WriteProtect is WP in the DEVICE-SPECIFIC PARAMETER (@2 of MODE SENSE(6), @3 of
	// (10)): the LU is read-only or the Control page SWP bit is set.
	WriteProtect bool
	// DPOFUA: DPO and FUA are honoured. libiscsi's *.DpoFua tests expect CDBs with DPO
	// or FUA to be refused when this is clear, and the REPORT SUPPORTED OPERATION CODES
	// usage data to agree.
	DPOFUA bool
	// Blocks and BlockSize fill the block descriptor.
	Blocks    uint64
	BlockSize uint32
}

var errSavingNotSupported = NewSenseError(SenseKeyIllegalRequest,
	ASCSavingParametersNotSupported, FieldPointer(true, 2, 7))

// AppendModeSense appends MODE SENSE(6) or (10) parameter data for the decoded CDB c:
// the mode parameter header, a block descriptor unless DBD (a long LBA one for MODE
// SENSE(10) with LLBAA), and the selected pages with PC's values. Errors, as SPC-4
// §6.12 asks: PC=11b is SAVING PARAMETERS NOT SUPPORTED (no page is savable); an unknown
// page is INVALID FIELD IN CDB @2, an unknown subpage INVALID FIELD IN CDB @3. MODE
// SENSE(6) returns at most 256 bytes: pages that would not fit are left out.
func (m ModePages) AppendModeSense(b []byte, c *CDB, h *ModeHeader) ([]byte, error) {
	if c.PageControl == PageControlSaved {
		return b, errSavingNotSupported
	}
	sel, err := m.selectPages(c.PageCode, c.Subpage)
	if err != nil {
		return b, err
	}
	ten := c.Opcode == OpModeSense10
	start := len(b)
	b = appendModeHeader(b, ten, c, h)
	limit := 256
	if ten {
		limit = 0x10000
	}
	for i := range m {
		if sel(&m[i]) && len(b)-start+m[i].headerLen()+len(m[i].Current) <= limit {
			b = m[i].appendPage(b, c.PageControl)
		}
	}
	if ten {
		be.PutUint16(b[start:], uint16(len(b)-start-2)) // @0 MODE DATA LENGTH
	} else {
		b[start] = byte(len(b) - start - 1) // @0 MODE DATA LENGTH
	}
	return b, nil
}

// selectPages returns the page filter of a PAGE CODE/SUBPAGE CODE pair (SPC-4 §6.12:
// page 3Fh with subpage 00h is every page_0 page, with FFh every page and subpage; a
// page with subpage FFh is all its subpages).
func (m ModePages) selectPages(code, sub uint8) (func(*ModePage) bool, error) {
	if code == ModePageAll {
		switch sub {
		case 0x00:
			return func(p *ModePage) bool { return p.Subpage == 0 }, nil
		case ModeSubpageAll:
			return func(*ModePage) bool { return true }, nil
		}
		return nil, InvalidFieldInCDB(3, 7)
	}
	found := false
	for i := range m {
		if m[i].Code == code {
			found = true
			if sub == ModeSubpageAll || m[i].Subpage == sub {
				return func(p *ModePage) bool {
					return p.Code == code && (sub == ModeSubpageAll || p.Subpage == sub)
				}, nil
			}
		}
	}
	if found {
		return nil, InvalidFieldInCDB(3, 7)
	}
	return nil, InvalidFieldInCDB(2, 5)
}

// appendModeHeader appends the mode parameter header (SPC-4 tables "Mode parameter
// header(6)/(10)") and the block descriptor (SBC-3 §6.4.2), with MODE DATA LENGTH left
// for AppendModeSense.
func appendModeHeader(b []byte, ten bool, c *CDB, h *ModeHeader) []byte {
	dsp := bit(h.WriteProtect, 7) | bit(h.DPOFUA, 4) // SBC-3 table "DEVICE-SPECIFIC PARAMETER"
	long := ten && c.LLBAA
	bdLen := 0
	if !c.DBD {
		bdLen = 8
		if long {
			bdLen = 16
		}
	}
	if ten {
		// @0-1 MODE DATA LENGTH, @2 MEDIUM TYPE, @3 DSP, @4 LONGLBA, @6-7 BLOCK
		// DESCRIPTOR LENGTH.
		b = append(b, 0, 0, 0, dsp, bit(long && !c.DBD, 0), 0)
		b = be.AppendUint16(b, uint16(bdLen))
	} else {
		// @0 MODE DATA LENGTH, @1 MEDIUM TYPE, @2 DSP, @3 BLOCK DESCRIPTOR LENGTH.
		b = append(b, 0, 0, dsp, byte(bdLen))
	}
	if c.DBD {
		return b
	}
	blocks, size := h.Blocks, h.BlockSize
	if c.PageControl == PageControlChangeable {
		blocks, size = 0, 0 // neither the capacity nor the block length can be changed
	}
	if long {
		b = be.AppendUint64(b, blocks) // @0 NUMBER OF LOGICAL BLOCKS
		b = append(b, 0, 0, 0, 0)
		return be.AppendUint32(b, size) // @12 LOGICAL BLOCK LENGTH
	}
	b = be.AppendUint32(b, uint32(min(blocks, 0xFFFFFFFF))) // @0, saturated (SBC-3 §6.4.2.2)
	return append(b, 0, byte(size>>16), byte(size>>8), byte(size))
}

// CachingPage is the Caching mode page (SBC-3 §6.4.5), 12h bytes of parameters.
type CachingPage struct {
	WCE bool // @2 bit 2: write cache enabled; Linux then sends FUA and SYNCHRONIZE CACHE
	RCD bool // @2 bit 0: read cache disabled
	DRA bool // @12 bit 5: read-ahead disabled
}

const cachingPageLen = 0x12

// Bytes returns the page parameters (page bytes 2 onwards).
func (p CachingPage) Bytes() []byte {
	v := make([]byte, cachingPageLen)
	v[0] = bit(p.WCE, 2) | bit(p.RCD, 0)
	v[10] = bit(p.DRA, 5)
	return v
}

// ParseCachingPage reads the fields CachingPage keeps from page parameters.
func ParseCachingPage(v []byte) CachingPage {
	if len(v) < cachingPageLen {
		return CachingPage{}
	}
	return CachingPage{WCE: v[0]&0x04 != 0, RCD: v[0]&0x01 != 0, DRA: v[10]&0x20 != 0}
}

// ControlPage is the Control mode page (SPC-4 §7.5.8), 0Ah bytes of parameters. libiscsi
// ModeSense6.Control compares it between a direct and an all-pages request and rejects
// TST > 1, QERR = 2 and UA_INTLCK_CTRL = 1; it warns when BUSY TIMEOUT PERIOD is 0.
type ControlPage struct {
	TST          uint8  // @2 bits 7:5 task set type: 0 one set for all I_T nexuses
	TMFOnly      bool   // @2 bit 4
	DSense       bool   // @2 bit 2: descriptor format sense data
	GLTSD        bool   // @2 bit 1
	QAM          uint8  // @3 bits 7:4 queue algorithm modifier: 1 unrestricted reordering
	QErr         uint8  // @3 bits 2:1
	UAIntlckCtrl uint8  // @4 bits 5:4
	SWP          bool   // @4 bit 3: software write protect
	ATO          bool   // @5 bit 7
	TAS          bool   // @5 bit 6: aborted commands of other nexuses get TASK ABORTED
	BusyTimeout  uint16 // @8 BUSY TIMEOUT PERIOD, 100 ms units; FFFFh unlimited
	ExtSelfTest  uint16 // @10 EXTENDED SELF-TEST COMPLETION TIME, seconds
}

const controlPageLen = 0x0A

// Bytes returns the page parameters (page bytes 2 onwards).
func (p ControlPage) Bytes() []byte {
	v := make([]byte, controlPageLen)
	v[0] = (p.TST&7)<<5 | bit(p.TMFOnly, 4) | bit(p.DSense, 2) | bit(p.GLTSD, 1)
	v[1] = (p.QAM&0x0F)<<4 | (p.QErr&3)<<1
	v[2] = (p.UAIntlckCtrl&3)<<4 | bit(p.SWP, 3)
	v[3] = bit(p.ATO, 7) | bit(p.TAS, 6)
	be.PutUint16(v[6:], p.BusyTimeout)
	be.PutUint16(v[8:], p.ExtSelfTest)
	return v
}

// ParseControlPage reads the fields ControlPage keeps from page parameters.
func ParseControlPage(v []byte) ControlPage {
	if len(v) < controlPageLen {
		return ControlPage{}
	}
	return ControlPage{
		TST: v[0] >> 5, TMFOnly: v[0]&0x10 != 0, DSense: v[0]&0x04 != 0, GLTSD: v[0]&0x02 != 0,
		QAM: v[1] >> 4, QErr: v[1] >> 1 & 3, UAIntlckCtrl: v[2] >> 4 & 3, SWP: v[2]&0x08 != 0,
		ATO: v[3]&0x80 != 0, TAS: v[3]&0x40 != 0, BusyTimeout: be.Uint16(v[6:]),
		ExtSelfTest: be.Uint16(v[8:]),
	}
}

// ReadWriteErrorRecoveryPage is the Read-Write Error Recovery mode page (SBC-3 §6.4.8),
// 0Ah bytes of parameters.
type ReadWriteErrorRecoveryPage struct {
	AWRE              bool   // @2 bit 7: automatic write reallocation
	ARRE              bool   // @2 bit 6: automatic read reallocation
	ReadRetryCount    uint8  // @3
	WriteRetryCount   uint8  // @8
	RecoveryTimeLimit uint16 // @10, ms
}

// Bytes returns the page parameters (page bytes 2 onwards).
func (p ReadWriteErrorRecoveryPage) Bytes() []byte {
	v := make([]byte, 0x0A)
	v[0] = bit(p.AWRE, 7) | bit(p.ARRE, 6)
	v[1], v[6] = p.ReadRetryCount, p.WriteRetryCount
	be.PutUint16(v[8:], p.RecoveryTimeLimit)
	return v
}

// InformationalExceptionsPage is the Informational Exceptions Control mode page (SPC-4
// §7.5.12), 0Ah bytes of parameters.
type InformationalExceptionsPage struct {
	DExcpt        bool   // @2 bit 3: informational exception reporting disabled
	MRIE          uint8  // @3 bits 3:0 method of reporting
	IntervalTimer uint32 // @4, 100 ms units
	ReportCount   uint32 // @8
}

// Bytes returns the page parameters (page bytes 2 onwards).
func (p InformationalExceptionsPage) Bytes() []byte {
	v := make([]byte, 0x0A)
	v[0], v[1] = bit(p.DExcpt, 3), p.MRIE&0x0F
	be.PutUint32(v[2:], p.IntervalTimer)
	be.PutUint32(v[6:], p.ReportCount)
	return v
}

// BlockModePages returns the mode pages of a block logical unit: Read-Write Error
// Recovery, Caching, Control and Informational Exceptions. What MODE SELECT may change is
// WCE (Caching), and D_SENSE and SWP (Control), the bits initiators and libiscsi toggle
// (ModeSense6.ControlSWP writes back the whole Control page with SWP flipped).
func BlockModePages(caching CachingPage, control ControlPage) ModePages {
	cacheMask := make([]byte, cachingPageLen)
	cacheMask[0] = 0x04 // WCE
	ctlMask := make([]byte, controlPageLen)
	ctlMask[0], ctlMask[2] = 0x04, 0x08 // D_SENSE, SWP
	return ModePages{
		NewModePage(ModePageReadWriteErrorRecovery, 0,
			ReadWriteErrorRecoveryPage{AWRE: true}.Bytes(), make([]byte, 0x0A)),
		NewModePage(ModePageCaching, 0, caching.Bytes(), cacheMask),
		NewModePage(ModePageControl, 0, control.Bytes(), ctlMask),
		NewModePage(ModePageInformationalExceptions, 0,
			InformationalExceptionsPage{DExcpt: true}.Bytes(), make([]byte, 0x0A)),
	}
}

// Caching returns the current Caching page values (zero if the page is absent).
func (m ModePages) Caching() CachingPage {
	if p := m.Find(ModePageCaching, 0); p != nil {
		return ParseCachingPage(p.Current)
	}
	return CachingPage{}
}

// Control returns the current Control page values (zero if the page is absent).
func (m ModePages) Control() ControlPage {
	if p := m.Find(ModePageControl, 0); p != nil {
		return ParseControlPage(p.Current)
	}
	return ControlPage{}
}
