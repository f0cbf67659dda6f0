package iscsi

import "errors"

// authKey reports the keys a CHAP exchange carries.
func authKey(k string) bool {
	return k == "CHAP_A" || k == "CHAP_I" || k == "CHAP_C" || k == "CHAP_N" || k == "CHAP_R"
}

// splitAuth separates the CHAP keys from the rest, keeping their order.
func splitAuth(kvs []KeyValue) (auth, rest []KeyValue) {
	for _, kv := range kvs {
		if authKey(kv.Key) {
			auth = append(auth, kv)
		} else {
			rest = append(rest, kv)
		}
	}
	return auth, rest
}

// securityStep runs the SecurityNegotiation stage (RFC 7143 §6.3.2, §12): AuthMethod
// list negotiation, then the CHAP exchange. The target lets the initiator transit only
// once authentication is done; before that it answers T=0 (libiscsi sets T=1 on its
// first request, AuthMethod=CHAP,None, and waits for the target to agree).
func (l *Login) securityStep(req *LoginRequest, kvs []KeyValue,
	out []byte) ([]byte, bool, Stage, *LoginError) {
	auth, rest := splitAuth(kvs)
	out, err := l.neg.Negotiate(StageSecurity, rest, out)
	if err != nil {
		return out, false, 0, asLoginError(err)
	}
	method, st := l.neg.AuthMethod()
	switch {
	case st == AuthRefused:
		return out, false, 0, loginErr(StatusAuthenticationFailure, "AuthMethod",
			errors.New("login: no acceptable authentication method"))
	case st == AuthOpen && len(auth) > 0:
		return out, false, 0, loginErr(StatusInitiatorError, auth[0].Key,
			errors.New("login: CHAP keys before AuthMethod"))
	case st == AuthChosen && method == AuthCHAP:
		if l.chap == nil {
			l.chap = NewCHAPServer(l.policy.CHAP, l.chapSecret, l.rand)
		}
		if out, err = l.chap.Step(auth, out); err != nil {
			return out, false, 0, asLoginError(err)
		}
		l.authDone = l.chap.Done()
	case st == AuthChosen:
		for _, kv := range auth {
			out = AppendKey(out, kv.Key, ValueIrrelevant)
		}
		l.authDone = true
	}
	if !req.Transit {
		return out, false, 0, nil
	}
	if !l.authDone {
		if st == AuthChosen {
			return out, false, 0, nil // CHAP under way: stay in this stage
		}
		if lerr := l.noAuth(); lerr != nil {
			return out, false, 0, lerr
		}
	}
	next := req.NSG
	if next == StageFullFeature && l.neg.needsOffers() {
		// The target has offers to make and they belong to the operational stage:
		// agree to move there instead of to full feature phase.
		next = StageOperational
	}
	return out, true, next, nil
}

// noAuth lets an initiator that never negotiated AuthMethod through when the target
// accepts no authentication, and fails it with 0201 otherwise (SPDK and LIO alike).
func (l *Login) noAuth() *LoginError {
	if l.policy.Auth&AuthNone == 0 {
		return loginErr(StatusAuthenticationFailure, "AuthMethod",
			errors.New("login: the target requires authentication"))
	}
	l.authDone = true
	return nil
}

func (l *Login) chapSecret(user string) ([]byte, bool) {
	if l.policy.CHAPSecret == nil {
		return nil, false
	}
	return l.policy.CHAPSecret(user)
}

// operationalStep runs the LoginOperationalNegotiation stage (RFC 7143 §6.3.3). An
// initiator may start here and skip security only if the target accepts no
// authentication.
func (l *Login) operationalStep(req *LoginRequest, kvs []KeyValue,
	out []byte) ([]byte, bool, Stage, *LoginError) {
	if !l.authDone {
		if lerr := l.noAuth(); lerr != nil {
			return out, false, 0, lerr
		}
	}
	out, err := l.neg.Negotiate(StageOperational, kvs, out)
	if err != nil {
		return out, false, 0, asLoginError(err)
	}
	if !req.Transit {
		return out, false, 0, nil
	}
	out, offered := l.neg.Offers(out)
	if offered {
		return out, false, 0, nil // wait for the answers before transiting
	}
	return out, true, StageFullFeature, nil
}

// finish ends a successful login: the final parameters, the session and its TSIH.
func (l *Login) finish(req *LoginRequest, out []byte) LoginReply {
	p, err := l.neg.Finish()
	if err != nil {
		return l.failLogin(req, out, asLoginError(err))
	}
	if l.chap != nil {
		p.AuthMethod = AuthCHAP
	}
	l.id.InitiatorAlias = p.InitiatorAlias
	tsih, st := l.hooks.Establish(l.id, p)
	if !st.Success() {
		return l.failLogin(req, out, loginErr(st, "", errors.New("login: session refused")))
	}
	if tsih == 0 {
		return l.failLogin(req, out, loginErr(StatusTargetError, "",
			errors.New("login: Establish returned TSIH 0")))
	}
	reply := LoginReply{Header: l.header(req, true, StageFullFeature), Done: true, Params: p}
	reply.Header.TSIH = tsih
	return l.withData(reply, out)
}

// header builds a Login Response header for req (RFC 7143 §11.13): versions 0, ISID,
// TSIH and ITT echoed, CSG the current stage, NSG meaningful only with T.
func (l *Login) header(req *LoginRequest, transit bool, next Stage) LoginResponse {
	h := LoginResponse{
		Transit:       transit,
		CSG:           req.CSG,
		VersionMax:    Version,
		VersionActive: Version,
		ISID:          req.ISID,
		TSIH:          req.TSIH,
		ITT:           req.ITT,
	}
	if transit {
		h.NSG = next
	}
	return h
}

// withData attaches the response text, splitting it into C=1 pieces when it exceeds
// the login data segment limit. The reply proper goes out with the last piece, and
// only then does the login move to the next stage: the initiator fetches the pieces
// from the stage it is in.
func (l *Login) withData(reply LoginReply, out []byte) LoginReply {
	seg, rest := SplitText(out, loginMaxData)
	if len(rest) == 0 {
		reply.Data = seg
		reply.Header.DataSegmentLength = uint32(len(seg))
		l.commit(reply.Header)
		return reply
	}
	l.final = reply
	l.pending = rest
	h := reply.Header
	h.Transit, h.NSG, h.Continue = false, 0, true
	h.TSIH = l.first.TSIH
	h.DataSegmentLength = uint32(len(seg))
	return LoginReply{Header: h, Data: seg}
}

// commit moves the login to the stage a complete response agreed to.
func (l *Login) commit(h LoginResponse) {
	switch {
	case !h.Transit:
	case h.NSG == StageFullFeature:
		l.state = LoginStateFullFeature
	default:
		l.stage = h.NSG
		l.state = stageState(h.NSG)
	}
}

// nextPiece answers the empty Login Request with which the initiator fetches the rest
// of a C=1 response.
func (l *Login) nextPiece(req *LoginRequest, data []byte) LoginReply {
	if len(data) != 0 || req.Continue {
		return l.fail(req, StatusInitiatorError, nil,
			errors.New("login: text sent while the target's response continues"))
	}
	out := l.pending
	l.pending = nil
	return l.withData(l.final, out)
}

// failLogin builds the failure response for a login error.
func (l *Login) failLogin(req *LoginRequest, out []byte, lerr *LoginError) LoginReply {
	return l.fail(req, lerr.Status, out, lerr)
}

// fail builds a failure response: the status, T, C, CSG and NSG zeroed as SPDK and LIO
// send them, and the text answered so far (such as CHAP_A=Reject). A redirection
// carries the TargetAddress to go to (RFC 7143 §11.13.5, class 1).
func (l *Login) fail(req *LoginRequest, st Status, out []byte, err error) LoginReply {
	if st.Success() {
		st = StatusInitiatorError
	}
	l.state = LoginStateFailed
	l.pending = nil
	if st.Class() == StatusClassRedirection && l.policy.RedirectAddress != "" {
		out = AppendKey(out, "TargetAddress", l.policy.RedirectAddress)
	}
	if len(out) > loginMaxData {
		out = nil // a failure says why in its status; never continue it
	}
	h := LoginResponse{
		VersionMax:        Version,
		VersionActive:     Version,
		ISID:              req.ISID,
		TSIH:              req.TSIH,
		ITT:               req.ITT,
		Status:            st,
		DataSegmentLength: uint32(len(out)),
	}
	return LoginReply{Header: h, Data: out, Failed: true, Err: err}
}

// asLoginError turns a negotiation error into a login failure: every text or
// negotiation error of the initiator's making is status 0200 unless it carries its own.
func asLoginError(err error) *LoginError {
	var lerr *LoginError
	if errors.As(err, &lerr) {
		return lerr
	}
	return loginErr(StatusInitiatorError, "", err)
}
