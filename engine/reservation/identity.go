package reservation

import (
	"encoding/hex"
	"strconv"
)

// Protocol says which command set an Identity speaks; registrants of the two protocols
// never match each other (see the package doc, "Identity mapping").
type Protocol uint8

// Protocols. The zero value is no protocol: an Identity with it matches nothing and every
// command from it is invalid, so a forgotten field fails loudly instead of matching.
const (
	ProtocolNone Protocol = 0
	ProtocolNVMe Protocol = 1
	ProtocolSCSI Protocol = 2
)

// String names the protocol for logs.
func (p Protocol) String() string {
	switch p {
	case ProtocolNVMe:
		return "nvme"
	case ProtocolSCSI:
		return "scsi"
	}
	return "protocol " + strconv.Itoa(int(p))
}

// Identity names who sends a command or an I/O: an NVMe host or a SCSI I_T nexus. It is a
// plain value (no pointers) so that it can sit in replicated State and be compared on the
// I/O path without allocating. Build it once per controller or session, not per I/O.
type Identity struct {
	Protocol Protocol
	// HostID is the NVMe host identifier (Connect data HOSTID): the registration key
	// holder for all of the host's controllers. Zero for SCSI.
	HostID [16]byte
	// Initiator is the iSCSI initiator name (the initiator port name without ",i,0x<ISID>"),
	// as the iSCSI layer normalised it at login. Empty for NVMe.
	Initiator string
	// ISID is the 48-bit iSCSI session identifier that completes the initiator port name.
	ISID uint64
	// TargetPort is the relative target port identifier of the I_T nexus (READ FULL STATUS
	// and REGISTER AND MOVE name target ports by it). Zero for NVMe.
	TargetPort uint16
}

// NVMeHost returns the identity of an NVMe host.
func NVMeHost(hostID [16]byte) Identity { return Identity{Protocol: ProtocolNVMe, HostID: hostID} }

// SCSINexus returns the identity of a SCSI I_T nexus.
func SCSINexus(initiator string, isid uint64, targetPort uint16) Identity {
	return Identity{Protocol: ProtocolSCSI, Initiator: initiator, ISID: isid,
		TargetPort: targetPort}
}

// normalized clears the fields the protocol does not use, so that two identities that
// mean the same thing are equal values (and replicated states compare equal).
func (id Identity) normalized() Identity {
	switch id.Protocol {
	case ProtocolNVMe:
		return Identity{Protocol: ProtocolNVMe, HostID: id.HostID}
	case ProtocolSCSI:
		return Identity{Protocol: ProtocolSCSI, Initiator: id.Initiator,
			ISID: id.ISID & isidMask, TargetPort: id.TargetPort}
	}
	return Identity{}
}

// isidMask keeps the 48 bits an ISID has.
const isidMask = 1<<48 - 1

// Matches reports whether id and o are the same host or I_T nexus. With ignoreISID two
// SCSI nexuses match when initiator name and target port do ([State.IgnoreISID]).
func (id Identity) Matches(o Identity, ignoreISID bool) bool {
	return Subject{ID: id}.Covers(o, ignoreISID)
}

// String formats the identity for logs: "nvme:<hostid hex>" or
// "scsi:<name>,i,0x<isid>@<port>". It allocates.
func (id Identity) String() string {
	switch id.Protocol {
	case ProtocolNVMe:
		return "nvme:" + hex.EncodeToString(id.HostID[:])
	case ProtocolSCSI:
		return "scsi:" + id.Initiator + ",i,0x" + strconv.FormatUint(id.ISID, 16) + "@" +
			strconv.Itoa(int(id.TargetPort))
	}
	return "none"
}

// Subject is what a registration (or a notice, or an abort) covers: an Identity, widened
// to every target port by ALL_TG_PT and to every ISID of the initiator by a TransportID
// without an ISID (iSCSI TransportID format 00b). NVMe subjects never widen.
type Subject struct {
	ID             Identity
	AllTargetPorts bool
	AnyISID        bool
}

// Covers reports whether the subject includes the identity id. It allocates nothing; the
// I/O path calls it through [View.Allows].
func (s Subject) Covers(id Identity, ignoreISID bool) bool {
	if s.ID.Protocol != id.Protocol {
		return false
	}
	switch id.Protocol {
	case ProtocolNVMe:
		return s.ID.HostID == id.HostID
	case ProtocolSCSI:
		return s.ID.Initiator == id.Initiator &&
			(ignoreISID || s.AnyISID || s.ID.ISID == id.ISID) &&
			(s.AllTargetPorts || s.ID.TargetPort == id.TargetPort)
	}
	return false
}

// overlaps reports whether some identity is covered by both subjects: a registration
// that overlaps an existing one would make "the registrant of this nexus" ambiguous.
func (s Subject) overlaps(o Subject, ignoreISID bool) bool {
	if s.ID.Protocol != o.ID.Protocol || s.ID.Protocol == ProtocolNone {
		return false
	}
	if s.ID.Protocol == ProtocolNVMe {
		return s.ID.HostID == o.ID.HostID
	}
	return s.ID.Initiator == o.ID.Initiator &&
		(ignoreISID || s.AnyISID || o.AnyISID || s.ID.ISID == o.ID.ISID) &&
		(s.AllTargetPorts || o.AllTargetPorts || s.ID.TargetPort == o.ID.TargetPort)
}

// TransportID names a SCSI initiator port in SPEC_I_PT and REGISTER AND MOVE parameter
// data, already parsed by the SCSI layer. Only iSCSI TransportIDs (protocol identifier 5)
// exist in sluice: format 01b carries the ISID (HasISID), format 00b names the initiator
// device and so covers every ISID. The fields mirror engine/proto/scsi's TransportID so
// that the SCSI layer converts one into the other with a plain type conversion.
type TransportID struct {
	Name    string // iSCSI initiator name, without ",i,0x<ISID>"
	ISID    uint64
	HasISID bool
}

// subject returns what a registration made for the TransportID at targetPort covers.
func (t TransportID) subject(targetPort uint16, allTargetPorts bool) Subject {
	id := SCSINexus(t.Name, 0, targetPort)
	if t.HasISID {
		id.ISID = t.ISID & isidMask
	}
	return Subject{ID: id, AllTargetPorts: allTargetPorts, AnyISID: !t.HasISID}
}
