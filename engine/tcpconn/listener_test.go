package tcpconn

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/reactor"
)

// rig is a listener on a running reactor whose adopted connections are recorded by
// peer port, each with its slot; an eviction closes the server side.
type rig struct {
	t     *testing.T
	l     *Listener
	lim   *LimitSet
	addr  string
	mu    sync.Mutex
	slots map[uint16]*Slot
}

func newRig(t *testing.T, lim Limits) *rig {
	t.Helper()
	r, err := reactor.New(reactor.Config{Core: -1, Mode: reactor.ModeAdaptive})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	ls, err := NewLimitSet(lim)
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{t: t, lim: ls, slots: map[uint16]*Slot{}}
	adopt := func(r *reactor.Reactor, fd int, peer netip.AddrPort, slot *Slot) {
		g.mu.Lock()
		g.slots[peer.Port()] = slot
		g.mu.Unlock()
		if !slot.Bind(func() { _ = r.Post(func() { unix.Close(fd) }) }) {
			unix.Close(fd)
		}
	}
	l, err := Listen(ListenerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Reactors: []*reactor.Reactor{r},
		Adopt: adopt, Limits: ls, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	a, err := l.BoundAddr()
	if err != nil {
		t.Fatal(err)
	}
	g.l, g.addr = l, a.String()
	return g
}

// dial connects from local (an address of 127.0.0.0/8, all of which reach lo) and
// waits until the listener has adopted or refused the connection.
func (g *rig) dial(local string) *net.TCPConn {
	g.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	nc, err := d.Dial("tcp", g.addr)
	if err != nil {
		g.t.Fatal(err)
	}
	c := nc.(*net.TCPConn)
	g.t.Cleanup(func() { c.Close() })
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		_, adopted := g.slots[port]
		g.mu.Unlock()
		if adopted || g.lim.Stats().ConnectionsRefused > 0 && closed(c) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return c
}

func (g *rig) slot(c *net.TCPConn) *Slot {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.slots[uint16(c.LocalAddr().(*net.TCPAddr).Port)]
}

// closed reports whether the server closed c (EOF or reset), waiting a little.
func closed(c *net.TCPConn) bool {
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestIdleFloodCannotLockOutAHost: at the per-listener limit, a new connection takes the
// place of the oldest one that never finished its setup; once every connection is set
// up, newcomers are refused.
func TestIdleFloodCannotLockOutAHost(t *testing.T) {
	g := newRig(t, Limits{MaxConnsPerListener: 10, MaxConnsPerHost: 10})
	var flood []*net.TCPConn
	for i := 0; i < 30; i++ {
		flood = append(flood, g.dial("127.0.0.1"))
	}
	if n := g.l.Live(); n != 10 {
		t.Fatalf("%d connections live, want the limit 10", n)
	}
	if st := g.lim.Stats(); st.ConnectionsEvicted != 20 || st.ConnectionsRefused != 0 {
		t.Fatalf("stats %+v, want 20 evicted and none refused", st)
	}
	for i, c := range flood[:20] {
		if !closed(c) {
			t.Fatalf("flood connection %d (among the oldest) was not closed", i)
		}
	}
	// A real host arrives and sets up; it is never the one evicted.
	host := g.dial("127.0.0.1")
	g.slot(host).Established()
	for i := 0; i < 20; i++ {
		g.dial("127.0.0.1")
	}
	if closed(host) {
		t.Fatal("a set-up connection was evicted")
	}
	// Fill the listener with set-up connections: now a newcomer is refused.
	for _, c := range flood[20:] {
		if s := g.slot(c); s != nil {
			s.Established()
		}
	}
	g.mu.Lock()
	for _, s := range g.slots {
		s.Established()
	}
	g.mu.Unlock()
	refused := g.dial("127.0.0.1")
	if !closed(refused) || g.lim.Stats().ConnectionsRefused == 0 {
		t.Fatalf("a connection beyond a listener full of set-up ones was not refused: %+v", g.lim.Stats())
	}
}

// TestPerHostLimitLeavesOtherHostsAlone: one address flooding hits its own limit and
// evicts its own idle connections; another address still connects.
func TestPerHostLimitLeavesOtherHostsAlone(t *testing.T) {
	g := newRig(t, Limits{MaxConnsPerListener: 100, MaxConnsPerHost: 5})
	other := g.dial("127.0.0.3")
	g.slot(other).Established()
	for i := 0; i < 20; i++ {
		g.dial("127.0.0.2")
	}
	if n := g.l.Live(); n != 6 {
		t.Fatalf("%d live, want 5 from the flooding address and 1 other", n)
	}
	if closed(other) {
		t.Fatal("the other host's connection was evicted by another address's flood")
	}
	if g.slot(g.dial("127.0.0.4")) == nil {
		t.Fatal("a third address was not admitted")
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, l := range []Limits{
		{MaxConnsPerListener: 10, MaxConnsPerHost: 11},
		{SetupTimeoutMs: 10},
		{MaxAwaitedDataBytes: 100},
	} {
		if _, err := l.Normalize(); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	d, err := Limits{}.Normalize()
	if err != nil || d.MaxConnsPerListener != DefaultMaxConnsPerListener || d.DataTimeoutMs != DefaultDataTimeoutMs {
		t.Fatalf("defaults %+v %v", d, err)
	}
}

func TestThrottle(t *testing.T) {
	var th Throttle
	if !th.Allow(time.Hour) || th.Allow(time.Hour) {
		t.Fatal("a throttle lets the first event through and holds the second")
	}
}
