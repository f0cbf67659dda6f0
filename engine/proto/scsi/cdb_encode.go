package scsi

// Append encodes c as a CDB of c.Opcode's length and appends it to b: the inverse of
// [DecodeCDB] for every field the decoder keeps, so tests (and a Go initiator) build
// commands from the same field names the target reads. Length is taken from the opcode
// (for 7Fh from c.Length, at least 8 + 4 bytes); READ(6)/WRITE(6) write a transfer
// length of 256 as 0. Values too wide for their field are truncated to it. Appending an
// opcode DecodeCDB does not know appends nothing.
func (c *CDB) Append(b []byte) []byte {
	n := int(blockLayouts[c.Opcode].length)
	if n == 0 {
		n = int(otherLengths[c.Opcode])
	}
	if c.Opcode == OpVariableLength {
		n = max(int(c.Length)&^3, 12)
	}
	if n == 0 {
		return b
	}
	start := len(b)
	b = append(b, make([]byte, n)...)
	p := b[start:]
	p[0] = byte(c.Opcode)
	if c.Opcode == OpVariableLength {
		p[1] = c.Control
		p[7] = byte(n - 8)
		be.PutUint16(p[8:10], c.ServiceAction)
		return b
	}
	p[n-1] = c.Control
	if l := &blockLayouts[c.Opcode]; l.length != 0 {
		c.putBlock(p, l)
	} else {
		c.putOther(p)
	}
	return b
}

func (c *CDB) putBlock(p []byte, l *blockLayout) {
	switch l.lbaLen {
	case 3:
		p[1] = byte(c.LBA>>16) & 0x1F
		be.PutUint16(p[2:4], uint16(c.LBA))
	case 4:
		be.PutUint32(p[l.lbaOff:], uint32(c.LBA))
	default:
		be.PutUint64(p[l.lbaOff:], c.LBA)
	}
	switch l.tlLen {
	case 1:
		p[l.tlOff] = byte(c.TransferLength) // 256 wraps to 0 for READ(6)/WRITE(6)
	case 2:
		be.PutUint16(p[l.tlOff:], uint16(c.TransferLength))
	default:
		be.PutUint32(p[l.tlOff:], c.TransferLength)
	}
	if l.groupOff != 0 {
		p[l.groupOff] = c.Group & 0x1F
	}
	if c.Opcode == OpWriteAtomic16 {
		be.PutUint16(p[10:12], c.AtomicBoundary)
	}
	if l.lbaLen != 3 {
		p[1] = c.byte1(l.byte1)
	}
}

func (c *CDB) byte1(f uint8) byte {
	var x byte
	if f&b1Protect != 0 {
		x |= c.Protect << 5
	}
	x |= bit(f&b1DPO != 0 && c.DPO, 4) | bit(f&b1FUA != 0 && c.FUA, 3)
	x |= bit(f&b1Immed != 0 && c.Immed, 1) | bit(f&b1NDOB != 0 && c.NDOB, 0)
	if f&(b1ByteCheck|b1ByteCheckVfy) != 0 {
		x |= (c.ByteCheck & 3) << 1
	}
	if f&b1WriteSame != 0 {
		x |= bit(c.Anchor, 4) | bit(c.Unmap, 3)
	}
	return x
}

// bit returns 1<<n when v is set.
func bit(v bool, n uint) byte {
	if v {
		return 1 << n
	}
	return 0
}

func (c *CDB) putOther(p []byte) {
	switch c.Opcode {
	case OpRequestSense:
		p[1], p[4] = bit(c.Desc, 0), byte(c.AllocationLength)
	case OpInquiry:
		p[1], p[2] = bit(c.EVPD, 0), c.PageCode
		be.PutUint16(p[3:5], uint16(c.AllocationLength))
	case OpModeSense6, OpModeSense10:
		p[1] = bit(c.DBD, 3) | bit(c.LLBAA && c.Opcode == OpModeSense10, 4)
		p[2], p[3] = c.PageControl<<6|c.PageCode&0x3F, c.Subpage
		putLen(p, c.Opcode == OpModeSense6, c.AllocationLength)
	case OpModeSelect6, OpModeSelect10:
		p[1] = bit(c.PF, 4) | bit(c.SP, 0)
		putLen(p, c.Opcode == OpModeSelect6, c.ParameterListLength)
	case OpStartStopUnit:
		p[1], p[3] = bit(c.Immed, 0), c.PowerConditionModifier&0x0F
		p[4] = c.PowerCondition<<4 | bit(c.NoFlush, 2) | bit(c.LoEj, 1) | bit(c.Start, 0)
	case OpPreventAllowRemoval:
		p[4] = c.Prevent & 0x03
	case OpReadCapacity10:
		be.PutUint32(p[2:6], uint32(c.LBA))
		p[8] = bit(c.PMI, 0)
	case OpUnmap:
		p[1], p[6] = bit(c.Anchor, 0), c.Group&0x1F
		be.PutUint16(p[7:9], uint16(c.ParameterListLength))
	case OpReserve10, OpRelease10:
		p[1], p[2] = bit(c.ThirdParty, 4)|bit(c.LongID, 1), c.ThirdPartyDevice
		be.PutUint16(p[7:9], uint16(c.ParameterListLength))
	case OpPersistentReserveIn:
		p[1] = byte(c.ServiceAction) & 0x1F
		be.PutUint16(p[7:9], uint16(c.AllocationLength))
	case OpPersistentReserveOut:
		p[1], p[2] = byte(c.ServiceAction)&0x1F, c.PRScope<<4|byte(c.PRType)&0x0F
		be.PutUint32(p[5:9], c.ParameterListLength)
	case OpServiceActionIn16:
		p[1] = byte(c.ServiceAction) & 0x1F
		be.PutUint64(p[2:10], c.LBA)
		be.PutUint32(p[10:14], c.AllocationLength)
		p[14] = bit(c.PMI && c.ServiceAction == SAReadCapacity16, 0)
	case OpReportLUNs:
		p[2] = c.SelectReport
		be.PutUint32(p[6:10], c.AllocationLength)
	case OpMaintenanceIn:
		p[1] = byte(c.ServiceAction) & 0x1F
		be.PutUint32(p[6:10], c.AllocationLength)
		switch c.ServiceAction {
		case SAReportSupportedOpcodes:
			p[2], p[3] = bit(c.RCTD, 7)|c.ReportingOptions&0x07, byte(c.RequestedOpcode)
			be.PutUint16(p[4:6], c.RequestedServiceAction)
		case SAReportSupportedTMFs:
			p[2] = bit(c.REPD, 7)
		}
	case OpSanitize:
		p[1] = bit(c.Immed, 7) | bit(c.AUSE, 5) | byte(c.ServiceAction)&0x1F
		be.PutUint16(p[7:9], uint16(c.ParameterListLength))
	case OpReadDefectData10:
		p[2] = c.defectByte()
		be.PutUint16(p[7:9], uint16(c.AllocationLength))
	case OpExtendedCopy:
		p[1] = byte(c.ServiceAction) & 0x1F
		be.PutUint32(p[10:14], c.ParameterListLength)
	case OpReceiveCopyResults:
		p[1], p[2] = byte(c.ServiceAction)&0x1F, c.ListIdentifier
		be.PutUint32(p[10:14], c.AllocationLength)
	case OpReadDefectData12:
		p[1] = c.defectByte()
		be.PutUint32(p[2:6], c.AddressDescriptorIndex)
		be.PutUint32(p[6:10], c.AllocationLength)
	}
}

// defectByte is READ DEFECT DATA's REQ_PLIST, REQ_GLIST and DEFECT LIST FORMAT.
func (c *CDB) defectByte() byte {
	return bit(c.ReqPList, 4) | bit(c.ReqGList, 3) | c.DefectListFormat&0x07
}

// putLen writes the 1-byte length @4 of a 6-byte CDB or the 2-byte length @7-8 of a
// 10-byte one.
func putLen(p []byte, six bool, n uint32) {
	if six {
		p[4] = byte(n)
		return
	}
	be.PutUint16(p[7:9], uint16(n))
}
