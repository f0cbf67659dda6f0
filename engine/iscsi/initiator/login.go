package initiator

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"strconv"
	"strings"

	proto "sluice/engine/proto/iscsi"
)

// login is the initiator side of one connection's login phase (RFC 7143 §6.3): an
// optional SecurityNegotiation stage running CHAP, then LoginOperationalNegotiation,
// each answer checked against what was offered.
type login struct {
	s          *Session
	p          *Params
	itt        uint32
	first      bool // no Login Response received yet
	identified bool // the identity keys went out
	offered    map[string]string
	order      []string // offered keys in offer order, for stable error messages
	answered   map[string]bool
}

// loginExchanges bounds the Login Requests of a stage.
const loginExchanges = 16

func (s *Session) login() error {
	s.params = rfcParams()
	p := &s.params
	p.ISID, p.CID = s.opts.ISID, s.opts.CID
	if !s.discovery {
		p.TargetName = s.opts.TargetName
	}
	p.MaxRecvDataSegmentLength = s.opts.MaxRecvDataSegmentLength
	l := &login{s: s, p: p, itt: s.nextCtlITT(), first: true, offered: map[string]string{},
		answered: map[string]bool{}}
	if s.opts.CHAP != nil {
		if err := l.security(); err != nil {
			return err
		}
	}
	return l.operational()
}

// identity appends the keys of the first Login Request (RFC 7143 §6.3.1).
func (l *login) identity(kv []byte) []byte {
	o := &l.s.opts
	l.identified = true
	kv = proto.AppendKey(kv, "InitiatorName", o.InitiatorName)
	if o.InitiatorAlias != "" {
		kv = proto.AppendKey(kv, "InitiatorAlias", o.InitiatorAlias)
	}
	if l.s.discovery {
		return proto.AppendKey(kv, "SessionType", "Discovery")
	}
	kv = proto.AppendKey(kv, "SessionType", "Normal")
	return proto.AppendKey(kv, "TargetName", o.TargetName)
}

// exchange sends one Login Request and returns the target's answer, its key=value text
// assembled across C-bit continuations (each fetched with an empty request).
func (l *login) exchange(transit bool, csg, nsg proto.Stage,
	kv []byte) (proto.LoginResponse, []proto.KeyValue, error) {
	s := l.s
	var asm proto.Assembler
	for round := 0; round < loginExchanges; round++ {
		req := proto.LoginRequest{Transit: transit, CSG: csg, ISID: l.p.ISID, ITT: l.itt, CID: l.p.CID,
			CmdSN: s.cmdSN, ExpStatSN: s.expStatSN, DataSegmentLength: uint32(len(kv))}
		if transit {
			req.NSG = nsg
		}
		req.Put((*proto.BHS)(s.txHdrs[0][:proto.BHSLen]))
		if err := s.sendNow(kv); err != nil {
			return proto.LoginResponse{}, nil, err
		}
		resp, data, err := l.recv(transit, csg, nsg)
		if err != nil {
			return resp, nil, err
		}
		block, complete, err := asm.Add(data, resp.Continue)
		if err != nil {
			return resp, nil, s.bad(5, "login text continues past 64 KiB")
		}
		if !complete {
			// RFC 7143 §11.13.1: the rest comes in answer to an empty request.
			transit, kv = false, nil
			continue
		}
		kvs, err := proto.ParseText(block)
		if err != nil {
			return resp, nil, &ProtocolError{Opcode: proto.OpLoginResponse, Offset: proto.BHSLen,
				ITT: l.itt, Reason: "malformed login text", Err: err}
		}
		return resp, kvs, nil
	}
	return proto.LoginResponse{}, nil, s.bad(1, "login text never ends (C bit)")
}

// recv reads one Login Response and checks it against the request it answers.
func (l *login) recv(transit bool, csg, nsg proto.Stage) (proto.LoginResponse, []byte, error) {
	s := l.s
	if err := s.readHeader(); err != nil {
		return proto.LoginResponse{}, nil, err
	}
	if s.rhdr.Opcode() != proto.OpLoginResponse {
		return proto.LoginResponse{}, nil, s.bad(0, "PDU other than a Login Response during login")
	}
	resp, _ := proto.DecodeLoginResponse(&s.rhdr)
	data, err := s.readCtlData()
	if err != nil {
		return resp, nil, err
	}
	switch {
	case resp.ITT != l.itt:
		return resp, nil, s.bad(16, "Login Response ITT does not echo the request's")
	case resp.ISID != l.p.ISID:
		return resp, nil, s.bad(8, "Login Response ISID does not echo the request's")
	case !l.first && resp.StatSN != s.expStatSN:
		return resp, nil, s.bad(24, "Login Response StatSN out of sequence")
	}
	l.first = false
	s.expStatSN = resp.StatSN + 1
	if !resp.Status.Success() {
		return resp, nil, &LoginError{Status: resp.Status, TargetAddress: redirectAddress(data)}
	}
	return resp, data, l.checkResponse(&resp, transit, csg, nsg)
}

// checkResponse applies RFC 7143 §11.13's rules to a successful Login Response.
func (l *login) checkResponse(r *proto.LoginResponse, transit bool, csg, nsg proto.Stage) error {
	s := l.s
	final := r.Transit && r.NSG == proto.StageFullFeature
	switch {
	case r.VersionActive != proto.Version:
		return s.bad(3, "Version-active is not 0")
	case r.ExpCmdSN != s.cmdSN:
		return s.bad(28, "Login Response ExpCmdSN is not the login's CmdSN")
	case proto.SNLess(r.MaxCmdSN, r.ExpCmdSN-1):
		return s.bad(32, "Login Response MaxCmdSN below ExpCmdSN - 1")
	case r.Transit && r.Continue:
		return s.bad(1, "Login Response with both T and C set")
	case r.CSG != csg:
		return s.bad(1, "Login Response CSG is not the request's")
	case r.Transit && !transit:
		return s.bad(1, "Login Response transits although the request did not ask to")
	case r.Transit && r.NSG != nsg:
		return s.bad(1, "Login Response NSG is not the stage asked for")
	case final && r.TSIH == 0:
		return s.bad(14, "final Login Response of a new session without a TSIH")
	case !final && r.TSIH != 0:
		return s.bad(14, "TSIH in a Login Response before the final one")
	}
	return nil
}

func redirectAddress(data []byte) string {
	kvs, err := proto.ParseText(data)
	if err != nil {
		return ""
	}
	v, _ := proto.LookupKey(kvs, "TargetAddress")
	return v
}

// declaration records a key only a target declares; it reports false for other keys.
func (l *login) declaration(kv proto.KeyValue) (bool, error) {
	switch kv.Key {
	case "TargetPortalGroupTag":
		n, err := proto.ParseNumber(kv.Value)
		if err != nil || n > 65535 {
			return true, l.s.bad(proto.BHSLen, "TargetPortalGroupTag="+strconv.Quote(kv.Value))
		}
		l.p.TargetPortalGroupTag = uint16(n)
	case "TargetAlias":
		l.p.TargetAlias = kv.Value
	case "TargetAddress":
	default:
		return false, nil
	}
	return true, nil
}

// security runs SecurityNegotiation with CHAP (RFC 7143 §12.1.3):
//
//	I->T  identity, AuthMethod=CHAP
//	T->I  AuthMethod=CHAP
//	I->T  CHAP_A=<A1,A2,...>
//	T->I  CHAP_A=<A> CHAP_I=<I> CHAP_C=<C>
//	I->T  CHAP_N CHAP_R [CHAP_I CHAP_C], T=1 to the operational stage
//	T->I  [CHAP_N CHAP_R], T=1
func (l *login) security() error {
	s, c := l.s, l.s.opts.CHAP
	_, kvs, err := l.exchange(false, proto.StageSecurity, 0,
		proto.AppendKey(l.identity(nil), "AuthMethod", "CHAP"))
	if err != nil {
		return err
	}
	if err := l.record(kvs, "AuthMethod"); err != nil {
		return err
	}
	switch m, _ := proto.LookupKey(kvs, "AuthMethod"); m {
	case "CHAP":
	case proto.ValueReject:
		return fmt.Errorf("%w: the target refused AuthMethod=CHAP", ErrLogin)
	default:
		return s.bad(proto.BHSLen, "AuthMethod answered "+strconv.Quote(m)+" to an offer of CHAP")
	}
	_, kvs, err = l.exchange(false, proto.StageSecurity, 0, proto.AppendKey(nil, "CHAP_A", chapOffer(c)))
	if err != nil {
		return err
	}
	alg, id, chal, err := l.challenge(kvs, c)
	if err != nil {
		return err
	}
	kv := proto.AppendKey(nil, "CHAP_N", c.User)
	kv = append(proto.AppendHex(append(kv, "CHAP_R="...),
		proto.CHAPResponse(alg, id, []byte(c.Secret), chal)), 0)
	var myID [1]byte
	var mine []byte
	if c.TargetSecret != "" {
		if mine, err = ownChallenge(alg, chal, myID[:]); err != nil {
			return err
		}
		kv = proto.AppendKeyNumber(kv, "CHAP_I", uint64(myID[0]))
		kv = append(proto.AppendHex(append(kv, "CHAP_C="...), mine), 0)
	}
	resp, kvs, err := l.exchange(true, proto.StageSecurity, proto.StageOperational, kv)
	if err != nil {
		return err
	}
	if err := l.record(kvs, "CHAP_N", "CHAP_R"); err != nil {
		return err
	}
	if err := l.mutual(kvs, c, alg, myID[0], mine); err != nil {
		return err
	}
	if !resp.Transit {
		return s.bad(1, "the target stays in SecurityNegotiation after CHAP succeeded")
	}
	l.p.AuthMethod, l.p.CHAPAlgorithm = "CHAP", alg
	return nil
}

// record takes the declarations of a security-stage response and checks that it holds
// no key other than the ones named.
func (l *login) record(kvs []proto.KeyValue, allowed ...string) error {
	for _, kv := range kvs {
		l.p.Keys[kv.Key] = kv.Value
		if ok, err := l.declaration(kv); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || kv.Key == a
		}
		if !ok {
			return l.s.bad(proto.BHSLen, "unexpected key "+kv.Key+" in SecurityNegotiation")
		}
	}
	return nil
}

func chapOffer(c *CHAP) string {
	algs := c.Algorithms
	if len(algs) == 0 {
		algs = []proto.CHAPAlgorithm{proto.CHAPSHA256, proto.CHAPMD5}
	}
	var b strings.Builder
	for i, a := range algs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(a)))
	}
	return b.String()
}

// challenge reads the target's CHAP_A, CHAP_I and CHAP_C.
func (l *login) challenge(kvs []proto.KeyValue, c *CHAP) (proto.CHAPAlgorithm, byte, []byte, error) {
	s := l.s
	if err := l.record(kvs, "CHAP_A", "CHAP_I", "CHAP_C"); err != nil {
		return 0, 0, nil, err
	}
	a, _ := proto.LookupKey(kvs, "CHAP_A")
	if a == proto.ValueReject {
		return 0, 0, nil, fmt.Errorf("%w: the target accepts none of CHAP_A=%s", ErrLogin, chapOffer(c))
	}
	n, err := proto.ParseNumber(a)
	offered := false
	for v := range proto.ListValues(chapOffer(c)) {
		offered = offered || v == a
	}
	if err != nil || !offered || proto.CHAPAlgorithm(n).Size() == 0 {
		return 0, 0, nil, s.bad(proto.BHSLen, "CHAP_A="+strconv.Quote(a)+" was not offered")
	}
	iv, _ := proto.LookupKey(kvs, "CHAP_I")
	id, err := proto.ParseNumber(iv)
	if err != nil || id > 255 {
		return 0, 0, nil, s.bad(proto.BHSLen, "CHAP_I="+strconv.Quote(iv))
	}
	cv, _ := proto.LookupKey(kvs, "CHAP_C")
	chal, err := proto.ParseBinary(cv, proto.MaxCHAPChallengeLen)
	if err != nil {
		return 0, 0, nil, &ProtocolError{Opcode: proto.OpLoginResponse, Offset: proto.BHSLen,
			ITT: l.itt, Reason: "bad CHAP_C", Err: err}
	}
	return proto.CHAPAlgorithm(n), byte(id), chal, nil
}

// ownChallenge draws the initiator's mutual-CHAP identifier (into id) and challenge,
// never equal to the target's (a reflection would prove nothing).
func ownChallenge(alg proto.CHAPAlgorithm, theirs, id []byte) ([]byte, error) {
	mine := make([]byte, max(16, alg.Size()))
	for {
		if _, err := rand.Read(id); err != nil {
			return nil, fmt.Errorf("iscsi initiator: chap random: %w", err)
		}
		if _, err := rand.Read(mine); err != nil {
			return nil, fmt.Errorf("iscsi initiator: chap random: %w", err)
		}
		if !bytes.Equal(mine, theirs) {
			return mine, nil
		}
	}
}

// mutual checks the target's answer to the initiator's challenge.
func (l *login) mutual(kvs []proto.KeyValue, c *CHAP, alg proto.CHAPAlgorithm, id byte, mine []byte) error {
	name, okN := proto.LookupKey(kvs, "CHAP_N")
	rv, okR := proto.LookupKey(kvs, "CHAP_R")
	if mine == nil {
		if okN || okR {
			return l.s.bad(proto.BHSLen, "CHAP_N/CHAP_R from the target without a challenge")
		}
		return nil
	}
	if !okN || !okR {
		return fmt.Errorf("%w: no CHAP_N and CHAP_R answer the initiator's challenge", ErrTargetAuth)
	}
	if c.TargetUser != "" && name != c.TargetUser {
		return fmt.Errorf("%w: CHAP_N=%q, want %q", ErrTargetAuth, name, c.TargetUser)
	}
	got, err := proto.ParseBinary(rv, proto.MaxCHAPChallengeLen)
	want := proto.CHAPResponse(alg, id, []byte(c.TargetSecret), mine)
	if err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
		return fmt.Errorf("%w: wrong CHAP_R", ErrTargetAuth)
	}
	return nil
}

// operational runs LoginOperationalNegotiation to full feature phase.
func (l *login) operational() error {
	var kv []byte
	if !l.identified {
		kv = l.identity(kv)
	}
	kv = l.offers(kv)
	for round := 0; round < loginExchanges; round++ {
		resp, kvs, err := l.exchange(true, proto.StageOperational, proto.StageFullFeature, kv)
		if err != nil {
			return err
		}
		if kv, err = l.answers(kvs); err != nil {
			return err
		}
		if resp.Transit {
			if len(kv) > 0 {
				return l.s.bad(1, "the target transits with offers of its own unanswered")
			}
			return l.finish(&resp)
		}
	}
	return l.s.bad(1, "login never reaches full feature phase")
}

// offers appends the operational keys: declarations and offers, the latter recorded
// to check their answers.
func (l *login) offers(kv []byte) []byte {
	o := &l.s.opts
	add := func(k, v string) {
		kv = proto.AppendKey(kv, k, v)
		l.offered[k] = v
		l.order = append(l.order, k)
	}
	add("HeaderDigest", o.HeaderDigest.offer())
	add("DataDigest", o.DataDigest.offer())
	kv = proto.AppendKeyNumber(kv, "MaxRecvDataSegmentLength", uint64(o.MaxRecvDataSegmentLength))
	if l.s.discovery {
		return kv
	}
	num := func(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
	add("InitialR2T", proto.FormatBool(yes(o.InitialR2T)))
	add("ImmediateData", proto.FormatBool(yes(o.ImmediateData)))
	add("MaxBurstLength", num(o.MaxBurstLength))
	add("FirstBurstLength", num(o.FirstBurstLength))
	add("MaxOutstandingR2T", num(o.MaxOutstandingR2T))
	add("MaxConnections", "1")
	add("ErrorRecoveryLevel", "0")
	add("DataPDUInOrder", proto.ValueYes)
	add("DataSequenceInOrder", proto.ValueYes)
	add("DefaultTime2Wait", "2")
	add("DefaultTime2Retain", "0")
	return kv
}

// answers takes one operational response: answers to the initiator's offers, the
// target's declarations, and offers of the target's own, whose answers it returns.
func (l *login) answers(kvs []proto.KeyValue) ([]byte, error) {
	var out []byte
	for _, kv := range kvs {
		l.p.Keys[kv.Key] = kv.Value
		if off, ok := l.offered[kv.Key]; ok {
			if l.answered[kv.Key] {
				return nil, l.s.bad(proto.BHSLen, kv.Key+" answered twice")
			}
			l.answered[kv.Key] = true
			if err := l.take(kv.Key, off, kv.Value); err != nil {
				return nil, err
			}
			continue
		}
		if ok, err := l.declaration(kv); ok || err != nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		if kv.Key == "MaxRecvDataSegmentLength" {
			n, err := proto.ParseNumber(kv.Value)
			if err != nil || n < 512 || n > proto.MaxDataSegmentLength {
				return nil, l.s.bad(proto.BHSLen, "MaxRecvDataSegmentLength="+strconv.Quote(kv.Value))
			}
			l.p.MaxXmitDataSegmentLength = uint32(n)
			continue
		}
		// An offer of the target's own for a key the initiator left alone: nothing
		// here needs one, so the defaults stand.
		v := proto.ValueReject
		if _, known := proto.Lookup(kv.Key); !known {
			v = proto.ValueNotUnderstood
		}
		out = proto.AppendKey(out, kv.Key, v)
	}
	return out, nil
}

// take checks the answer to one of the initiator's offers against the key's result
// function (RFC 7143 §6.2) and records the result.
func (l *login) take(key, offered, answer string) error {
	bad := func(why string) error {
		return l.s.bad(proto.BHSLen, fmt.Sprintf("%s=%s answers %s=%s: %s", key, answer, key, offered, why))
	}
	def, _ := proto.Lookup(key)
	switch answer {
	case proto.ValueNotUnderstood:
		return bad("a standard key not understood")
	case proto.ValueIrrelevant:
		if def.ID != proto.KeyFirstBurstLength {
			return bad("not irrelevant here")
		}
		return nil // §13.14: InitialR2T=Yes and ImmediateData=No; checked in finish
	case proto.ValueReject:
		if def.Kind == proto.KindList && !strings.Contains(offered, proto.ValueNone) {
			return fmt.Errorf("%w: the target refused %s=%s", ErrLogin, key, offered)
		}
		return nil // the key keeps its default
	}
	switch def.Kind {
	case proto.KindList:
		ok := false
		for v := range proto.ListValues(offered) {
			ok = ok || v == answer
		}
		if !ok {
			return bad("not one of the values offered")
		}
		l.setDigest(def.ID, answer == "CRC32C")
	case proto.KindNumMin, proto.KindNumMax:
		n, err := proto.ParseNumber(answer)
		o, _ := proto.ParseNumber(offered)
		lo, hi := def.Min, o
		if def.Kind == proto.KindNumMax {
			lo, hi = o, def.Max
		}
		if err != nil || n < lo || n > hi {
			return bad(fmt.Sprintf("outside %d..%d", lo, hi))
		}
		l.setNum(def.ID, uint32(n))
	case proto.KindBoolAnd, proto.KindBoolOr:
		b, err := proto.ParseBool(answer)
		o := offered == proto.ValueYes
		if err != nil || def.Kind == proto.KindBoolAnd && b && !o || def.Kind == proto.KindBoolOr && !b && o {
			return bad("not a possible result")
		}
		l.setBool(def.ID, b)
	}
	return nil
}

func (l *login) setDigest(id proto.KeyID, on bool) {
	if id == proto.KeyHeaderDigest {
		l.p.HeaderDigest = on
	} else {
		l.p.DataDigest = on
	}
}

func (l *login) setNum(id proto.KeyID, n uint32) {
	p := l.p
	switch id {
	case proto.KeyMaxBurstLength:
		p.MaxBurstLength = n
	case proto.KeyFirstBurstLength:
		p.FirstBurstLength = n
	case proto.KeyMaxOutstandingR2T:
		p.MaxOutstandingR2T = n
	case proto.KeyMaxConnections:
		p.MaxConnections = n
	case proto.KeyErrorRecoveryLevel:
		p.ErrorRecoveryLevel = n
	case proto.KeyDefaultTime2Wait:
		p.DefaultTime2Wait = n
	case proto.KeyDefaultTime2Retain:
		p.DefaultTime2Retain = n
	}
}

func (l *login) setBool(id proto.KeyID, b bool) {
	p := l.p
	switch id {
	case proto.KeyInitialR2T:
		p.InitialR2T = b
	case proto.KeyImmediateData:
		p.ImmediateData = b
	case proto.KeyDataPDUInOrder:
		p.DataPDUInOrder = b
	case proto.KeyDataSequenceInOrder:
		p.DataSequenceInOrder = b
	}
}

// finish checks that every offer was answered and takes the final response's session
// identity and command window.
func (l *login) finish(r *proto.LoginResponse) error {
	s, p := l.s, l.p
	for _, k := range l.order {
		if !l.answered[k] {
			return s.bad(proto.BHSLen, k+" offered and never answered")
		}
	}
	unsolicited := !p.InitialR2T || p.ImmediateData
	switch {
	case p.Keys["FirstBurstLength"] == proto.ValueIrrelevant && unsolicited:
		return s.bad(proto.BHSLen, "FirstBurstLength=Irrelevant although unsolicited data may flow")
	case unsolicited && p.FirstBurstLength > p.MaxBurstLength:
		return s.bad(proto.BHSLen, "FirstBurstLength above MaxBurstLength")
	}
	p.TSIH = r.TSIH
	s.expCmdSN, s.maxCmdSN = r.ExpCmdSN, r.MaxCmdSN
	return nil
}
