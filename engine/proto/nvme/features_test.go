package nvme

import "testing"

func TestFeatures(t *testing.T) {
	if v := NumberOfQueues(127, 127); v != 0x007F007F {
		t.Fatalf("%#x", v)
	}
	if s, c := DecodeNumberOfQueues(0x00030001); s != 1 || c != 3 {
		t.Fatal(s, c)
	}
	a := Arbitration{AB: 7, LPW: 1, MPW: 2, HPW: 3}
	if a.Value() != 0x03020107 || DecodeArbitration(a.Value()) != a {
		t.Fatalf("%#x", a.Value())
	}
	p := PowerManagement{PS: 3, WH: 2}
	if p.Value() != 0x43 || DecodePowerManagement(0x43) != p {
		t.Fatalf("%#x", p.Value())
	}
	tt := TemperatureThreshold{TMPTH: KelvinFromCelsius(70), TMPSEL: 0, THSEL: THSELUnder}
	if tt.Value() != 0x100157 || DecodeTemperatureThreshold(tt.Value()) != tt {
		t.Fatalf("%#x", tt.Value())
	}
	e := ErrorRecovery{TLER: 5, DULBE: true}
	if e.Value() != 0x10005 || DecodeErrorRecovery(e.Value()) != e {
		t.Fatalf("%#x", e.Value())
	}
	ic := InterruptCoalescing{THR: 1, TIME: 2}
	if ic.Value() != 0x201 || DecodeInterruptCoalescing(0x201) != ic {
		t.Fatal("coalescing")
	}
	// Linux host Set Features 0Bh on an I/O controller asks for namespace attribute
	// notices (and ANA when CMIC.ANA); a discovery controller asks for log changes.
	if AECNSAttribute|AECANAChange != 0x900 || AECDiscoveryLogChange != 0x80000000 {
		t.Fatal("AEC")
	}
}
