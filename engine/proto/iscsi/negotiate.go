package iscsi

import (
	"fmt"
	"strconv"
	"strings"
)

// keyState tracks one key through a login's negotiation.
type keyState uint8

const (
	keyOpen     keyState = iota // not exchanged yet: its default or session value holds
	keyAnswered                 // the initiator offered or declared it; it is settled
	keyOffered                  // the target offered it and waits for the answer
	keySettled                  // the target's offer was answered
)

// Negotiator is the target side of RFC 7143 §6 key negotiation for one connection: it
// answers the initiator's offers and declarations, makes the target's own offers and
// declarations, and keeps the resulting [Params]. It is pure: no I/O, no clock, no
// randomness; [Login] drives it during login and the connection calls
// [Negotiator.NegotiateText] for Text Requests in full feature phase.
//
// It is not safe for concurrent use.
type Negotiator struct {
	cfg       Config
	p         Params
	discovery bool
	leading   bool
	auth      AuthSet
	state     [numKeys]keyState
	offered   [numKeys]string
	// declared records that the target declared its MaxRecvDataSegmentLength.
	declared bool
	// authRefused records an AuthMethod offer answered Reject.
	authRefused bool
}

// NewNegotiator starts the negotiation of a connection. session is nil for the leading
// connection of a new session; when adding a connection to a session it holds the
// session's parameters, whose leading-only keys then stay fixed and are answered
// Irrelevant (RFC 7143 §13: "LO" keys are carried on the leading connection only).
func NewNegotiator(cfg Config, st SessionType, session *Params) *Negotiator {
	n := &Negotiator{cfg: cfg, discovery: st == SessionDiscovery, leading: session == nil,
		auth: AuthNone}
	n.p = DefaultParams()
	if session != nil {
		n.p = *session
		n.p.HeaderDigest, n.p.DataDigest = false, false
		n.p.MaxRecvDataSegmentLength = DefaultMaxRecvDataSegmentLength
		n.p.MaxXmitDataSegmentLength = DefaultMaxRecvDataSegmentLength
		n.p.AuthMethod = AuthNone
	}
	n.p.SessionType = st
	return n
}

// SetAuthMethods sets the authentication methods the target accepts for this login
// (from its policy for the initiator): AuthMethod offers are answered with the first
// offered method in this set, or Reject.
func (n *Negotiator) SetAuthMethods(s AuthSet) { n.auth = s }

// Params returns the parameters negotiated so far, defaults included. Call
// [Negotiator.Finish] for the final, checked set.
func (n *Negotiator) Params() Params { return n.p }

// Negotiate answers one logical text data segment of a Login Request in stage
// (StageSecurity or StageOperational), appending the answers to dst:
//
//   - unknown keys and extension keys (X-, X#) other than X#NodeArchitecture are
//     answered NotUnderstood (RFC 7143 §6.2); keys only a target declares are ignored;
//   - keys not allowed in the stage (operational keys in SecurityNegotiation,
//     AuthMethod or CHAP keys in LoginOperationalNegotiation, SendTargets during
//     login) are answered Reject and stay open for a later stage; declarations out of
//     place are ignored;
//   - leading-only keys on a non-leading connection, the keys §13 makes irrelevant in
//     discovery sessions, and FirstBurstLength when InitialR2T=Yes and
//     ImmediateData=No (§13.14) are answered Irrelevant;
//   - malformed or out-of-range values are answered Reject and the key keeps its value,
//     except a bad MaxRecvDataSegmentLength declaration, which fails the login (0200);
//   - declarations (InitiatorName, SessionType, ...) are recorded and not answered;
//   - answers to the target's own offers are checked against the offer.
//
// FirstBurstLength is handled after the other keys of the segment, so that it sees the
// MaxBurstLength, InitialR2T and ImmediateData negotiated beside it. The first time it
// runs in the operational stage it appends the target's MaxRecvDataSegmentLength
// declaration. A key negotiated twice in one login (other than a re-declaration of
// MaxRecvDataSegmentLength or an identical re-declaration) is a *LoginError with status
// 0200, as SPDK and LIO treat it.
func (n *Negotiator) Negotiate(stage Stage, kvs []KeyValue, dst []byte) ([]byte, error) {
	if stage != StageSecurity && stage != StageOperational {
		panic("iscsi: Negotiate outside the login stages")
	}
	dst, err := n.negotiateAll(stage, kvs, dst)
	if err != nil {
		return dst, err
	}
	if stage == StageOperational && !n.declared {
		// The target declares what it receives (RFC 7143 §13.12), whether or not the
		// initiator declared its own: without it the initiator would keep to 8192.
		n.declared = true
		n.p.MaxRecvDataSegmentLength = n.cfg.MaxRecvDataSegmentLength
		dst = AppendKeyNumber(dst, "MaxRecvDataSegmentLength",
			uint64(n.cfg.MaxRecvDataSegmentLength))
	}
	return dst, nil
}

// NegotiateText answers the keys of a Text Request in full feature phase (RFC 7143
// §6.2, §11.10): only keys whose use is ALL or FFPO apply; login-only keys are
// answered Reject (login-only declarations are ignored). A MaxRecvDataSegmentLength
// declaration updates MaxXmitDataSegmentLength, which the connection must apply to what
// it sends next.
// SendTargets is left unanswered: the caller answers it (see [ParseSendTargets]).
// Every Text Request sequence is a new negotiation; duplicates within one segment are
// caught by [ParseText]. An error makes the caller answer with a Reject PDU.
func (n *Negotiator) NegotiateText(kvs []KeyValue, dst []byte) ([]byte, error) {
	return n.negotiateAll(StageFullFeature, kvs, dst)
}

func (n *Negotiator) negotiateAll(stage Stage, kvs []KeyValue, dst []byte) ([]byte, error) {
	var err error
	deferred := -1
	for i, kv := range kvs {
		if kv.Key == keyTable[KeyFirstBurstLength].Name {
			deferred = i
			continue
		}
		if dst, err = n.negotiateKey(stage, kv, dst); err != nil {
			return dst, err
		}
	}
	if deferred >= 0 {
		dst, err = n.negotiateKey(stage, kvs[deferred], dst)
	}
	return dst, err
}

func (n *Negotiator) negotiateKey(stage Stage, kv KeyValue, dst []byte) ([]byte, error) {
	def, ok := Lookup(kv.Key)
	if !ok {
		return AppendKey(dst, kv.Key, ValueNotUnderstood), nil
	}
	if def.Sender&SenderInitiator == 0 {
		// Only a target declares TargetAlias, TargetAddress and TargetPortalGroupTag:
		// ignore them rather than answer with a key the target may declare itself in
		// the same response.
		return dst, nil
	}
	login := stage != StageFullFeature
	if login && n.state[def.ID] == keyOffered {
		return dst, n.takeAnswer(def, kv.Value)
	}
	if !allowedIn(def, stage) {
		if def.Kind == KindDeclarative {
			return dst, nil // a declaration out of place is ignored, never answered
		}
		return AppendKey(dst, kv.Key, ValueReject), nil
	}
	if reservedValue(kv.Value) {
		if def.Kind == KindDeclarative {
			return dst, nil
		}
		return AppendKey(dst, kv.Key, ValueReject), nil
	}
	if login && n.state[def.ID] != keyOpen {
		return n.renegotiate(def, kv, dst)
	}
	irrelevant := (!n.leading && def.LeadingOnly) || (n.discovery && def.DiscoveryIrrelevant)
	if irrelevant && def.Kind != KindDeclarative {
		// Declarations (SessionType on an added connection) are never answered.
		return AppendKey(dst, kv.Key, ValueIrrelevant), nil
	}
	if login {
		n.state[def.ID] = keyAnswered
	}
	return n.answer(def, kv, dst)
}

// allowedIn reports whether a key may be exchanged in a stage (RFC 7143 §6.3, §13 "Use"
// and "Any-Stage").
func allowedIn(def KeyDef, stage Stage) bool {
	switch stage {
	case StageSecurity:
		return def.Phase != PhaseFFP && def.Stage != StageKeyOperational
	case StageOperational:
		return def.Phase != PhaseFFP && def.Stage != StageKeySecurity
	}
	return def.Phase == PhaseAll || def.Phase == PhaseFFP
}

// reservedValue reports the constants that only answer (RFC 7143 §6.2: they "MUST ONLY
// be used as described"): offering one is answered Reject, as SPDK refuses a
// NotUnderstood value for a known key.
func reservedValue(v string) bool {
	return v == ValueReject || v == ValueIrrelevant || v == ValueNotUnderstood
}

// answer negotiates a key offered or declared for the first time.
func (n *Negotiator) answer(def KeyDef, kv KeyValue, dst []byte) ([]byte, error) {
	switch def.Kind {
	case KindDeclarative:
		return dst, n.declare(def, kv.Value)
	case KindNumDeclarative:
		// A declaration is not answered, so a bad one cannot be refused with Reject;
		// the target could not send within it either: the login fails (LIO does the
		// same), or the Text Request is rejected.
		v, err := ParseNumber(kv.Value)
		if err != nil || v < def.Min || v > def.Max {
			return dst, loginErr(StatusInitiatorError, kv.Key,
				fmt.Errorf("%w: %s=%q", ErrBadValue, kv.Key, kv.Value))
		}
		n.p.MaxXmitDataSegmentLength = uint32(v)
		return dst, nil
	case KindBoolAnd, KindBoolOr:
		v, err := ParseBool(kv.Value)
		if err != nil {
			return AppendKey(dst, kv.Key, ValueReject), nil
		}
		ours := n.cfg.ourBool(def.ID)
		res := v && ours
		if def.Kind == KindBoolOr {
			res = v || ours
		}
		n.p.setBool(def.ID, res)
		return AppendKey(dst, kv.Key, FormatBool(res)), nil
	case KindNumMin, KindNumMax:
		return n.answerNumber(def, kv, dst), nil
	case KindList:
		v, ok := n.choose(def.ID, kv.Value)
		if !ok {
			n.authRefused = n.authRefused || def.ID == KeyAuthMethod
			return AppendKey(dst, kv.Key, ValueReject), nil
		}
		n.setList(def.ID, v)
		return AppendKey(dst, kv.Key, v), nil
	case KindIrrelevant:
		return AppendKey(dst, kv.Key, ValueIrrelevant), nil
	case KindCommand:
		return dst, nil // SendTargets in FFP: the caller answers it
	}
	// KindAuth reaches here only when the caller did not route it to CHAP, and
	// KindObsolete keys are refused (RFC 7143 §13.25: IFMarkInt and OFMarkInt MUST be
	// answered Reject).
	return AppendKey(dst, kv.Key, ValueReject), nil
}

// answerNumber applies a Minimum or Maximum result function (RFC 7143 §6.2.2).
func (n *Negotiator) answerNumber(def KeyDef, kv KeyValue, dst []byte) []byte {
	v, err := ParseNumber(kv.Value)
	if err != nil || v < def.Min || v > def.Max {
		return AppendKey(dst, kv.Key, ValueReject)
	}
	ours := n.cfg.ourNum(def.ID)
	res := min(v, ours)
	if def.Kind == KindNumMax {
		res = max(v, ours)
	}
	if def.ID == KeyFirstBurstLength {
		if n.p.InitialR2T && !n.p.ImmediateData {
			// §13.14: irrelevant when no unsolicited data can flow.
			return AppendKey(dst, kv.Key, ValueIrrelevant)
		}
		// §13.14: FirstBurstLength MUST NOT exceed MaxBurstLength.
		res = min(res, uint64(n.p.MaxBurstLength))
	}
	n.p.setNum(def.ID, res)
	return AppendKeyNumber(dst, kv.Key, res)
}

// declare records an initiator's declaration.
func (n *Negotiator) declare(def KeyDef, v string) error {
	switch def.ID {
	case KeyInitiatorName:
		n.p.InitiatorName = v
	case KeyInitiatorAlias:
		n.p.InitiatorAlias = v
	case KeyTargetName:
		if !n.discovery { // a discovery session has no target
			n.p.TargetName = v
		}
	case KeySessionType:
		st, err := ParseSessionType(v)
		if err != nil {
			return loginErr(StatusSessionTypeNotSupported, def.Name, err)
		}
		if st != n.p.SessionType {
			return loginErr(StatusInitiatorError, def.Name,
				fmt.Errorf("%w: SessionType changed to %s", ErrDuplicateKey, v))
		}
	}
	return nil
}

// renegotiate handles a key the initiator sends again in the same login.
func (n *Negotiator) renegotiate(def KeyDef, kv KeyValue, dst []byte) ([]byte, error) {
	switch {
	case def.ID == KeyMaxRecvDataSegmentLength:
		// A declaration may be repeated; the last one holds (SPDK allows this too).
		return n.answer(def, kv, dst)
	case def.ID == KeyInitiatorAlias || def.ID == KeyNodeArchitecture:
		return dst, n.declare(def, kv.Value)
	case def.Kind == KindDeclarative && n.declaredValue(def.ID) == kv.Value:
		// libiscsi re-sent its identity keys in later login PDUs for years; an
		// identical re-declaration changes nothing.
		return dst, nil
	}
	return dst, loginErr(StatusInitiatorError, kv.Key, ErrDuplicateKey)
}

func (n *Negotiator) declaredValue(id KeyID) string {
	switch id {
	case KeyInitiatorName:
		return n.p.InitiatorName
	case KeyTargetName:
		return n.p.TargetName
	case KeySessionType:
		return n.p.SessionType.String()
	}
	return ""
}

// choose selects the first value of an offered list the target accepts (RFC 7143
// §6.2.1: the acceptor answers with the first value it supports).
func (n *Negotiator) choose(id KeyID, offer string) (string, bool) {
	var accept func(string) bool
	switch id {
	case KeyHeaderDigest, KeyDataDigest:
		set := n.cfg.HeaderDigest
		if id == KeyDataDigest {
			set = n.cfg.DataDigest
		}
		if n.discovery {
			// Digests buy nothing on a discovery session and some initiators and
			// targets mishandle them there (sahlberg/libiscsi#239): take None
			// whenever it is offered, CRC32C only if it is all that is offered.
			if listHas(offer, ValueNone) {
				return ValueNone, true
			}
			set = DigestCRC32C
		}
		accept = func(v string) bool {
			return v == ValueNone && set&DigestNone != 0 ||
				v == "CRC32C" && set&DigestCRC32C != 0
		}
	case KeyAuthMethod:
		accept = func(v string) bool {
			return v == ValueNone && n.auth&AuthNone != 0 || v == "CHAP" && n.auth&AuthCHAP != 0
		}
	case KeyTaskReporting:
		accept = func(v string) bool { return v == "RFC3720" }
	default:
		return "", false
	}
	for v := range ListValues(offer) {
		if accept(v) {
			return v, true
		}
	}
	return "", false
}

func listHas(list, v string) bool {
	for item := range ListValues(list) {
		if item == v {
			return true
		}
	}
	return false
}

func (n *Negotiator) setList(id KeyID, v string) {
	switch id {
	case KeyHeaderDigest:
		n.p.HeaderDigest = v == "CRC32C"
	case KeyDataDigest:
		n.p.DataDigest = v == "CRC32C"
	case KeyAuthMethod:
		n.p.AuthMethod = AuthNone
		if v == "CHAP" {
			n.p.AuthMethod = AuthCHAP
		}
	}
}

// AuthState is how AuthMethod stands in a login.
type AuthState uint8

// AuthMethod negotiation states.
const (
	AuthOpen    AuthState = iota // not offered yet
	AuthChosen                   // offered and answered with a method
	AuthRefused                  // offered and answered Reject: no acceptable method
)

// AuthMethod reports the authentication method negotiated so far.
func (n *Negotiator) AuthMethod() (AuthSet, AuthState) {
	switch {
	case n.authRefused:
		return 0, AuthRefused
	case n.state[KeyAuthMethod] == keyAnswered:
		return n.p.AuthMethod, AuthChosen
	}
	return 0, AuthOpen
}

// offerCandidates lists the keys the target may have to offer itself, in offer order.
var offerCandidates = [...]KeyID{KeyHeaderDigest, KeyDataDigest, KeyMaxBurstLength,
	KeyFirstBurstLength, KeyImmediateData}

// Offers appends the target's own offers for keys the initiator left open whose
// defaults the target cannot run with (RFC 7143 §6.2: either side may offer): CRC32C
// digests when None is not acceptable, MaxBurstLength and FirstBurstLength below their
// defaults, ImmediateData=No. It returns false when there is nothing to offer. The
// target must not transit while its offers are unanswered, so [Login] calls it when
// the initiator asks to leave the operational stage and answers with T=0 if it made
// offers. Discovery sessions get no offers: their defaults always do, and initiators
// cope badly with target offers there.
func (n *Negotiator) Offers(dst []byte) ([]byte, bool) {
	if n.discovery {
		return dst, false
	}
	made := false
	for _, id := range offerCandidates {
		v, ok := n.offerValue(id)
		if !ok {
			continue
		}
		n.state[id] = keyOffered
		n.offered[id] = v
		dst = AppendKey(dst, keyTable[id].Name, v)
		made = true
	}
	return dst, made
}

// needsOffers reports whether Offers would offer anything.
func (n *Negotiator) needsOffers() bool {
	if n.discovery {
		return false
	}
	for _, id := range offerCandidates {
		if _, ok := n.offerValue(id); ok {
			return true
		}
	}
	return false
}

// offerValue returns the value the target must offer for a key the initiator left
// open, if any.
func (n *Negotiator) offerValue(id KeyID) (string, bool) {
	if n.state[id] != keyOpen || (keyTable[id].LeadingOnly && !n.leading) {
		return "", false
	}
	switch id {
	case KeyHeaderDigest:
		return "CRC32C", n.cfg.HeaderDigest&DigestNone == 0
	case KeyDataDigest:
		return "CRC32C", n.cfg.DataDigest&DigestNone == 0
	case KeyMaxBurstLength:
		v := n.cfg.MaxBurstLength
		return strconv.FormatUint(uint64(v), 10), v < n.p.MaxBurstLength
	case KeyFirstBurstLength:
		// Finish caps FirstBurstLength at MaxBurstLength anyway; offer only a value
		// below what that cap leaves.
		v := n.cfg.FirstBurstLength
		relevant := !n.p.InitialR2T || n.p.ImmediateData
		effective := min(n.p.FirstBurstLength, n.p.MaxBurstLength)
		return strconv.FormatUint(uint64(v), 10), relevant && v < effective
	case KeyImmediateData:
		return ValueNo, !n.cfg.ImmediateData && n.p.ImmediateData
	}
	return "", false
}

// takeAnswer checks the initiator's answer to one of the target's offers (RFC 7143
// §6.2: the answer must be a possible result of the key's result function).
func (n *Negotiator) takeAnswer(def KeyDef, v string) error {
	n.state[def.ID] = keySettled
	if reservedValue(v) {
		// Reject, Irrelevant or NotUnderstood leave the key at its value;
		// Finish decides whether the target can run with it.
		return nil
	}
	offered := n.offered[def.ID]
	bad := loginErr(StatusInitiatorError, def.Name,
		fmt.Errorf("%w: answer %q to the offer %q", ErrBadValue, v, offered))
	switch def.Kind {
	case KindNumMin:
		x, err := ParseNumber(v)
		o, _ := ParseNumber(offered)
		if err != nil || x < def.Min || x > o {
			return bad
		}
		n.p.setNum(def.ID, x)
	case KindBoolAnd:
		x, err := ParseBool(v)
		if err != nil || (x && offered == ValueNo) {
			return bad
		}
		n.p.setBool(def.ID, x)
	case KindList:
		if strings.IndexByte(v, ',') >= 0 || !listHas(offered, v) {
			return bad
		}
		n.setList(def.ID, v)
	}
	return nil
}

// Finish ends the login's negotiation and returns the parameters the connection runs
// with. Offers the initiator left unanswered take the offered value for Minimum and
// AND keys, whose answer RFC 7143 lets the initiator omit when it accepts (open-iscsi
// does not answer them; LIO treats them as "reply optional" for the same reason).
// FirstBurstLength is capped at MaxBurstLength (§13.14). A result the target cannot
// run with (digests it requires were refused, a burst above its limits because the
// initiator refused its offer) is a *LoginError with status 0200.
func (n *Negotiator) Finish() (Params, error) {
	for _, id := range offerCandidates {
		if n.state[id] != keyOffered {
			continue
		}
		n.state[id] = keySettled
		switch keyTable[id].Kind {
		case KindNumMin:
			v, _ := ParseNumber(n.offered[id])
			n.p.setNum(id, v)
		case KindBoolAnd:
			n.p.setBool(id, false)
		}
	}
	n.p.FirstBurstLength = min(n.p.FirstBurstLength, n.p.MaxBurstLength)
	if err := n.acceptable(); err != nil {
		return Params{}, err
	}
	return n.p, nil
}

func (n *Negotiator) acceptable() error {
	if n.discovery {
		return nil
	}
	fail := func(id KeyID) error {
		return loginErr(StatusInitiatorError, keyTable[id].Name,
			fmt.Errorf("%w: the target cannot run with the negotiated value", ErrBadValue))
	}
	switch {
	case !n.p.HeaderDigest && n.cfg.HeaderDigest&DigestNone == 0:
		return fail(KeyHeaderDigest)
	case !n.p.DataDigest && n.cfg.DataDigest&DigestNone == 0:
		return fail(KeyDataDigest)
	case !n.leading:
		return nil
	case n.p.MaxBurstLength > n.cfg.MaxBurstLength:
		return fail(KeyMaxBurstLength)
	case n.p.FirstBurstLength > n.cfg.FirstBurstLength &&
		(!n.p.InitialR2T || n.p.ImmediateData):
		return fail(KeyFirstBurstLength)
	case n.p.ImmediateData && !n.cfg.ImmediateData:
		return fail(KeyImmediateData)
	}
	return nil
}
