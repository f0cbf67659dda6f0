package nvmf

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"sluice/engine/proto/nvme"
)

// TestDiscoveryLogWhileListenersChange is the deadlock the hardening issue found: a host
// polling the discovery log (as Linux hosts do after every discovery AEN) while the
// operator adds and removes a listener. The RPC path waits on reactor 0 to register the
// socket; the reactor must never wait for a lock that path holds. A watchdog turns a
// hang into a failure with every goroutine's stack.
func TestDiscoveryLogWhileListenersChange(t *testing.T) {
	st := newStepTarget(t, "malloc")
	disc := st.connect()
	disc.icreq(false, false)
	cd := nvme.ConnectData{HostID: testHostID, CNTLID: nvme.CNTLIDDynamic, SubNQN: DiscoveryNQN, HostNQN: testHostNQN}
	var b [nvme.ConnectDataLen]byte
	if err := cd.MarshalTo(&b); err != nil {
		t.Fatal(err)
	}
	if c := disc.call(connectSQE(disc.nextCID(), 0, 32, 0), b[:], nil); !c.Status().Success() {
		t.Fatalf("discovery connect: %v", c.Status())
	}
	if s := propSetCC(disc, nvme.CC{EN: true}); !s.Success() {
		t.Fatalf("CC.EN: %v", s)
	}
	port := freePort(t)
	addr := ListenAddress{TrAddr: "127.0.0.1", TrSvcID: strconv.Itoa(port)}

	watchdog := time.AfterFunc(60*time.Second, func() {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		fmt.Fprintf(os.Stderr, "deadlock: discovery log vs listener RPCs\n%s", buf[:n])
		os.Exit(2)
	})
	defer watchdog.Stop()

	var rounds atomic.Int64
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < 100; i++ {
			if err := st.tgt.AddListener(testNQN, addr); err != nil {
				errc <- err
				return
			}
			if err := st.tgt.RemoveListener(testNQN, addr); err != nil {
				errc <- err
				return
			}
			rounds.Add(1)
		}
		errc <- nil
	}()
	page := make([]byte, 4096)
	polls := 0
	for {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			if polls == 0 {
				t.Fatal("the discovery log was never read during the listener changes")
			}
			return
		default:
		}
		var s nvme.SQE
		s.SetOpcode(uint8(nvme.AdminGetLogPage))
		s.SetCID(disc.nextCID())
		s.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport, Length: uint32(len(page))})
		nvme.GetLogPage{LID: nvme.LogDiscovery, NUMD: nvme.NUMDFor(uint64(len(page)))}.Put(&s)
		if c := disc.call(&s, nil, page); !c.Status().Success() {
			t.Fatalf("discovery log: %v", c.Status())
		}
		polls++
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
