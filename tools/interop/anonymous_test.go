package interop

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"sluice/engine/nvmf"
	"sluice/engine/nvmf/host"
)

// TestAnonymousHostAgainstDaemon: a host that sends an empty host NQN (SPDK's
// initiator does unless told one) connects to the default volume, which allows any
// host, does I/O, and shows as anonymous in the control plane.
func TestAnonymousHostAgainstDaemon(t *testing.T) {
	d := newDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctrl, err := host.Connect(ctx, fmt.Sprintf("127.0.0.1:%d", d.nvmfPort), defaultNQN, host.Options{Anonymous: true})
	if err != nil {
		t.Fatalf("anonymous connect: %v", err)
	}
	defer ctrl.Close()
	q, err := ctrl.NewIOQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	if err := q.Write(ctx, 1, 64, 8, buf, false); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if err := q.Read(ctx, 1, 64, 8, got); err != nil || string(got) != string(buf) {
		t.Fatalf("read back: %v", err)
	}
	var cs []nvmf.CtrlrInfo
	d.call("nvmf_subsystem_get_controllers", map[string]string{"nqn": defaultNQN}, &cs)
	if len(cs) != 1 || !cs[0].Anonymous || cs[0].HostNQN != "" {
		t.Fatalf("controllers %+v, want one anonymous", cs)
	}
	var subs []nvmf.SubsystemInfo
	d.call("nvmf_get_subsystems", nil, &subs)
	for _, s := range subs {
		if s.NQN == defaultNQN && (len(s.ConnectedHosts) != 1 || !s.ConnectedHosts[0].Anonymous) {
			t.Fatalf("connected hosts %+v, want one anonymous", s.ConnectedHosts)
		}
	}
	b, _ := os.ReadFile(d.logPath)
	if !strings.Contains(string(b), "anonymous=true") {
		t.Fatal("the daemon's log does not say the host is anonymous")
	}
}
