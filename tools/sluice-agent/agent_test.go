package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sluice/engine/replication"
	"sluice/engine/rpc"
)

// fakeNode answers the two calls the agent makes of a node, and records the second.
type fakeNode struct {
	info  replication.NodeInfo
	mu    sync.Mutex
	calls []replication.PartnershipParams
}

func startFakeNode(t *testing.T, dir, name string, info replication.NodeInfo) (*fakeNode, string) {
	t.Helper()
	n := &fakeNode{info: info}
	reg := rpc.NewRegistry(rpc.RegistryOptions{})
	rpc.Handle(reg, "replication_get_node_info", func(context.Context, struct{}) (replication.NodeInfo, error) {
		return n.info, nil
	})
	rpc.Handle(reg, "replication_partnership_create",
		func(_ context.Context, p replication.PartnershipParams) (bool, error) {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.calls = append(n.calls, p)
			return true, nil
		})
	sock := filepath.Join(dir, name+".sock")
	ln, err := rpc.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(reg, rpc.ServerOptions{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return n, sock
}

func key(t *testing.T) string {
	id, err := replication.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id.AuthorizedKey()
}

// TestAgentChoosesByCriterion: with two candidates the capacity criterion takes the one
// with more free space and the label criterion the one with the label; the chosen
// node's proxy gets the credential and the translations, the chosen node (only) gets
// the partnership, and the answer carries what the first node dials.
func TestAgentChoosesByCriterion(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pid, _ := replication.NewIdentity()
	px := replication.NewProxy(pid, nil)
	t.Cleanup(px.Close)
	admin := httptest.NewServer(proxyAdmin(px, "s3cret"))
	t.Cleanup(admin.Close)
	big, bigSock := startFakeNode(t, dir, "big", replication.NodeInfo{PublicKey: key(t), FreeBytes: 100 << 30,
		Labels: map[string]string{"site": "north"}})
	small, smallSock := startFakeNode(t, dir, "small", replication.NodeInfo{PublicKey: key(t), FreeBytes: 10 << 30,
		Labels: map[string]string{"site": "south"}})
	proxyCfg := ProxyConfig{Admin: admin.URL, TokenFile: tokFile, PublicHost: "127.0.0.1",
		PublicPorts: [2]uint16{41000, 41999}}
	a := NewAgent(Config{Candidates: []Candidate{
		{Name: "small", RPCSocket: smallSock, Address: "10.0.0.2", BasePorts: [2]uint16{7000, 7999}, Proxy: proxyCfg},
		{Name: "big", RPCSocket: bigSock, Address: "10.0.0.3", BasePorts: [2]uint16{7000, 7999}, Proxy: proxyCfg},
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	cred := key(t)
	cases := []struct {
		cr   Criterion
		want string
		node *fakeNode
	}{
		{Criterion{Kind: "capacity"}, "big", big},
		{Criterion{Kind: "label", Label: "site=south"}, "small", small},
	}
	for i, c := range cases {
		resp, err := a.Setup(context.Background(), Request{FirstNode: "a", Credential: cred,
			Criterion: c.cr, Partnership: []string{"pa", "pb"}[i]})
		if err != nil {
			t.Fatal(err)
		}
		if resp.SecondNode != c.want || resp.PeerKey != c.node.info.PublicKey ||
			resp.ProxyHostKey != px.HostKey() {
			t.Fatalf("%+v chose %+v, want %s", c.cr, resp, c.want)
		}
		c.node.mu.Lock()
		got := c.node.calls[len(c.node.calls)-1]
		c.node.mu.Unlock()
		if got.Role != replication.RoleListen || got.PeerKey != cred || got.BasePort != resp.BasePort ||
			got.Name != resp.Partnership {
			t.Fatalf("node told %+v", got)
		}
	}
	if len(big.calls) != 1 || len(small.calls) != 1 {
		t.Fatalf("partnerships sent: big %d, small %d", len(big.calls), len(small.calls))
	}
	entries := px.List()
	if len(entries) != 2 {
		t.Fatalf("proxy entries: %+v", entries)
	}
	for _, e := range entries {
		if e.Credential != cred || len(e.Translations) != 4 {
			t.Fatalf("proxy entry %+v", e)
		}
	}
	if _, err := a.Setup(context.Background(), Request{FirstNode: "a", Credential: cred,
		Criterion: Criterion{Kind: "label", Label: "site=east"}}); err == nil {
		t.Fatal("a label no candidate has was satisfied")
	}
	// The portal refuses callers without the token.
	srv := httptest.NewServer(a.portal("s3cret"))
	defer srv.Close()
	bad := filepath.Join(dir, "bad-token")
	if err := os.WriteFile(bad, []byte("guess"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := request([]string{"-portal", srv.URL, "-token-file", bad, "-first-node", "a",
		"-credential", cred}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("portal with a wrong token: %v", err)
	}
}
