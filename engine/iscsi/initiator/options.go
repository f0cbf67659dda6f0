package initiator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	proto "sluice/engine/proto/iscsi"
)

// Defaults for Options' zero values.
const (
	// DefaultInitiatorName is the InitiatorName sent when Options.InitiatorName is
	// empty.
	DefaultInitiatorName = "iqn.2026-11.dev.sluice:go-initiator"
	// DefaultQueueDepth is the number of tags.
	DefaultQueueDepth = 32
	// MaxQueueDepth bounds QueueDepth: the ITT carries the tag in 16 bits.
	MaxQueueDepth = 4096
	// DefaultMaxRecvDataSegmentLength is the receive segment the initiator declares:
	// 256 KiB, what open-iscsi declares.
	DefaultMaxRecvDataSegmentLength = 256 << 10
	// DefaultTimeout bounds each command and request, and the login.
	DefaultTimeout = 30 * time.Second
	// rfcMaxBurstLength and rfcFirstBurstLength are the RFC 7143 §13.13/§13.14
	// defaults, which the initiator offers unless told otherwise.
	rfcMaxBurstLength   = 262144
	rfcFirstBurstLength = 65536
)

// Digest is what the initiator offers for HeaderDigest or DataDigest (RFC 7143 §13.1).
type Digest uint8

// Digest offers.
const (
	// DigestNone offers "None" only (the zero value).
	DigestNone Digest = iota
	// DigestCRC32C offers "CRC32C" only: the login fails if the target refuses it.
	DigestCRC32C
	// DigestPreferCRC32C offers "CRC32C,None": the target picks.
	DigestPreferCRC32C
)

func (d Digest) offer() string {
	switch d {
	case DigestCRC32C:
		return "CRC32C"
	case DigestPreferCRC32C:
		return "CRC32C,None"
	}
	return proto.ValueNone
}

// CHAP is the initiator's CHAP configuration (RFC 7143 §12.1.3).
type CHAP struct {
	// User and Secret answer the target's challenge (CHAP_N, CHAP_R).
	User   string
	Secret string
	// TargetSecret, when set, makes the authentication mutual: the initiator
	// challenges the target and checks its answer against this secret, and, when
	// TargetUser is set, its CHAP_N against TargetUser. It must differ from Secret
	// (RFC 7143 §9.2.1).
	TargetUser   string
	TargetSecret string
	// Algorithms are offered in CHAP_A in this order of preference. Empty offers
	// SHA-256 then MD5.
	Algorithms []proto.CHAPAlgorithm
}

// Dialer opens the TCP connection; *net.Dialer satisfies it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options configure a session. The zero value is usable for a normal session once
// TargetName is set.
type Options struct {
	// InitiatorName is declared at login. Empty: DefaultInitiatorName.
	InitiatorName  string
	InitiatorAlias string
	// TargetName is the node to log in to; ignored by discovery sessions.
	TargetName string
	// ISID is the initiator part of the session identifier. Zero: a random ISID (type
	// 2). Logging in again with the ISID of a live session to the same target
	// reinstates it (RFC 7143 §6.3.5): the target closes the old one.
	ISID proto.ISID
	// CID is the connection ID sent at login.
	CID uint16
	// CHAP, when set, authenticates in the security stage; otherwise the login starts
	// in the operational stage and offers no authentication.
	CHAP *CHAP
	// HeaderDigest and DataDigest are offered at login (normal and discovery).
	HeaderDigest, DataDigest Digest
	// MaxRecvDataSegmentLength is declared: the largest data segment the target may
	// send. 0 means DefaultMaxRecvDataSegmentLength.
	MaxRecvDataSegmentLength uint32
	// MaxBurstLength and FirstBurstLength are offered (0: the RFC defaults, 262144 and
	// 65536).
	MaxBurstLength, FirstBurstLength uint32
	// ImmediateData and InitialR2T are offered; nil offers the RFC default, Yes.
	ImmediateData, InitialR2T *bool
	// MaxOutstandingR2T is offered (0 means 1). The initiator answers every R2T as it
	// arrives, so any number may be outstanding.
	MaxOutstandingR2T uint32
	// QueueDepth is the number of tags (0..QueueDepth-1). 0 means DefaultQueueDepth.
	// It is independent of the target's command window, which the session follows.
	QueueDepth int
	// Timeout bounds the login and, once logged in, the wait for the target with
	// anything outstanding. 0 means DefaultTimeout.
	Timeout time.Duration
	// Dialer opens the connection. Nil means a *net.Dialer.
	Dialer Dialer
}

// withDefaults fills zero values and validates the rest.
func (o Options) withDefaults(discovery bool) (Options, error) {
	if o.InitiatorName == "" {
		o.InitiatorName = DefaultInitiatorName
	}
	if !discovery && o.TargetName == "" {
		return o, errors.New("iscsi initiator: Options.TargetName is empty")
	}
	if o.ISID == (proto.ISID{}) {
		if _, err := rand.Read(o.ISID[1:]); err != nil {
			return o, fmt.Errorf("isid: %w", err)
		}
		o.ISID[0] = 0x80 | o.ISID[0]&0x3f // T=2: random (RFC 7143 §11.12.5)
	}
	if o.MaxRecvDataSegmentLength == 0 {
		o.MaxRecvDataSegmentLength = DefaultMaxRecvDataSegmentLength
	}
	if o.MaxBurstLength == 0 {
		o.MaxBurstLength = rfcMaxBurstLength
	}
	if o.FirstBurstLength == 0 {
		o.FirstBurstLength = min(rfcFirstBurstLength, o.MaxBurstLength)
	}
	if o.MaxOutstandingR2T == 0 {
		o.MaxOutstandingR2T = 1
	}
	if o.QueueDepth == 0 {
		o.QueueDepth = DefaultQueueDepth
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{}
	}
	return o, o.validate()
}

func (o *Options) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("iscsi initiator: "+format, a...)
	}
	switch {
	case o.MaxRecvDataSegmentLength < 512 || o.MaxRecvDataSegmentLength > proto.MaxDataSegmentLength:
		return bad("MaxRecvDataSegmentLength %d outside 512..%d", o.MaxRecvDataSegmentLength,
			proto.MaxDataSegmentLength)
	case o.MaxBurstLength < 512 || o.MaxBurstLength > proto.MaxDataSegmentLength:
		return bad("MaxBurstLength %d outside 512..%d", o.MaxBurstLength, proto.MaxDataSegmentLength)
	case o.FirstBurstLength < 512 || o.FirstBurstLength > o.MaxBurstLength:
		return bad("FirstBurstLength %d outside 512..MaxBurstLength", o.FirstBurstLength)
	case o.MaxOutstandingR2T > 65535:
		return bad("MaxOutstandingR2T %d above 65535", o.MaxOutstandingR2T)
	case o.QueueDepth < 1 || o.QueueDepth > MaxQueueDepth:
		return bad("QueueDepth %d outside 1..%d", o.QueueDepth, MaxQueueDepth)
	case o.HeaderDigest > DigestPreferCRC32C || o.DataDigest > DigestPreferCRC32C:
		return bad("unknown Digest value")
	}
	if c := o.CHAP; c != nil {
		if c.User == "" {
			return bad("CHAP without a user")
		}
		if err := proto.ValidateCHAPSecrets([]byte(c.Secret), []byte(c.TargetSecret)); err != nil {
			return fmt.Errorf("iscsi initiator: %w", err)
		}
		for _, a := range c.Algorithms {
			if a.Size() == 0 {
				return bad("CHAP algorithm %v unknown", a)
			}
		}
	}
	return nil
}

func yes(p *bool) bool { return p == nil || *p }
