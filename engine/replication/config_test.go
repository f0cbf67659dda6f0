package replication

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestDumpConfig: save_config replays the partnerships (a dialing one without waiting
// for its partner) and the volumes' replications, and never a passphrase.
func TestDumpConfig(t *testing.T) {
	p := newPair(t, 4<<20, 1<<20, false)
	p.start(t, "async", 1<<20)
	p.a.svc.Configure(NodeConfig{Labels: map[string]string{"site": "a"}})
	calls, err := p.a.svc.dumpConfig()
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, c := range calls {
		methods = append(methods, c.Method)
	}
	want := "replication_configure_node replication_partnership_create replication_volume_start"
	if got := strings.Join(methods, " "); got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
	var pp PartnershipParams
	if err := json.Unmarshal(calls[1].Params, &pp); err != nil || !pp.NoWait || pp.Role != RoleDial {
		t.Fatalf("partnership replay %+v %v", pp, err)
	}
	var vp map[string]any
	if err := json.Unmarshal(calls[2].Params, &vp); err != nil || vp["mode"] != "async" ||
		vp["journal_bytes"] != float64(1<<20) || vp["passphrase"] != nil {
		t.Fatalf("volume replay %v %v", vp, err)
	}
	bcalls, _ := p.b.svc.dumpConfig()
	if len(bcalls) != 1 || !strings.Contains(string(bcalls[0].Params), `"role":"listen"`) {
		t.Fatalf("B's replay: %+v", bcalls)
	}
}
