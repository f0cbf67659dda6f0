package iscsi

import (
	"errors"
	"fmt"
	"io"
)

// LoginIdentity is who is logging in, from the first Login Request and its keys.
type LoginIdentity struct {
	ISID           ISID
	TSIH           uint16 // 0 for a new session
	CID            uint16
	InitiatorName  string
	InitiatorAlias string
	TargetName     string // empty for discovery sessions
	SessionType    SessionType
}

// LoginPolicy is the target's answer to [LoginHooks.Authorize]: how to negotiate with
// and authenticate this initiator.
type LoginPolicy struct {
	// Config holds the target's negotiation limits; it must pass Config.Validate.
	Config Config
	// Auth is the set of authentication methods accepted: AuthNone alone (no
	// authentication), AuthCHAP alone (CHAP required), or both (the initiator
	// chooses). Zero means AuthNone.
	Auth AuthSet
	// CHAP configures CHAP when Auth holds AuthCHAP.
	CHAP CHAPPolicy
	// CHAPSecret returns the secret of the CHAP user the initiator names (CHAP_N).
	CHAPSecret CHAPSecretFunc
	// RedirectAddress is sent as TargetAddress with a class 1 (redirection) status.
	RedirectAddress string
}

// LoginHooks is what the target supplies to a [Login]: the decisions that need its
// configuration and session table. The calls are synchronous and made from Step.
type LoginHooks interface {
	// Authorize is called once, when the first complete key block has named the
	// initiator, the session type and (for normal sessions) the target. It finds the
	// target and checks that the initiator may log in, returning the policy, or a
	// failure status: 0203 not found, 0204 target removed, 0202 authorization
	// failure, 0209 session type not supported, 0101/0102 redirection (with
	// RedirectAddress), 0301 service unavailable.
	Authorize(id LoginIdentity) (LoginPolicy, Status)
	// JoinSession is called after Authorize when TSIH is not 0: the initiator adds a
	// connection to session TSIH (or reinstates connection CID of it, RFC 7143
	// §6.3.4). It returns the session's parameters, or 020a (session does not
	// exist), 0206 (too many connections) or 0208 (can't include in session).
	JoinSession(id LoginIdentity) (Params, Status)
	// Establish is called when the login is about to succeed. For TSIH 0 the target
	// creates the session, first reinstating (closing) any session of the same
	// initiator name, ISID and target (RFC 7143 §6.3.5), and returns the new
	// non-zero TSIH; for an added connection it returns the session's TSIH. Any other
	// status fails the login.
	Establish(id LoginIdentity, p Params) (tsih uint16, st Status)
}

// LoginState is where a connection's login stands.
type LoginState uint8

// Login states.
const (
	LoginStateStart       LoginState = iota // no Login Request yet
	LoginStateSecurity                      // in SecurityNegotiation
	LoginStateOperational                   // in LoginOperationalNegotiation
	LoginStateFullFeature                   // logged in: the final response was built
	LoginStateFailed                        // a failure response was built
)

// String names the state.
func (s LoginState) String() string {
	switch s {
	case LoginStateStart:
		return "start"
	case LoginStateSecurity:
		return "security"
	case LoginStateOperational:
		return "operational"
	case LoginStateFullFeature:
		return "full-feature"
	case LoginStateFailed:
		return "failed"
	}
	return "LoginState(?)"
}

// LoginReply is the target's answer to one Login Request.
type LoginReply struct {
	// Header is the Login Response. StatSN, ExpCmdSN and MaxCmdSN are left 0: the
	// connection stamps them (see BHS.PutSequence), as it owns the sequence numbers.
	Header LoginResponse
	// Data is the response's key=value text (Header.DataSegmentLength bytes), at most
	// 8192 bytes: the initiator's MaxRecvDataSegmentLength has not taken effect yet.
	Data []byte
	// Done: the login succeeded. After sending this response the connection runs in
	// full feature phase with Params.
	Done   bool
	Params Params
	// Failed: send this response, then close the connection. Err says why.
	Failed bool
	Err    error
}

// loginMaxData is the largest login data segment either side may send: login runs
// under the default MaxRecvDataSegmentLength (RFC 7143 §13.12).
const loginMaxData = DefaultMaxRecvDataSegmentLength

// Login is the target side of one connection's login phase (RFC 7143 §6.3, §11.12,
// §11.13): it checks each Login Request, drives the stages with the T and C bits,
// negotiates keys through a [Negotiator], authenticates through a [CHAPServer], and
// builds each Login Response. It is pure: the target's decisions come through
// [LoginHooks] and randomness (CHAP challenges) from the io.Reader it is given.
//
// It is not safe for concurrent use; one connection owns it.
type Login struct {
	hooks LoginHooks
	rand  io.Reader
	state LoginState
	stage Stage
	first LoginRequest // the first request's header: ISID, TSIH, CID
	id    LoginIdentity

	identified bool
	policy     LoginPolicy
	neg        *Negotiator
	chap       *CHAPServer
	authDone   bool
	declared   bool // TargetPortalGroupTag and TargetAlias sent

	asm     Assembler
	pending []byte     // response text still to send after a C=1 response
	final   LoginReply // the reply that goes with the last piece of pending
}

// NewLogin starts the login of a new connection.
func NewLogin(hooks LoginHooks, rand io.Reader) *Login {
	return &Login{hooks: hooks, rand: rand, asm: Assembler{max: DefaultMaxTextLen}}
}

// State reports where the login stands.
func (l *Login) State() LoginState { return l.state }

// Identity reports who is logging in (complete once the first key block was read).
func (l *Login) Identity() LoginIdentity { return l.id }

// errLoginOver is returned for requests after the login ended.
var errLoginOver = errors.New("iscsi: login request after the login phase ended")

// Step processes one Login Request, its header decoded and data its data segment, and
// returns the Login Response to send. Failures are replies too: a response with a
// class 2 or 3 status (or class 1 for redirection) and Failed set.
func (l *Login) Step(req *LoginRequest, data []byte) LoginReply {
	switch l.state {
	case LoginStateFullFeature, LoginStateFailed:
		return l.fail(req, StatusInitiatorError, nil, errLoginOver)
	}
	if err := l.checkHeader(req); err != nil {
		return l.fail(req, err.Status, nil, err)
	}
	if len(l.pending) > 0 {
		return l.nextPiece(req, data)
	}
	block, complete, err := l.asm.Add(data, req.Continue)
	if err != nil {
		return l.fail(req, StatusInitiatorError, nil, err)
	}
	if !complete {
		// RFC 7143 §11.12.2: each Login Request with C=1 gets an empty response.
		return LoginReply{Header: l.header(req, false, 0)}
	}
	kvs, err := ParseText(block)
	if err != nil {
		return l.fail(req, StatusInitiatorError, nil, err)
	}
	if !l.identified {
		if lerr := l.identify(req, kvs); lerr != nil {
			return l.failLogin(req, nil, lerr)
		}
	}
	return l.stageStep(req, kvs)
}

// checkHeader applies the RFC 7143 §11.12 checks to every Login Request header.
func (l *Login) checkHeader(req *LoginRequest) *LoginError {
	bad := func(msg string) *LoginError {
		return loginErr(StatusInitiatorError, "", errors.New("login: "+msg))
	}
	if l.state == LoginStateStart {
		if req.VersionMin > Version {
			return loginErr(StatusUnsupportedVersion, "", fmt.Errorf(
				"login: version-min %d, the target speaks %d", req.VersionMin, Version))
		}
		if req.CSG != StageSecurity && req.CSG != StageOperational {
			return bad("first request not in a login stage")
		}
		l.first = *req
		l.stage = req.CSG
		l.state = stageState(req.CSG)
	}
	switch {
	case req.ISID != l.first.ISID || req.TSIH != l.first.TSIH || req.CID != l.first.CID:
		return bad("ISID, TSIH or CID changed during login")
	case req.CSG != l.stage:
		return bad("CSG is not the current stage")
	case req.Transit && req.Continue:
		return bad("T and C both set") // §11.12.2
	case req.Transit && !validTransit(req.CSG, req.NSG):
		return bad("invalid stage transition")
	}
	return nil
}

// validTransit: stages only move forward, the operational stage may be skipped, and 2
// is reserved (RFC 7143 §6.3, §11.12.3).
func validTransit(csg, nsg Stage) bool {
	switch csg {
	case StageSecurity:
		return nsg == StageOperational || nsg == StageFullFeature
	case StageOperational:
		return nsg == StageFullFeature
	}
	return false
}

func stageState(s Stage) LoginState {
	if s == StageSecurity {
		return LoginStateSecurity
	}
	return LoginStateOperational
}

// identify reads the identity keys of the first key block and asks the target about
// them (RFC 7143 §6.3.1: the first Login Request carries InitiatorName and, for a
// normal session, TargetName; SessionType defaults to Normal).
func (l *Login) identify(req *LoginRequest, kvs []KeyValue) *LoginError {
	name, _ := LookupKey(kvs, "InitiatorName")
	if name == "" {
		return loginErr(StatusMissingParameter, "InitiatorName", nil)
	}
	st := SessionNormal
	if v, ok := LookupKey(kvs, "SessionType"); ok {
		var err error
		if st, err = ParseSessionType(v); err != nil {
			return loginErr(StatusSessionTypeNotSupported, "SessionType", err)
		}
	}
	target, _ := LookupKey(kvs, "TargetName")
	if st == SessionNormal && target == "" {
		return loginErr(StatusMissingParameter, "TargetName", nil)
	}
	if st == SessionDiscovery {
		target = ""
	}
	alias, _ := LookupKey(kvs, "InitiatorAlias")
	l.id = LoginIdentity{ISID: req.ISID, TSIH: req.TSIH, CID: req.CID,
		InitiatorName: name, InitiatorAlias: alias, TargetName: target, SessionType: st}
	policy, status := l.hooks.Authorize(l.id)
	if !status.Success() {
		l.policy.RedirectAddress = policy.RedirectAddress
		return loginErr(status, "", errors.New("login: refused by the target"))
	}
	if err := policy.Config.Validate(); err != nil {
		return loginErr(StatusTargetError, "", err)
	}
	var session *Params
	if req.TSIH != 0 {
		sp, status := l.hooks.JoinSession(l.id)
		if !status.Success() {
			return loginErr(status, "", errors.New("login: cannot join the session"))
		}
		session = &sp
	}
	if policy.Auth == 0 {
		policy.Auth = AuthNone
	}
	l.policy = policy
	l.neg = NewNegotiator(policy.Config, st, session)
	l.neg.SetAuthMethods(policy.Auth)
	l.identified = true
	return nil
}

// stageStep negotiates a complete key block in the current stage and decides whether
// to transit.
func (l *Login) stageStep(req *LoginRequest, kvs []KeyValue) LoginReply {
	var out []byte
	if !l.declared {
		out = l.declareTarget(out)
	}
	var transit bool
	var next Stage
	var lerr *LoginError
	if l.stage == StageSecurity {
		out, transit, next, lerr = l.securityStep(req, kvs, out)
	} else {
		out, transit, next, lerr = l.operationalStep(req, kvs, out)
	}
	if lerr != nil {
		return l.failLogin(req, out, lerr)
	}
	if transit && next == StageFullFeature {
		return l.finish(req, out)
	}
	return l.withData(LoginReply{Header: l.header(req, transit, next)}, out)
}

// declareTarget adds the target's declarations to the first response: a normal
// session's leading connection learns its TargetPortalGroupTag there (RFC 7143
// §13.9), with TargetAlias if one is configured (§13.6, Any-Stage).
func (l *Login) declareTarget(out []byte) []byte {
	l.declared = true
	if l.id.SessionType != SessionNormal || l.id.TSIH != 0 {
		return out
	}
	out = AppendKeyNumber(out, "TargetPortalGroupTag",
		uint64(l.policy.Config.TargetPortalGroupTag))
	if a := l.policy.Config.TargetAlias; a != "" {
		out = AppendKey(out, "TargetAlias", a)
	}
	return out
}
