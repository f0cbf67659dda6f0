package iscsi

import (
	"errors"
	"testing"
)

func TestParseSendTargets(t *testing.T) {
	for in, want := range map[string]SendTargetsQuery{
		"All":                     {All: true},
		"":                        {Session: true},
		testIQN:                   {Target: testIQN},
		"eui.02004567A425678D":    {Target: "eui.02004567A425678D"},
		"naa.52004567BA64678D":    {Target: "naa.52004567BA64678D"},
		"iqn.2001-04.com.example": {Target: "iqn.2001-04.com.example"},
	} {
		if got, err := ParseSendTargets(in); err != nil || got != want {
			t.Errorf("%q: %+v %v", in, got, err)
		}
	}
	// libiscsi's iSCSISendTargets.Invalid sends these and expects a failure.
	for _, in := range []string{"Alle", "A", "all", "iqn.", "iqn.2001-4.com.x",
		"iqn.2001-04", "eui.0200", "naa.123", "iqn.2001-04.com.x y"} {
		if _, err := ParseSendTargets(in); !errors.Is(err, ErrBadValue) {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestAppendTargetAddress(t *testing.T) {
	got := show(AppendTargetAddress(nil, "192.0.2.1", 3260, 1))
	if got != "TargetAddress=192.0.2.1:3260,1;" {
		t.Fatal(got)
	}
	got = show(AppendTargetAddress(nil, "2001:db8::1", 3260, 2))
	if got != "TargetAddress=[2001:db8::1]:3260,2;" {
		t.Fatal(got)
	}
}

func TestSerialNumbers(t *testing.T) {
	for _, c := range []struct {
		a, b uint32
		less bool
	}{
		{1, 2, true}, {2, 1, false}, {0xffffffff, 0, true}, {0, 0xffffffff, false},
		{5, 5, false}, {0x7fffffff, 0xfffffffe, true},
	} {
		if SNLess(c.a, c.b) != c.less {
			t.Errorf("SNLess(%#x, %#x) != %v", c.a, c.b, c.less)
		}
	}
	if !CmdSNInWindow(0, 0xfffffffe, 2) || CmdSNInWindow(3, 0xfffffffe, 2) ||
		!CmdSNInWindow(7, 7, 7) || CmdSNInWindow(6, 7, 7) {
		t.Fatal("CmdSN window across the wrap")
	}
}
