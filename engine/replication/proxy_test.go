package replication

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
)

// proxyFor registers partnership p1 with a proxy on 127.0.0.3, translating its public
// ports to B's on 127.0.0.1, with credential cred.
func proxyFor(t *testing.T, p *pair, cred string) (*Proxy, uint16) {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	px := NewProxy(id, testLog())
	t.Cleanup(px.Close)
	pub := freeBase(t)[LinkTunnel]
	tr, err := TranslationsFor(pub, "127.0.0.1", p.ports[LinkTunnel], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Add(ProxyEntry{Partnership: "p1", Credential: cred,
		Listen: "127.0.0.3:" + strconv.Itoa(int(pub)), Translations: tr}); err != nil {
		t.Fatal(err)
	}
	return px, pub
}

func (p *pair) dialProxy(px *Proxy, pub uint16) error {
	_, err := p.a.svc.CreatePartnership(context.Background(), PartnershipParams{Name: "p1",
		Role: RoleDial, Address: "127.0.0.3", BasePort: p.ports[LinkTunnel], ProxyPort: pub,
		ProxyHostKey: px.HostKey(), PeerKey: p.b.id()})
	return err
}

// TestReplicationThroughProxy: A reaches B only through the proxy, which admits A's
// stored credential and forwards the translated port; the volume converges; the
// proxy relayed the bytes but never opened an untranslated port (A1, A3).
func TestReplicationThroughProxy(t *testing.T) {
	p := newPair(t, 16<<20, 1<<20, false)
	p.listen(t, PartnershipParams{})
	px, pub := proxyFor(t, p, p.a.id())
	if err := p.dialProxy(px, pub); err != nil {
		t.Fatal(err)
	}
	if err := p.a.svc.StartVolume(VolumeParams{Volume: "vol0", Partnership: "p1"}); err != nil {
		t.Fatal(err)
	}
	o := p.a.open(t, "vol0")
	randomWrites(t, o, rand.New(rand.NewPCG(9, 9)), 200, 16<<20, 1)
	p.waitInSync(t)
	p.assertSame(t)
	st := px.List()[0]
	if st.Sessions != 1 || st.ChannelsOpened != 1 || st.BytesToTarget < 1<<20 || st.AuthFailures != 0 {
		t.Fatalf("proxy: %+v", st)
	}
	// Only translated ports: B's link ports, even on the translated host, are refused.
	pt, _ := p.a.svc.partnership("p1")
	tc, _ := pt.awaitTunnel(context.Background())
	for _, port := range []uint16{pub + 10, p.ports[LinkData]} {
		if c, err := tc.outer.Dial("tcp", "p1:"+strconv.Itoa(int(port))); err == nil {
			c.Close()
			t.Fatalf("proxy forwarded untranslated port %d", port)
		}
	}
	if px.List()[0].ChannelsRefused != 2 {
		t.Fatalf("proxy: %+v", px.List()[0])
	}
}

// TestProxyRefusesUnregisteredCredential: a node whose key the agent did not register
// is refused by the proxy; no partnership and no forward exist on A, and B saw
// nothing (A2, R2).
func TestProxyRefusesUnregisteredCredential(t *testing.T) {
	p := newPair(t, 16<<20, 1<<20, false)
	p.listen(t, PartnershipParams{})
	stranger, _ := NewIdentity()
	px, pub := proxyFor(t, p, stranger.AuthorizedKey())
	err := p.dialProxy(px, pub)
	if err == nil || !errAuth(err) {
		t.Fatalf("partnership through a proxy that does not know A: %v", err)
	}
	if len(p.a.svc.partnershipList()) != 0 {
		t.Fatal("a failed partnership was kept")
	}
	if st := px.List()[0]; st.AuthFailures == 0 || st.ChannelsOpened != 0 {
		t.Fatalf("proxy: %+v", st)
	}
	bp, _ := p.b.svc.partnership("p1")
	if n := bp.srv.accepted.Load(); n != 0 {
		t.Fatalf("B accepted %d tunnels", n)
	}
}
