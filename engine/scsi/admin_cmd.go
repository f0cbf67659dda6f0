package scsi

import (
	"sluice/engine/proto/scsi"
)

// The SPC-4 and SBC-3 commands that describe the LU rather than move its blocks:
// REQUEST SENSE, INQUIRY and its VPD pages, MODE SENSE/SELECT, READ CAPACITY(16), GET
// LBA STATUS, READ DEFECT DATA, REPORT LUNS, REPORT SUPPORTED OPERATION CODES and TASK
// MANAGEMENT FUNCTIONS. They build their data in the channel's response buffer and copy
// it into the task's, cut to the allocation length.

// vpdPages is the Supported VPD Pages list, ascending (libiscsi reads each back).
var vpdPages = []uint8{scsi.VPDSupportedPages, scsi.VPDUnitSerialNumber,
	scsi.VPDDeviceIdentification, scsi.VPDExtendedInquiry, scsi.VPDBlockLimits,
	scsi.VPDBlockDeviceCharacteristics, scsi.VPDLogicalBlockProvisioning}

// requestSense is REQUEST SENSE: the nexus's oldest unit attention as parameter data
// (reporting it clears it, SAM-5 §5.14), else NO SENSE. No other sense is deferred: a
// CHECK CONDITION carries its sense in the response (autosense). DESC picks the format.
func (ch *Channel) requestSense(t *Task) {
	s := scsi.Sense{Key: scsi.SenseKeyNoSense}
	if code, ok := t.Nexus.take(); ok {
		s = scsi.Sense{Key: scsi.SenseKeyUnitAttention, Code: code}
	} else if st := ch.lu.sanState.Load(); st != sanIdle {
		// A sanitize in progress, with its progress indication, or its failure (SBC-3
		// §4.11: REQUEST SENSE is how a host polls it).
		s = ch.lu.sanitizeSense(st)
	}
	ch.sendSense(t, &s)
}

// sendSense completes REQUEST SENSE with sense s as its parameter data.
func (ch *Channel) sendSense(t *Task, s *scsi.Sense) {
	n := s.Put(ch.sense[:], t.x.cdb.Desc)
	b := scsi.Truncate(ch.sense[:n], t.x.cdb.AllocationLength)
	copy(t.Data, b)
	t.Produced = uint64(len(b))
	ch.good(t)
}

// inquiry is INQUIRY: standard data or a VPD page.
func (ch *Channel) inquiry(t *Task) {
	c := &t.x.cdb
	if !c.EVPD {
		ch.dataIn(t, ch.lu.inquiry.Append(ch.resp[:0]), c.AllocationLength)
		return
	}
	b, err := ch.lu.appendVPD(ch.resp[:0], c.PageCode, t.Nexus)
	if err != nil {
		ch.fail(t, err)
		return
	}
	ch.dataIn(t, b, c.AllocationLength)
}

// appendVPD appends VPD page `page` as nexus nx sees it (the port designators are its
// target port's).
func (lu *LU) appendVPD(b []byte, page uint8, nx *Nexus) ([]byte, error) {
	const p = scsi.PeripheralDisk
	switch page {
	case scsi.VPDSupportedPages:
		return scsi.AppendSupportedVPDPages(b, p, vpdPages), nil
	case scsi.VPDUnitSerialNumber:
		return scsi.AppendUnitSerialNumber(b, p, lu.serial), nil
	case scsi.VPDDeviceIdentification:
		port := lu.port(nx.id.TargetPort)
		d := scsi.DeviceIdentification{NAA: lu.naa, EUI64: lu.eui,
			T10VendorID: lu.cfg.Vendor, T10VendorSpecific: lu.serial,
			RelativeTargetPort: port.RelativeID, TargetPortGroup: port.Group,
			HasTargetPortGroup: port.Group != 0, TargetPortName: port.Name,
			TargetName: lu.cfg.TargetName}
		return d.Append(b, p), nil
	case scsi.VPDExtendedInquiry:
		// SIMPLE tasks only; a volatile cache (WCE) is emulated whatever the bdev;
		// unit attentions are per I_T nexus (LUICLR).
		e := scsi.ExtendedInquiry{SimpSup: true, VSup: true, LUICLR: true, MaxSense: SenseCap}
		return e.Append(b, p), nil
	case scsi.VPDBlockLimits:
		return lu.limits.Append(b, p), nil
	case scsi.VPDBlockDeviceCharacteristics:
		c := scsi.BlockDeviceCharacteristics{RotationRate: scsi.RotationNonRotating}
		if lu.blockErase() {
			c.WABEREQ = 1 // a block read after BLOCK ERASE reads zeros, without error
		}
		return c.Append(b, p), nil
	case scsi.VPDLogicalBlockProvisioning:
		l := scsi.LogicalBlockProvisioning{LBPU: lu.unmap, LBPWS: lu.unmap, LBPWS10: lu.unmap,
			LBPRZ: lu.capacity.LBPRZ, ProvisioningType: scsi.ProvisioningFull}
		if lu.unmap {
			l.ProvisioningType = scsi.ProvisioningThin
		}
		return l.Append(b, p), nil
	}
	return b, scsi.InvalidFieldInCDB(2, 7)
}

// modeSense is MODE SENSE(6/10).
func (ch *Channel) modeSense(t *Task) {
	lu := ch.lu
	h := lu.modeHeader()
	lu.modeMu.Lock()
	b, err := lu.modes.AppendModeSense(ch.resp[:0], &t.x.cdb, &h)
	lu.modeMu.Unlock()
	if err != nil {
		ch.fail(t, err)
		return
	}
	ch.dataIn(t, b, t.x.cdb.AllocationLength)
}

// modeSelect is MODE SELECT(6/10): WCE, D_SENSE and SWP may change (BlockModePages'
// mask). A change reaches the I/O path through the LU's atomics at once and the other
// nexuses through MODE PARAMETERS CHANGED (SPC-4 §7.5.1: the pages are shared by all
// I_T nexuses).
func (ch *Channel) modeSelect(t *Task) {
	c, lu := &t.x.cdb, ch.lu
	pll := uint64(c.ParameterListLength)
	if uint64(len(t.Data)) < pll {
		ch.fail(t, errInvalidIU)
		return
	}
	l, err := scsi.DecodeModeSelect(t.Data[:pll], c.Opcode == scsi.OpModeSelect10)
	if err != nil {
		ch.fail(t, err)
		return
	}
	h := lu.modeHeader()
	lu.modeMu.Lock()
	changed, err := lu.modes.Select(&l, c, &h)
	if changed {
		lu.mirrorModes()
	}
	lu.modeMu.Unlock()
	if err != nil {
		ch.fail(t, err)
		return
	}
	if changed {
		lu.raiseAll(scsi.ASCModeParametersChanged, t.Nexus)
	}
	ch.good(t)
}

// serviceActionIn is READ CAPACITY(16) and GET LBA STATUS.
func (ch *Channel) serviceActionIn(t *Task) {
	c, lu := &t.x.cdb, ch.lu
	if c.ServiceAction == scsi.SAReadCapacity16 {
		ch.dataIn(t, lu.capacity.Append16(ch.resp[:0]), c.AllocationLength)
		return
	}
	// GET LBA STATUS. The bdev layer has no allocation map to ask, so every block reads
	// as mapped: SBC-3 lets a device server report a deallocated block as mapped
	// (nothing relies on "mapped" meaning "allocated"), libiscsi GetLBAStatus checks
	// only that blocks it wrote are mapped, and LBPRZ already tells hosts that
	// unmapped blocks read as zeros. The one state the LU knows of without a map is
	// the one SANITIZE BLOCK ERASE leaves: every block deallocated, until a write
	// (libiscsi Sanitize.BlockErase).
	if c.LBA >= lu.blocks {
		ch.fail(t, scsi.ErrLBAOutOfRange)
		return
	}
	status := uint8(scsi.LBAMapped)
	if lu.erased.Load() {
		status = scsi.LBADeallocated
	}
	d := [1]scsi.LBAStatus{{LBA: c.LBA, Blocks: uint32(min(lu.blocks-c.LBA, 0xFFFFFFFF)),
		Status: status}}
	ch.dataIn(t, scsi.AppendGetLBAStatus(ch.resp[:0], d[:]), c.AllocationLength)
}

// maintenanceIn is REPORT SUPPORTED OPERATION CODES and REPORT SUPPORTED TASK
// MANAGEMENT FUNCTIONS. REPORT TARGET PORT GROUPS is refused: the LU reports TPGS=0.
func (ch *Channel) maintenanceIn(t *Task) {
	c, lu := &t.x.cdb, ch.lu
	switch c.ServiceAction {
	case scsi.SAReportSupportedOpcodes:
		b, err := lu.commands.AppendReport(ch.resp[:0], c)
		if err != nil {
			ch.fail(t, err)
			return
		}
		ch.dataIn(t, b, c.AllocationLength)
	case scsi.SAReportSupportedTMFs:
		ch.dataIn(t, lu.tmf.Append(ch.resp[:0], c.REPD), c.AllocationLength)
	default:
		ch.fail(t, errTargetPortGroups)
	}
}

// reportLUNs is REPORT LUNS through an LU: the LUNs of its LUNMap (or its own LUN when
// it belongs to none). It answers a pending REPORTED LUNS DATA HAS CHANGED.
func (ch *Channel) reportLUNs(t *Task) {
	t.Nexus.clearCode(scsi.ASCReportedLUNsDataChanged)
	var luns []uint16
	if m := ch.lu.lunMap.Load(); m != nil {
		luns = m.table().luns
	} else {
		luns = []uint16{ch.lu.lun}
	}
	b, err := appendReportLUNs(ch.resp[:0], &t.x.cdb, luns)
	if err != nil {
		ch.fail(t, err)
		return
	}
	ch.dataIn(t, b, t.x.cdb.AllocationLength)
}

// appendReportLUNs appends REPORT LUNS data for luns. SPC-4 §6.33: an allocation length
// under 16 bytes is INVALID FIELD IN CDB; SELECT REPORT 01h (well-known LUs only) is an
// empty list, as this target has none.
func appendReportLUNs(b []byte, c *scsi.CDB, luns []uint16) ([]byte, error) {
	if c.AllocationLength < 16 {
		return b, scsi.InvalidFieldInCDB(6, -1)
	}
	if c.SelectReport == scsi.SelectReportWellKnown {
		luns = nil
	}
	return scsi.AppendReportLUNs(b, luns), nil
}
