package scsi

// UNMAP parameter list layout (SBC-3 §5.28.2, table "UNMAP parameter list").
const (
	unmapHeaderLen = 8  // UNMAP DATA LENGTH @0, BLOCK DESCRIPTOR DATA LENGTH @2, 4 reserved
	unmapDescLen   = 16 // LBA @0, NUMBER OF LOGICAL BLOCKS @8, 4 reserved
)

// UnmapDescriptor is one UNMAP block descriptor.
type UnmapDescriptor struct {
	LBA    uint64
	Blocks uint32
}

// UnmapList is a decoded UNMAP parameter list. It aliases the buffer it was decoded
// from, so iterating it allocates nothing.
type UnmapList struct {
	descs []byte
}

// Len returns the number of block descriptors.
func (l UnmapList) Len() int { return len(l.descs) / unmapDescLen }

// At returns descriptor i.
func (l UnmapList) At(i int) UnmapDescriptor {
	d := l.descs[i*unmapDescLen:]
	return UnmapDescriptor{LBA: be.Uint64(d[0:8]), Blocks: be.Uint32(d[8:12])}
}

// DecodeUnmap parses an UNMAP parameter list. Empty data (PARAMETER LIST LENGTH 0) is an
// empty list; 1 to 7 bytes are PARAMETER LIST LENGTH ERROR (SBC-3 §5.28.1). The
// descriptors are those BLOCK DESCRIPTOR DATA LENGTH announces, cut to the data present,
// and an incomplete last descriptor is ignored (SBC-3 §5.28.2), as LIO does. UNMAP DATA
// LENGTH is not checked: it only restates the list length. On error the list is empty.
func DecodeUnmap(b []byte) (UnmapList, error) {
	if len(b) == 0 {
		return UnmapList{}, nil
	}
	if len(b) < unmapHeaderLen {
		return UnmapList{}, ErrParameterListLength
	}
	n := min(int(be.Uint16(b[2:4])), len(b)-unmapHeaderLen)
	n -= n % unmapDescLen
	return UnmapList{descs: b[unmapHeaderLen : unmapHeaderLen+n]}, nil
}

// Check validates the list against the logical unit: more descriptors than MAXIMUM UNMAP
// BLOCK DESCRIPTOR COUNT, or more blocks in total than MAXIMUM UNMAP LBA COUNT, are
// INVALID FIELD IN PARAMETER LIST (SBC-3 §5.28.2; 0 and FFFFFFFFh mean no limit); a
// descriptor past capacity is LOGICAL BLOCK ADDRESS OUT OF RANGE. A descriptor of 0
// blocks at LBA capacity is valid (libiscsi Unmap.ZeroBlocks).
func (l UnmapList) Check(capacity uint64, lim *BlockLimits) error {
	n := l.Len()
	if !noLimit(lim.MaxUnmapDescriptors) && uint64(n) > uint64(lim.MaxUnmapDescriptors) {
		return InvalidFieldInParameterList(2, -1)
	}
	var total uint64
	for i := 0; i < n; i++ {
		d := l.At(i)
		total += uint64(d.Blocks)
		if !noLimit(lim.MaxUnmapLBACount) && total > uint64(lim.MaxUnmapLBACount) {
			return InvalidFieldInParameterList(unmapHeaderLen+i*unmapDescLen+8, -1)
		}
		if err := CheckLBARange(d.LBA, uint64(d.Blocks), capacity); err != nil {
			return err
		}
	}
	return nil
}

func noLimit(v uint32) bool { return v == 0 || v == 0xFFFFFFFF }

// AppendUnmap appends an UNMAP parameter list holding descs, for tests and initiators.
func AppendUnmap(b []byte, descs []UnmapDescriptor) []byte {
	n := unmapDescLen * len(descs)
	b = be.AppendUint16(b, uint16(unmapHeaderLen-2+n)) // @0 UNMAP DATA LENGTH
	b = be.AppendUint16(b, uint16(n))                  // @2 UNMAP BLOCK DESCRIPTOR DATA LENGTH
	b = append(b, 0, 0, 0, 0)
	for _, d := range descs {
		b = be.AppendUint64(b, d.LBA)
		b = be.AppendUint32(b, d.Blocks)
		b = append(b, 0, 0, 0, 0)
	}
	return b
}
