package replication

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDerivePorts(t *testing.T) {
	p, err := DerivePorts(7000, nil)
	if err != nil || p != (Ports{7000, 7001, 7002, 7003}) {
		t.Fatalf("default offsets: %v %v", p, err)
	}
	if got := p.Offsets(); len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("offsets back: %v", got)
	}
	p, err = DerivePorts(9000, []uint16{100, 200, 300})
	if err != nil || p != (Ports{9000, 9100, 9200, 9300}) {
		t.Fatalf("custom offsets: %v %v", p, err)
	}
	for _, c := range []struct {
		base    uint16
		offsets []uint16
	}{
		{65534, nil},                 // 65534+2 overflows
		{65000, []uint16{1, 2, 600}}, // the keys link overflows
		{7000, []uint16{1, 1, 3}},    // control and data collide
		{7000, []uint16{0, 2, 3}},    // control on the tunnel's port
		{7000, []uint16{1, 2}},       // a link without an offset
		{0, nil},
	} {
		if _, err := DerivePorts(c.base, c.offsets); !errors.Is(err, ErrPorts) || !errors.Is(err, ErrInvalid) {
			t.Errorf("base %d offsets %v: %v, want ErrPorts", c.base, c.offsets, err)
		}
	}
}

// freeBase finds a base port whose derived ports are all free on 127.0.0.1.
func freeBase(t testing.TB) Ports {
	t.Helper()
	for range 100 {
		base := uint16(20000 + rand.IntN(40000))
		p, err := DerivePorts(base, nil)
		if err != nil {
			continue
		}
		if p.checkUnbound("127.0.0.1") == nil {
			if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(int(base))); err == nil {
				ln.Close()
				return p
			}
		}
	}
	t.Fatal("no free port range")
	return Ports{}
}

// listeningPorts reads the TCP ports in LISTEN state from a /proc net table
// (/proc/self/net/tcp and tcp6, or another process's).
func listeningPorts(t testing.TB, pid string) map[uint16]bool {
	t.Helper()
	out := map[uint16]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		fh, err := os.Open("/proc/" + pid + "/net/" + f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			_, port, _ := strings.Cut(fields[1], ":")
			if n, err := strconv.ParseUint(port, 16, 16); err == nil {
				out[uint16(n)] = true
			}
		}
		fh.Close()
	}
	return out
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type tunnelPair struct {
	ports  Ports
	a, b   *Identity
	srv    *tunnelServer
	mu     sync.Mutex
	served map[Link]int
}

func newTunnelPair(t *testing.T) *tunnelPair {
	t.Helper()
	tp := &tunnelPair{ports: freeBase(t), served: map[Link]int{}}
	var err error
	if tp.a, err = NewIdentity(); err != nil {
		t.Fatal(err)
	}
	if tp.b, err = NewIdentity(); err != nil {
		t.Fatal(err)
	}
	// B echoes every link.
	tp.srv, err = listenTunnel("p1", "127.0.0.1", tp.ports, tp.b, tp.a.PublicKey(), quietLog(),
		func(l Link, c *linkConn) {
			tp.mu.Lock()
			tp.served[l]++
			tp.mu.Unlock()
			_, _ = io.Copy(c, c)
			c.Close()
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.srv.Close() })
	return tp
}

func (tp *tunnelPair) dial(id *Identity, host *Identity, user string) (*tunnelClient, error) {
	return dialTunnel(context.Background(), dialConfig{name: user,
		addr: "127.0.0.1:" + strconv.Itoa(int(tp.ports[LinkTunnel])), ports: tp.ports, id: id,
		peer: host.PublicKey()})
}

// TestTunnelLinks: each link opens as a forward to base+offset and carries data both
// ways; a port outside the configuration is refused; nothing but the base port
// listens; teardown closes every forward and the listener (R1, R5).
func TestTunnelLinks(t *testing.T) {
	tp := newTunnelPair(t)
	tc, err := tp.dial(tp.a, tp.b, "p1")
	if err != nil {
		t.Fatal(err)
	}
	for l := LinkControl; l < numLinks; l++ {
		c, err := tc.open(l, "")
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("hello " + l.String())
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
			t.Fatalf("%v echo: %q %v", l, got, err)
		}
	}
	if n := len(tc.fwds.list()); n != 3 {
		t.Fatalf("A lists %d forwards, want 3", n)
	}
	waitFor(t, func() bool { return len(tp.srv.fwds.list()) == 3 })
	// Only the configured ports: the tunnel port itself and any other are refused.
	for _, port := range []uint16{tp.ports[LinkTunnel], tp.ports[LinkKeys] + 1, 22} {
		if _, err := tc.client.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(port))); err == nil {
			t.Fatalf("forward to port %d accepted", port)
		}
	}
	if _, err := tc.client.Dial("tcp", "10.1.2.3:"+strconv.Itoa(int(tp.ports[LinkData]))); err == nil {
		t.Fatal("forward to a non-loopback host accepted")
	}
	ls := listeningPorts(t, "self")
	if !ls[tp.ports[LinkTunnel]] {
		t.Fatalf("base port %d not listening", tp.ports[LinkTunnel])
	}
	for l := LinkControl; l < numLinks; l++ {
		if ls[tp.ports[l]] {
			t.Fatalf("%v port %d listens: a link must be reachable only through the tunnel", l, tp.ports[l])
		}
	}
	tc.Close()
	if n := len(tc.fwds.list()); n != 0 {
		t.Fatalf("A keeps %d forwards after teardown", n)
	}
	waitFor(t, func() bool { return len(tp.srv.fwds.list()) == 0 })
	tp.srv.Close()
	if ls := listeningPorts(t, "self"); ls[tp.ports[LinkTunnel]] {
		t.Fatal("base port still listening after teardown")
	}
}

// TestTunnelRefusesWrongKeys: a client key B does not know, a host key A does not
// expect, or another partnership's user name fail the handshake; no link is served (R2).
func TestTunnelRefusesWrongKeys(t *testing.T) {
	tp := newTunnelPair(t)
	stranger, _ := NewIdentity()
	cases := []struct {
		name       string
		id, host   *Identity
		user       string
		serverSide bool
	}{
		{"unknown client key", stranger, tp.b, "p1", true},
		{"unexpected host key", tp.a, stranger, "p1", false},
		{"other partnership", tp.a, tp.b, "p2", true},
	}
	for _, c := range cases {
		before := tp.srv.authFailures.Load()
		tc, err := tp.dial(c.id, c.host, c.user)
		if err == nil {
			tc.Close()
			t.Fatalf("%s: tunnel established", c.name)
		}
		if !errAuth(err) {
			t.Errorf("%s: %v is not reported as an authentication failure", c.name, err)
		}
		if c.serverSide && tp.srv.authFailures.Load() == before {
			t.Errorf("%s: B counted no authentication failure", c.name)
		}
	}
	if n := tp.srv.accepted.Load(); n != 0 {
		t.Fatalf("B accepted %d tunnels", n)
	}
	if len(tp.served) != 0 || len(tp.srv.fwds.list()) != 0 {
		t.Fatalf("links served without a tunnel: %v", tp.served)
	}
}

// TestTunnelPortsInUse: a base port or a derived port another listener holds is a setup
// error (R4).
func TestTunnelPortsInUse(t *testing.T) {
	a, _ := NewIdentity()
	b, _ := NewIdentity()
	for _, l := range []Link{LinkTunnel, LinkData} {
		p := freeBase(t)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(int(p[l])))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := listenTunnel("p", "127.0.0.1", p, b, a.PublicKey(), quietLog(), nil)
		ln.Close()
		if err == nil {
			srv.Close()
			t.Fatalf("%v port bound elsewhere: tunnel set up", l)
		}
		if !errors.Is(err, ErrPorts) {
			t.Fatalf("%v port bound elsewhere: %v, want ErrPorts", l, err)
		}
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestListenPortsOverlap: a second listening partnership whose derived ports overlap
// the first's is a setup error, even with a free base port (R4).
func TestListenPortsOverlap(t *testing.T) {
	p := newPair(t, 4<<20, 1<<20, false)
	p.listen(t, PartnershipParams{})
	_, err := p.b.svc.CreatePartnership(t.Context(), PartnershipParams{Name: "p2", Role: RoleListen,
		Address: "127.0.0.1", BasePort: p.ports[LinkTunnel] + 2, PeerKey: p.a.id()})
	if !errors.Is(err, ErrPorts) {
		t.Fatalf("overlapping ports: %v, want ErrPorts", err)
	}
	_, err = p.b.svc.CreatePartnership(t.Context(), PartnershipParams{Name: "p1", Role: RoleListen,
		Address: "127.0.0.1", BasePort: p.ports[LinkTunnel] + 100, PeerKey: p.a.id()})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("same name: %v, want ErrExists", err)
	}
}
