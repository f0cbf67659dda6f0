package iscsi

// KeyID names a text key this package knows. The table ([KeyTable], [Lookup])
// describes each one as RFC 7143 §12 and §13 define it; the [Negotiator] is driven by
// that table.
type KeyID uint8

// Known keys, in the order of RFC 7143 §13, then the security keys (§12), then the iSER
// keys (RFC 7145) a TCP target must still answer.
const (
	KeyHeaderDigest KeyID = iota
	KeyDataDigest
	KeyMaxConnections
	KeySendTargets
	KeyTargetName
	KeyInitiatorName
	KeyTargetAlias
	KeyInitiatorAlias
	KeyTargetAddress
	KeyTargetPortalGroupTag
	KeyInitialR2T
	KeyImmediateData
	KeyMaxRecvDataSegmentLength
	KeyMaxBurstLength
	KeyFirstBurstLength
	KeyDefaultTime2Wait
	KeyDefaultTime2Retain
	KeyMaxOutstandingR2T
	KeyDataPDUInOrder
	KeyDataSequenceInOrder
	KeyErrorRecoveryLevel
	KeySessionType
	KeyTaskReporting
	KeyProtocolLevel
	KeyNodeArchitecture
	KeyIFMarker
	KeyOFMarker
	KeyOFMarkInt
	KeyIFMarkInt
	KeyAuthMethod
	KeyCHAPA
	KeyCHAPI
	KeyCHAPC
	KeyCHAPN
	KeyCHAPR
	KeyRDMAExtensions
	KeyInitiatorRecvDataSegmentLength
	KeyTargetRecvDataSegmentLength
	numKeys
)

// KeyKind is how a key is negotiated: its result function (RFC 7143 §6.2, §13).
type KeyKind uint8

// Key kinds.
const (
	// KindDeclarative: the sender states a value; nothing is answered.
	KindDeclarative KeyKind = iota + 1
	// KindNumDeclarative: a numeric declaration that holds per direction
	// (MaxRecvDataSegmentLength: each side declares what it receives).
	KindNumDeclarative
	// KindBoolAnd: the result is offer AND answer; "No" settles it alone.
	KindBoolAnd
	// KindBoolOr: the result is offer OR answer; "Yes" settles it alone.
	KindBoolOr
	// KindNumMin: the answer is at most the offer; the result is the answer.
	KindNumMin
	// KindNumMax: the answer is at least the offer; the result is the answer.
	KindNumMax
	// KindList: the answer is the first value of the offered list the acceptor
	// supports (the offer is in order of preference), or "Reject".
	KindList
	// KindAuth: the security keys of an authentication method (CHAP_*), exchanged by
	// the method's own rules during the security stage (RFC 7143 §12).
	KindAuth
	// KindObsolete: keys RFC 7143 §13.25 obsoleted whose only answer is "Reject".
	KindObsolete
	// KindIrrelevant: keys that never apply on this transport (the iSER keys of RFC
	// 7145, relevant only with RDMAExtensions=Yes), answered "Irrelevant".
	KindIrrelevant
	// KindCommand: SendTargets, a request answered by the target's data rather than a
	// negotiated value.
	KindCommand
)

// KeyPhase is when a key may be exchanged (RFC 7143 §13 "Use").
type KeyPhase uint8

// Key phases.
const (
	PhaseLogin KeyPhase = iota + 1 // IO and LO: login only
	PhaseAll                       // ALL: login and full feature phase
	PhaseFFP                       // FFPO: full feature phase only
)

// KeyStage is which login stage may carry a key.
type KeyStage uint8

// Key stages.
const (
	// StageKeyOperational: LoginOperationalNegotiation only (and FFP per KeyPhase).
	StageKeyOperational KeyStage = iota + 1
	// StageKeyAny: "Any-Stage", also allowed in SecurityNegotiation.
	StageKeyAny
	// StageKeySecurity: SecurityNegotiation only (AuthMethod and the auth keys).
	StageKeySecurity
)

// KeyScope is the key's scope (RFC 7143 §13: SW or CO).
type KeyScope uint8

// Key scopes.
const (
	ScopeConnection KeyScope = iota + 1 // CO: per connection
	ScopeSession                        // SW: session-wide
)

// KeySender is who may send a key.
type KeySender uint8

// Key senders.
const (
	SenderInitiator KeySender = 1 << iota
	SenderTarget
	SenderBoth = SenderInitiator | SenderTarget
)

// KeyDef describes one key.
type KeyDef struct {
	ID    KeyID
	Name  string
	Kind  KeyKind
	Phase KeyPhase
	Stage KeyStage
	// LeadingOnly ("LO"): session-wide, negotiated on the leading connection only.
	LeadingOnly bool
	Scope       KeyScope
	Sender      KeySender
	// Min and Max bound numeric values (inclusive).
	Min, Max uint64
	// Default is the RFC default, the value in force until negotiated.
	Default string
	// DiscoveryIrrelevant: "Irrelevant when: SessionType=Discovery".
	DiscoveryIrrelevant bool
	// Section is the defining section of RFC 7143 (or the RFC that defines the key).
	Section string
}

const max24 = 1<<24 - 1

// keyTable describes every key RFC 7143 §12 and §13 define (plus RFC 4850's
// X#NodeArchitecture and RFC 7145's iSER keys), indexed by KeyID.
var keyTable = [numKeys]KeyDef{
	{KeyHeaderDigest, "HeaderDigest", KindList, PhaseLogin, StageKeyOperational, false,
		ScopeConnection, SenderBoth, 0, 0, "None", false, "RFC 7143 §13.1"},
	{KeyDataDigest, "DataDigest", KindList, PhaseLogin, StageKeyOperational, false,
		ScopeConnection, SenderBoth, 0, 0, "None", false, "RFC 7143 §13.1"},
	{KeyMaxConnections, "MaxConnections", KindNumMin, PhaseLogin, StageKeyOperational,
		true, ScopeSession, SenderBoth, 1, 65535, "1", true, "RFC 7143 §13.2"},
	{KeySendTargets, "SendTargets", KindCommand, PhaseFFP, StageKeyOperational, false,
		ScopeSession, SenderInitiator, 0, 0, "", false, "RFC 7143 §13.3"},
	{KeyTargetName, "TargetName", KindDeclarative, PhaseLogin, StageKeyAny, false,
		ScopeSession, SenderBoth, 0, 0, "", false, "RFC 7143 §13.4"},
	{KeyInitiatorName, "InitiatorName", KindDeclarative, PhaseLogin, StageKeyAny, false,
		ScopeSession, SenderInitiator, 0, 0, "", false, "RFC 7143 §13.5"},
	{KeyTargetAlias, "TargetAlias", KindDeclarative, PhaseAll, StageKeyAny, false,
		ScopeSession, SenderTarget, 0, 0, "", false, "RFC 7143 §13.6"},
	{KeyInitiatorAlias, "InitiatorAlias", KindDeclarative, PhaseAll, StageKeyAny, false,
		ScopeSession, SenderInitiator, 0, 0, "", false, "RFC 7143 §13.7"},
	{KeyTargetAddress, "TargetAddress", KindDeclarative, PhaseAll, StageKeyAny, false,
		ScopeSession, SenderTarget, 0, 0, "", false, "RFC 7143 §13.8"},
	{KeyTargetPortalGroupTag, "TargetPortalGroupTag", KindDeclarative, PhaseLogin,
		StageKeyAny, false, ScopeSession, SenderTarget, 0, 65535, "", false,
		"RFC 7143 §13.9"},
	{KeyInitialR2T, "InitialR2T", KindBoolOr, PhaseLogin, StageKeyOperational, true,
		ScopeSession, SenderBoth, 0, 0, "Yes", true, "RFC 7143 §13.10"},
	{KeyImmediateData, "ImmediateData", KindBoolAnd, PhaseLogin, StageKeyOperational,
		true, ScopeSession, SenderBoth, 0, 0, "Yes", true, "RFC 7143 §13.11"},
	{KeyMaxRecvDataSegmentLength, "MaxRecvDataSegmentLength", KindNumDeclarative,
		PhaseAll, StageKeyOperational, false, ScopeConnection, SenderBoth, 512, max24,
		"8192", false, "RFC 7143 §13.12"},
	{KeyMaxBurstLength, "MaxBurstLength", KindNumMin, PhaseLogin, StageKeyOperational,
		true, ScopeSession, SenderBoth, 512, max24, "262144", true, "RFC 7143 §13.13"},
	{KeyFirstBurstLength, "FirstBurstLength", KindNumMin, PhaseLogin,
		StageKeyOperational, true, ScopeSession, SenderBoth, 512, max24, "65536", true,
		"RFC 7143 §13.14"},
	{KeyDefaultTime2Wait, "DefaultTime2Wait", KindNumMax, PhaseLogin,
		StageKeyOperational, true, ScopeSession, SenderBoth, 0, 3600, "2", false,
		"RFC 7143 §13.15"},
	{KeyDefaultTime2Retain, "DefaultTime2Retain", KindNumMin, PhaseLogin,
		StageKeyOperational, true, ScopeSession, SenderBoth, 0, 3600, "20", false,
		"RFC 7143 §13.16"},
	{KeyMaxOutstandingR2T, "MaxOutstandingR2T", KindNumMin, PhaseLogin,
		StageKeyOperational, true, ScopeSession, SenderBoth, 1, 65535, "1", true,
		"RFC 7143 §13.17"},
	{KeyDataPDUInOrder, "DataPDUInOrder", KindBoolOr, PhaseLogin, StageKeyOperational,
		true, ScopeSession, SenderBoth, 0, 0, "Yes", true, "RFC 7143 §13.18"},
	{KeyDataSequenceInOrder, "DataSequenceInOrder", KindBoolOr, PhaseLogin,
		StageKeyOperational, true, ScopeSession, SenderBoth, 0, 0, "Yes", true,
		"RFC 7143 §13.19"},
	{KeyErrorRecoveryLevel, "ErrorRecoveryLevel", KindNumMin, PhaseLogin,
		StageKeyOperational, true, ScopeSession, SenderBoth, 0, 2, "0", false,
		"RFC 7143 §13.20"},
	{KeySessionType, "SessionType", KindDeclarative, PhaseLogin, StageKeyAny, true,
		ScopeSession, SenderInitiator, 0, 0, "Normal", false, "RFC 7143 §13.21"},
	{KeyTaskReporting, "TaskReporting", KindList, PhaseLogin, StageKeyOperational, true,
		ScopeSession, SenderBoth, 0, 0, "RFC3720", true, "RFC 7143 §13.23"},
	{KeyProtocolLevel, "iSCSIProtocolLevel", KindNumMin, PhaseLogin, StageKeyOperational,
		true, ScopeSession, SenderBoth, 0, 31, "1", true, "RFC 7143 §13.24, RFC 7144 §4"},
	// X#NodeArchitecture is taken in any stage: it only informs, and refusing it would
	// answer a declaration.
	{KeyNodeArchitecture, "X#NodeArchitecture", KindDeclarative, PhaseLogin,
		StageKeyAny, true, ScopeSession, SenderBoth, 0, 0, "", false,
		"RFC 7143 §13.26"},
	{KeyIFMarker, "IFMarker", KindBoolAnd, PhaseLogin, StageKeyOperational, false,
		ScopeConnection, SenderBoth, 0, 0, "No", false, "RFC 7143 §13.25"},
	{KeyOFMarker, "OFMarker", KindBoolAnd, PhaseLogin, StageKeyOperational, false,
		ScopeConnection, SenderBoth, 0, 0, "No", false, "RFC 7143 §13.25"},
	{KeyOFMarkInt, "OFMarkInt", KindObsolete, PhaseLogin, StageKeyOperational, false,
		ScopeConnection, SenderBoth, 0, 0, "", false, "RFC 7143 §13.25"},
	{KeyIFMarkInt, "IFMarkInt", KindObsolete, PhaseLogin, StageKeyOperational, false,
		ScopeConnection, SenderBoth, 0, 0, "", false, "RFC 7143 §13.25"},
	{KeyAuthMethod, "AuthMethod", KindList, PhaseLogin, StageKeySecurity, false,
		ScopeConnection, SenderBoth, 0, 0, "None", false, "RFC 7143 §12"},
	{KeyCHAPA, "CHAP_A", KindAuth, PhaseLogin, StageKeySecurity, false, ScopeConnection,
		SenderBoth, 0, 0, "", false, "RFC 7143 §12.1.3"},
	{KeyCHAPI, "CHAP_I", KindAuth, PhaseLogin, StageKeySecurity, false, ScopeConnection,
		SenderBoth, 0, 255, "", false, "RFC 7143 §12.1.3"},
	{KeyCHAPC, "CHAP_C", KindAuth, PhaseLogin, StageKeySecurity, false, ScopeConnection,
		SenderBoth, 0, 0, "", false, "RFC 7143 §12.1.3"},
	{KeyCHAPN, "CHAP_N", KindAuth, PhaseLogin, StageKeySecurity, false, ScopeConnection,
		SenderBoth, 0, 0, "", false, "RFC 7143 §12.1.3"},
	{KeyCHAPR, "CHAP_R", KindAuth, PhaseLogin, StageKeySecurity, false, ScopeConnection,
		SenderBoth, 0, 0, "", false, "RFC 7143 §12.1.3"},
	{KeyRDMAExtensions, "RDMAExtensions", KindBoolAnd, PhaseLogin, StageKeyOperational,
		true, ScopeSession, SenderBoth, 0, 0, "No", true, "RFC 7145"},
	{KeyInitiatorRecvDataSegmentLength, "InitiatorRecvDataSegmentLength", KindIrrelevant,
		PhaseAll, StageKeyOperational, false, ScopeConnection, SenderBoth, 512, max24,
		"8192", false, "RFC 7145"},
	{KeyTargetRecvDataSegmentLength, "TargetRecvDataSegmentLength", KindIrrelevant,
		PhaseAll, StageKeyOperational, false, ScopeConnection, SenderBoth, 512, max24,
		"8192", false, "RFC 7145"},
}

var keyByName = func() map[string]KeyID {
	m := make(map[string]KeyID, numKeys)
	for i, k := range keyTable {
		if k.ID != KeyID(i) {
			panic("iscsi: Keys table out of order at " + k.Name)
		}
		m[k.Name] = k.ID
	}
	return m
}()

// Lookup returns the definition of a key by its exact (case-sensitive) name.
func Lookup(name string) (KeyDef, bool) {
	id, ok := keyByName[name]
	if !ok {
		return KeyDef{}, false
	}
	return keyTable[id], true
}

// KeyTable returns a copy of the whole key table, indexed by KeyID.
func KeyTable() []KeyDef { return append([]KeyDef(nil), keyTable[:]...) }

// Def returns the key's definition.
//
// Preconditions: id is one of the Key constants.
func (id KeyID) Def() KeyDef { return keyTable[id] }

// String returns the key's name.
func (id KeyID) String() string {
	if id < numKeys {
		return keyTable[id].Name
	}
	return "KeyID(?)"
}
