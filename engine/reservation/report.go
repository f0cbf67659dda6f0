package reservation

import "sluice/engine/proto/nvme"

// Report builders: what NVMe Reservation Report and SCSI PERSISTENT RESERVE IN return.
// They read the State and allocate; they run on the control path. Registrants of both
// protocols appear in both protocols' reports, in registration order, because their keys
// take part in either protocol's PREEMPT.

// NVMeReport returns the Reservation Report data for a host that set EDS: the header and
// one extended entry per registrant. A host that did not set EDS gets Host Identifier
// Inconsistent Format (with DNR), as from SPDK and nvmet: over fabrics host identifiers are
// 128-bit and do not fit the 64-bit entries. The caller marshals with
// nvme.MarshalResvStatusExt and sends min(NUMD, length) bytes.
//
// Entries report CNTLID FFFFh (registrations belong to hosts, not controllers). RCSTS
// marks every holder: the holder of a one-holder type, every registrant under an
// all-registrants type (as the spec and nvmet do; SPDK marks one record only). A SCSI
// registrant appears with its key and a zero host identifier.
func (s *State) NVMeReport(eds bool) (nvme.ResvStatus, []nvme.ResvRegistrantExt, nvme.Status) {
	if !eds {
		return nvme.ResvStatus{}, nil,
			nvme.StatusHostIdentifierInconsistentFormat.WithDNR()
	}
	h := nvme.ResvStatus{GEN: s.Generation, RTYPE: s.Type.NVMe(),
		REGCTL: uint16(len(s.Registrants))}
	if s.PTPL {
		h.PTPLS = 1
	}
	rs := make([]nvme.ResvRegistrantExt, len(s.Registrants))
	for i, r := range s.Registrants {
		rs[i] = nvme.ResvRegistrantExt{CNTLID: nvme.CNTLIDDynamic, RKEY: r.Key}
		if s.isHolder(i) {
			rs[i].RCSTS = nvme.ResvRCSTSHolder
		}
		if r.Subject.ID.Protocol == ProtocolNVMe {
			rs[i].HOSTID = r.Subject.ID.HostID
		}
	}
	return h, rs, nvme.StatusSuccess
}

// ReadKeys is the PERSISTENT RESERVE IN READ KEYS data (SPC-4 §6.15.2): the generation and
// every registered key, duplicates included.
type ReadKeys struct {
	Generation uint32
	Keys       []uint64
}

// ReadKeys builds the READ KEYS data.
func (s *State) ReadKeys() ReadKeys {
	rk := ReadKeys{Generation: s.Generation}
	for _, r := range s.Registrants {
		rk.Keys = append(rk.Keys, r.Key)
	}
	return rk
}

// ReadReservation is the READ RESERVATION data (SPC-4 §6.15.3): when Reserved, the
// holder's key (0 under an all-registrants type, SPC-4 §5.13.10, which libiscsi checks),
// SCOPE (always LU_SCOPE, 0) and TYPE in SCSI numbering.
type ReadReservation struct {
	Generation uint32
	Reserved   bool
	Key        uint64
	Scope      uint8
	Type       uint8
}

// ReadReservation builds the READ RESERVATION data.
func (s *State) ReadReservation() ReadReservation {
	rr := ReadReservation{Generation: s.Generation}
	if s.Type == TypeNone {
		return rr
	}
	rr.Reserved, rr.Type = true, s.Type.SCSI()
	if h := s.holder(); h >= 0 {
		rr.Key = s.Registrants[h].Key
	}
	return rr
}

// Persistent reservation type mask bits of REPORT CAPABILITIES bytes 4..5, read as a
// big-endian 16-bit value (SPC-4 Table 209; libiscsi SCSI_PR_TYPE_MASK_*).
const (
	MaskWriteExclusiveAllRegistrants   uint16 = 1 << 15
	MaskExclusiveAccessRegistrantsOnly uint16 = 1 << 14
	MaskWriteExclusiveRegistrantsOnly  uint16 = 1 << 13
	MaskExclusiveAccess                uint16 = 1 << 11
	MaskWriteExclusive                 uint16 = 1 << 9
	MaskExclusiveAccessAllRegistrants  uint16 = 1 << 0
	MaskAll                                   = MaskWriteExclusiveAllRegistrants |
		MaskExclusiveAccessRegistrantsOnly | MaskWriteExclusiveRegistrantsOnly |
		MaskExclusiveAccess | MaskWriteExclusive | MaskExclusiveAccessAllRegistrants
)

// Capabilities is the REPORT CAPABILITIES data (SPC-4 §6.15.4); LENGTH is always 8. Its
// fields mirror engine/proto/scsi's PRCapabilities, so a type conversion hands it to the
// encoder.
type Capabilities struct {
	RLRC  bool // REPLACE LOST RESERVATION capable
	CRH   bool // compatible reservation handling (SPC-4 §5.13.3)
	SIPC  bool // SPEC_I_PT capable
	ATPC  bool // ALL_TG_PT capable
	PTPLC bool // persist through power loss capable
	TMV   bool // type mask valid
	// AllowCommands is the 3-bit ALLOW COMMANDS code.
	AllowCommands uint8
	PTPLA         bool // persist through power loss activated
	TypeMask      uint16
}

// ReportCapabilities builds the REPORT CAPABILITIES data. ALLOW COMMANDS is 000b ("no
// information"): which commands pass a reservation is the SCSI layer's classification
// into Access classes, not something this package can promise (SPDK also reports 0;
// libiscsi only requires it to be at most 5). REPLACE LOST RESERVATION is not supported:
// the group replicates the state, so it is never lost short of losing every replica.
func (s *State) ReportCapabilities() Capabilities {
	return Capabilities{CRH: true, SIPC: true, ATPC: true, PTPLC: true, TMV: true,
		PTPLA: s.PTPL, TypeMask: MaskAll}
}

// FullStatus is the READ FULL STATUS data (SPC-4 §6.15.5).
type FullStatus struct {
	Generation uint32
	Entries    []FullStatusEntry
}

// FullStatusEntry is one full status descriptor. Scope and Type are meaningful only for a
// holder. For a SCSI registrant TransportID is its initiator port (HasISID false for a
// format 00b registration); for an NVMe registrant Protocol is ProtocolNVMe and HostID
// names it, and the SCSI encoder decides how to show it (SPC has no NVMe TransportID).
type FullStatusEntry struct {
	Key            uint64
	AllTargetPorts bool
	Holder         bool
	Scope          uint8
	Type           uint8 // SCSI numbering
	// RelativeTargetPort is the target port of the registration (not valid with
	// AllTargetPorts).
	RelativeTargetPort uint16
	Protocol           Protocol
	TransportID        TransportID
	HostID             [16]byte
}

// ReadFullStatus builds the READ FULL STATUS data.
func (s *State) ReadFullStatus() FullStatus {
	fs := FullStatus{Generation: s.Generation}
	for i, r := range s.Registrants {
		id := r.Subject.ID
		e := FullStatusEntry{Key: r.Key, AllTargetPorts: r.Subject.AllTargetPorts,
			Holder: s.isHolder(i), Protocol: id.Protocol}
		if e.Holder {
			e.Type = s.Type.SCSI()
		}
		switch id.Protocol {
		case ProtocolSCSI:
			e.RelativeTargetPort = id.TargetPort
			e.TransportID = TransportID{Name: id.Initiator, ISID: id.ISID,
				HasISID: !r.Subject.AnyISID}
		case ProtocolNVMe:
			e.HostID = id.HostID
		}
		fs.Entries = append(fs.Entries, e)
	}
	return fs
}
