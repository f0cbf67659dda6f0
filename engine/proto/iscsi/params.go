package iscsi

import (
	"errors"
	"fmt"
)

// SessionType is the declared SessionType (RFC 7143 §13.21).
type SessionType uint8

// Session types.
const (
	SessionNormal    SessionType = iota // "Normal", the default
	SessionDiscovery                    // "Discovery": SendTargets only
)

// String returns the key value.
func (t SessionType) String() string {
	if t == SessionDiscovery {
		return "Discovery"
	}
	return "Normal"
}

// ParseSessionType parses a SessionType value.
func ParseSessionType(v string) (SessionType, error) {
	switch v {
	case "Normal":
		return SessionNormal, nil
	case "Discovery":
		return SessionDiscovery, nil
	}
	return 0, fmt.Errorf("%w: SessionType %q", ErrBadValue, v)
}

// DigestSet is a set of digests (RFC 7143 §13.1).
type DigestSet uint8

// Digests.
const (
	DigestNone   DigestSet = 1 << iota // "None"
	DigestCRC32C                       // "CRC32C"
)

// AuthSet is a set of authentication methods (RFC 7143 §12). The target implements
// CHAP and None; KRB5, SRP, SPKM1 and SPKM2 are never selected.
type AuthSet uint8

// Authentication methods.
const (
	AuthNone AuthSet = 1 << iota // "None"
	AuthCHAP                     // "CHAP"
)

// Config is what a target brings to negotiation: its limits and preferences for one
// portal group / target. The zero value is not usable; start from [DefaultConfig].
//
// ErrorRecoveryLevel is always 0 (the target implements no recovery within a session),
// DataPDUInOrder and DataSequenceInOrder are always Yes (the target places data by
// offset but reassembles R2T sequences in order, and every known initiator offers Yes),
// markers are always off (RFC 7143 §13.25 obsoleted them).
type Config struct {
	// TargetAlias is declared on the leading connection of a normal session, if set.
	TargetAlias string
	// TargetPortalGroupTag is declared in the first Login Response of a normal
	// session's leading connection (RFC 7143 §13.9).
	TargetPortalGroupTag uint16
	// HeaderDigest and DataDigest are the digests the target accepts on a normal
	// session's connection. Without DigestNone the target offers CRC32C itself when
	// the initiator does not. Discovery sessions always accept None.
	HeaderDigest, DataDigest DigestSet
	// MaxRecvDataSegmentLength is declared by the target: the largest data segment it
	// receives (512..2**24-1).
	MaxRecvDataSegmentLength uint32
	// MaxBurstLength and FirstBurstLength are the largest values the target accepts
	// (Minimum result functions). FirstBurstLength must not exceed MaxBurstLength.
	MaxBurstLength, FirstBurstLength uint32
	// ImmediateData (AND) and InitialR2T (OR) are the target's values.
	ImmediateData, InitialR2T bool
	// MaxOutstandingR2T and MaxConnections are the largest values accepted (Minimum).
	MaxOutstandingR2T, MaxConnections uint32
	// DefaultTime2Wait (Maximum) and DefaultTime2Retain (Minimum), in seconds.
	DefaultTime2Wait, DefaultTime2Retain uint32
}

// DefaultConfig returns the target's defaults. Burst lengths, ImmediateData and
// InitialR2T equal the RFC defaults, so the target never has to offer them itself; the
// receive segment is 64 KiB, eight times the RFC default, to cut per-PDU costs.
func DefaultConfig() Config {
	return Config{
		HeaderDigest:             DigestNone | DigestCRC32C,
		DataDigest:               DigestNone | DigestCRC32C,
		MaxRecvDataSegmentLength: 64 << 10,
		MaxBurstLength:           262144,
		FirstBurstLength:         65536,
		ImmediateData:            true,
		InitialR2T:               true,
		MaxOutstandingR2T:        1,
		MaxConnections:           1,
		DefaultTime2Wait:         2,
		DefaultTime2Retain:       20,
	}
}

// ErrConfig reports a Config outside the ranges RFC 7143 §13 allows.
var ErrConfig = errors.New("iscsi: invalid negotiation config")

// Validate checks every field against its key's range.
func (c *Config) Validate() error {
	check := func(id KeyID, v uint32) error {
		k := keyTable[id]
		if uint64(v) < k.Min || uint64(v) > k.Max {
			return fmt.Errorf("%w: %s %d outside %d..%d", ErrConfig, k.Name, v, k.Min, k.Max)
		}
		return nil
	}
	for _, f := range []struct {
		id KeyID
		v  uint32
	}{
		{KeyMaxRecvDataSegmentLength, c.MaxRecvDataSegmentLength},
		{KeyMaxBurstLength, c.MaxBurstLength},
		{KeyFirstBurstLength, c.FirstBurstLength},
		{KeyMaxOutstandingR2T, c.MaxOutstandingR2T},
		{KeyMaxConnections, c.MaxConnections},
		{KeyDefaultTime2Wait, c.DefaultTime2Wait},
		{KeyDefaultTime2Retain, c.DefaultTime2Retain},
	} {
		if err := check(f.id, f.v); err != nil {
			return err
		}
	}
	if c.FirstBurstLength > c.MaxBurstLength {
		return fmt.Errorf("%w: FirstBurstLength above MaxBurstLength", ErrConfig)
	}
	if c.HeaderDigest&(DigestNone|DigestCRC32C) == 0 ||
		c.DataDigest&(DigestNone|DigestCRC32C) == 0 {
		return fmt.Errorf("%w: no acceptable digest", ErrConfig)
	}
	return nil
}

// Params are the negotiated parameters of a connection and its session: what the
// target runs with once the login succeeds.
type Params struct {
	SessionType    SessionType
	InitiatorName  string
	InitiatorAlias string
	TargetName     string
	AuthMethod     AuthSet // AuthNone or AuthCHAP: the method that ran

	HeaderDigest bool // CRC32C header digests, connection scope
	DataDigest   bool // CRC32C data digests, connection scope
	// MaxRecvDataSegmentLength is the largest data segment the target receives: its
	// declared value, or 8192 if the login never reached the operational stage.
	MaxRecvDataSegmentLength uint32
	// MaxXmitDataSegmentLength is the initiator's declared MaxRecvDataSegmentLength
	// (8192 by default): the cap on every data segment the target sends (Data-In, Text
	// and Login responses, NOP-In, sense).
	MaxXmitDataSegmentLength uint32

	MaxBurstLength      uint32
	FirstBurstLength    uint32 // at most MaxBurstLength
	ImmediateData       bool
	InitialR2T          bool
	MaxOutstandingR2T   uint32
	MaxConnections      uint32
	DefaultTime2Wait    uint32
	DefaultTime2Retain  uint32
	DataPDUInOrder      bool
	DataSequenceInOrder bool
	ErrorRecoveryLevel  uint8
	ProtocolLevel       uint8
	IFMarker, OFMarker  bool // always false
}

// DefaultParams returns the RFC 7143 §13 defaults: what holds for a key nobody
// negotiated.
func DefaultParams() Params {
	return Params{
		InitialR2T:               true,
		ImmediateData:            true,
		MaxRecvDataSegmentLength: DefaultMaxRecvDataSegmentLength,
		MaxXmitDataSegmentLength: DefaultMaxRecvDataSegmentLength,
		MaxBurstLength:           262144,
		FirstBurstLength:         65536,
		MaxOutstandingR2T:        1,
		MaxConnections:           1,
		DefaultTime2Wait:         2,
		DefaultTime2Retain:       20,
		DataPDUInOrder:           true,
		DataSequenceInOrder:      true,
		ErrorRecoveryLevel:       0,
		ProtocolLevel:            1,
		AuthMethod:               AuthNone,
	}
}

// setNum stores a numeric parameter by key. The caller has range-checked v.
func (p *Params) setNum(id KeyID, v uint64) {
	switch id {
	case KeyMaxConnections:
		p.MaxConnections = uint32(v)
	case KeyMaxBurstLength:
		p.MaxBurstLength = uint32(v)
	case KeyFirstBurstLength:
		p.FirstBurstLength = uint32(v)
	case KeyDefaultTime2Wait:
		p.DefaultTime2Wait = uint32(v)
	case KeyDefaultTime2Retain:
		p.DefaultTime2Retain = uint32(v)
	case KeyMaxOutstandingR2T:
		p.MaxOutstandingR2T = uint32(v)
	case KeyErrorRecoveryLevel:
		p.ErrorRecoveryLevel = uint8(v)
	case KeyProtocolLevel:
		p.ProtocolLevel = uint8(v)
	default:
		panic("iscsi: setNum of non-numeric key " + id.String())
	}
}

// setBool stores a boolean parameter by key.
func (p *Params) setBool(id KeyID, v bool) {
	switch id {
	case KeyInitialR2T:
		p.InitialR2T = v
	case KeyImmediateData:
		p.ImmediateData = v
	case KeyDataPDUInOrder:
		p.DataPDUInOrder = v
	case KeyDataSequenceInOrder:
		p.DataSequenceInOrder = v
	case KeyIFMarker:
		p.IFMarker = v
	case KeyOFMarker:
		p.OFMarker = v
	}
}

// ourNum is the target's own value for a numeric key: its limit for Minimum keys, its
// floor for Maximum keys.
func (c *Config) ourNum(id KeyID) uint64 {
	switch id {
	case KeyMaxConnections:
		return uint64(c.MaxConnections)
	case KeyMaxBurstLength:
		return uint64(c.MaxBurstLength)
	case KeyFirstBurstLength:
		return uint64(c.FirstBurstLength)
	case KeyDefaultTime2Wait:
		return uint64(c.DefaultTime2Wait)
	case KeyDefaultTime2Retain:
		return uint64(c.DefaultTime2Retain)
	case KeyMaxOutstandingR2T:
		return uint64(c.MaxOutstandingR2T)
	case KeyErrorRecoveryLevel:
		return 0 // no error recovery beyond dropping the session
	case KeyProtocolLevel:
		return 1 // RFC 7143 without RFC 7144's additions
	}
	panic("iscsi: ourNum of non-numeric key " + id.String())
}

// ourBool is the target's own value for a boolean key.
func (c *Config) ourBool(id KeyID) bool {
	switch id {
	case KeyInitialR2T:
		return c.InitialR2T
	case KeyImmediateData:
		return c.ImmediateData
	case KeyDataPDUInOrder, KeyDataSequenceInOrder:
		return true
	}
	return false // markers and RDMAExtensions
}
