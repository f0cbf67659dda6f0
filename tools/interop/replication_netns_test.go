package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/engine/replication"
)

// The public-network scenario (US10944819 and US11233850) on namespaces this test
// makes: site A, a public segment with the proxy and the agent, and two candidate
// second nodes B and C, each reachable only through the proxy (no routing anywhere):
//
//	A 10.s.1.1 ──veth── 10.s.1.2 P (proxy, agent) 10.s.2.1 ──veth── 10.s.2.2 B
//	                                              10.s.3.1 ──veth── 10.s.3.2 C

// agentResponse mirrors tools/sluice-agent's answer.
type agentResponse struct {
	Partnership  string   `json:"partnership"`
	SecondNode   string   `json:"second_node"`
	PeerKey      string   `json:"peer_key"`
	ProxyAddress string   `json:"proxy_address"`
	ProxyPort    uint16   `json:"proxy_port"`
	ProxyHostKey string   `json:"proxy_host_key"`
	BasePort     uint16   `json:"base_port"`
	Offsets      []uint16 `json:"offsets"`
}

type publicNet struct {
	tp                 *topo
	nsA, nsP, nsB, nsC string
	ifA, ifB           string // A's and B's ends of their links
	a, b, c            *daemon
	keys               string
	tok                string
	kekA, kekB         string
	rawA, rawB         []byte
}

func newPublicNet(t *testing.T) *publicNet {
	tp := newTopo(t)
	n := &publicNet{tp: tp}
	n.nsA, n.nsP, n.nsB, n.nsC = tp.node("a"), tp.node("p"), tp.node("b"), tp.node("c")
	n.ifA, _ = tp.link("ap", "a", "p", 1)
	_, n.ifB = tp.link("pb", "p", "b", 2)
	tp.link("pc", "p", "c", 3)
	n.keys = t.TempDir()
	n.kekA, n.rawA = keyFile(t, n.keys, "kek-a", false)
	n.kekB, n.rawB = keyFile(t, n.keys, "kek-b", true)
	kekC, _ := keyFile(t, n.keys, "kek-c", true)
	n.tok = filepath.Join(n.keys, "token")
	if err := os.WriteFile(n.tok, []byte("agent-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.a = newDaemonIn(t, n.nsA, "")
	n.b = newDaemonIn(t, n.nsB, "")
	n.c = newDaemonIn(t, n.nsC, "")
	n.b.call("replication_configure_node", map[string]any{"labels": map[string]string{"site": "b"},
		"capacity_bytes": 8 << 30}, nil)
	n.c.call("replication_configure_node", map[string]any{"labels": map[string]string{"site": "c"},
		"capacity_bytes": 2 << 30}, nil)
	bin := buildAgent(t)
	startAgentProc(t, bin, n.nsP, filepath.Join(n.keys, "proxy.log"), "proxy",
		"-key", filepath.Join(n.keys, "proxy_ed25519"), "-admin", "127.0.0.1:7901", "-token-file", n.tok)
	cand := func(name string, d *daemon, seg int, kek string) map[string]any {
		return map[string]any{"name": name, "rpc_socket": d.sock, "address": tp.addr(seg, 2),
			"base_ports": []int{7000, 7100}, "key_file": kek,
			"proxy": map[string]any{"admin": "http://127.0.0.1:7901", "token_file": n.tok,
				"public_host": tp.addr(1, 2), "public_ports": []int{20000, 20100}}}
	}
	cfg := filepath.Join(n.keys, "agent.json")
	if err := os.WriteFile(cfg, mustJSON(t, map[string]any{"candidates": []any{
		cand("b", n.b, 2, n.kekB), cand("c", n.c, 3, kekC)}}), 0o600); err != nil {
		t.Fatal(err)
	}
	startAgentProc(t, bin, n.nsP, filepath.Join(n.keys, "agent.log"), "serve", "-config", cfg,
		"-listen", tp.addr(1, 2)+":7900", "-token-file", n.tok)
	waitListening(t, n.nsP, "127.0.0.1:7901")
	waitListening(t, n.nsA, tp.addr(1, 2)+":7900")
	return n
}

// request asks the agent's portal, from A's namespace, for a partnership.
func (n *publicNet) request(t *testing.T, name, kind, label string) agentResponse {
	t.Helper()
	body := mustJSON(t, map[string]any{"partnership": name, "first_node": "a",
		"credential": n.a.identity(), "criterion": map[string]any{"kind": kind, "label": label}})
	hc := &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{DialContext: nsDialer{n.nsA}.DialContext}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+n.tp.addr(1, 2)+":7900/v1/partnerships",
		bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer agent-token")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("agent: %s: %s", resp.Status, b)
	}
	var out agentResponse
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// proxyEntry reads the proxy's entry for a partnership through its admin API.
func (n *publicNet) proxyEntry(t *testing.T, name string) replication.ProxyEntryStatus {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: nsDialer{n.nsP}.DialContext}}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:7901/v1/partnerships", nil)
	req.Header.Set("Authorization", "Bearer agent-token")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all []replication.ProxyEntryStatus
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.Partnership == name {
			return e
		}
	}
	t.Fatalf("proxy has no entry %q", name)
	return replication.ProxyEntryStatus{}
}

func (n *publicNet) dialParams(r agentResponse) map[string]any {
	return map[string]any{"name": r.Partnership, "role": "dial", "address": r.ProxyAddress,
		"base_port": r.BasePort, "offsets": r.Offsets, "proxy_port": r.ProxyPort,
		"proxy_host_key": r.ProxyHostKey, "peer_key": r.PeerKey}
}

func (n *publicNet) partnershipOf(d *daemon, name string) (replication.PartnershipStatus, bool) {
	var all []replication.PartnershipStatus
	d.call("replication_get_partnerships", nil, &all)
	for _, p := range all {
		if p.Name == name {
			return p, true
		}
	}
	return replication.PartnershipStatus{}, false
}

// markerBlock is a 4 KiB plaintext block made of one 32-byte motif, so that any 63
// bytes of it hold the motif whole: the searches look for the motif.
func markerBlock() ([]byte, []byte) {
	motif := []byte("SLUICE-PLAINTEXT-MARKER-7f3a91c!")
	return bytes.Repeat(motif, 4096/len(motif)), motif
}

// TestReplicationOverPublicNetwork: the agent picks the second node by its criterion
// among two candidates and configures the proxy; a partnership with an unregistered
// credential or a wrong key pair fails with no forward and nothing at B; then an
// encrypted volume written by our NVMe/TCP host on A replicates to B through the proxy;
// no key or plaintext block crosses a captured link or reaches B's disk (with a
// positive control that the capture would see one); after promotion B serves every
// block as written; teardown leaves no forward and no listener.
func TestReplicationOverPublicNetwork(t *testing.T) {
	n := newPublicNet(t)

	// A4: the criterion chooses. Label site=c takes C; most free capacity takes B.
	if r := n.request(t, "pc", "label", "site=c"); r.SecondNode != "c" {
		t.Fatalf("label site=c chose %q", r.SecondNode)
	}
	if _, ok := n.partnershipOf(n.c, "pc"); !ok {
		t.Fatal("C was not told of its partnership")
	}
	resp := n.request(t, "pab", "capacity", "")
	if resp.SecondNode != "b" {
		t.Fatalf("capacity chose %q, want b (8 GiB against 2 GiB)", resp.SecondNode)
	}
	bp, ok := n.partnershipOf(n.b, "pab")
	if !ok || bp.Role != "listen" || bp.PeerKey != n.a.identity() {
		t.Fatalf("B's partnership: %+v", bp)
	}
	t.Logf("agent: second node %s, base port %d, proxy %s:%d", resp.SecondNode, resp.BasePort,
		resp.ProxyAddress, resp.ProxyPort)

	t.Run("UnregisteredCredential", func(t *testing.T) {
		stranger := writeIdentity(t, n.keys, "stranger")
		p := n.dialParams(resp)
		p["identity_file"] = stranger
		if err := n.a.tryCall("replication_partnership_create", p, nil); err == nil {
			t.Fatal("partnership with a credential the agent never registered")
		}
		n.assertNothingReached(t, resp)
		if e := n.proxyEntry(t, "pab"); e.AuthFailures == 0 || e.ChannelsOpened != 0 {
			t.Fatalf("proxy after an unregistered credential: %+v", e)
		}
	})
	t.Run("WrongKeyPair", func(t *testing.T) {
		p := n.dialParams(resp)
		p["peer_key"] = n.c.identity() // A pins a host key B does not hold
		if err := n.a.tryCall("replication_partnership_create", p, nil); err == nil {
			t.Fatal("partnership with a wrong key pair")
		}
		n.assertNothingReached(t, resp)
	})

	n.a.call("replication_partnership_create", n.dialParams(resp), nil)
	ap, _ := n.partnershipOf(n.a, "pab")
	wantPorts := []uint16{resp.BasePort, resp.BasePort + 1, resp.BasePort + 2, resp.BasePort + 3}
	if fmt.Sprint(ap.Ports) != fmt.Sprint(wantPorts) || ap.State != "connected" {
		t.Fatalf("A's partnership: %+v, want ports %v", ap, wantPorts) // R1
	}
	n.runEncryptedReplication(t, resp)
	n.teardown(t, resp)
}

// writeIdentity writes a fresh OpenSSH key pair for identity_file.
func writeIdentity(t *testing.T, dir, name string) string {
	t.Helper()
	id, err := replication.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := id.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// assertNothingReached: A kept no partnership (so no forward) and B accepted no tunnel
// and holds no copy (R2, A2).
func (n *publicNet) assertNothingReached(t *testing.T, resp agentResponse) {
	t.Helper()
	if p, ok := n.partnershipOf(n.a, resp.Partnership); ok {
		t.Fatalf("A kept the failed partnership: %+v", p)
	}
	bp, _ := n.partnershipOf(n.b, resp.Partnership)
	if bp.Tunnels != 0 || len(bp.Copies) != 0 || len(bp.Forwards) != 0 {
		t.Fatalf("B after a refused partnership: %+v", bp)
	}
}

const blocks = 2048 // 8 MiB of 4 KiB blocks

func (n *publicNet) runEncryptedReplication(t *testing.T, resp agentResponse) {
	tp := n.tp
	baseFile := filepath.Join(n.a.dataDir, "baseA.img")
	n.a.call("bdev_file_create", map[string]any{"name": "baseA", "filename": baseFile,
		"size_bytes": 32 << 20, "block_size": 4096}, nil)
	n.a.call("bdev_replica_create", map[string]any{"name": "vol0", "base_bdev_name": "baseA"}, nil)
	n.a.call("bdev_crypt_create", map[string]any{"name": "cvol", "base_bdev_name": "vol0",
		"key_file": n.kekA, "format": true}, nil)
	nqnA := "nqn.2026-11.dev.sluice:repl-a"
	n.a.exportNVMe(nqnA, "cvol", tp.addr(1, 1), 4420)
	n.a.call("replication_volume_start", map[string]any{"volume": "vol0", "partnership": resp.Partnership,
		"mode": "sync"}, nil)
	n.a.waitInSync("vol0", time.Minute)

	capA := startCapture(t, n.nsA, n.ifA)
	capB := startCapture(t, n.nsB, n.ifB)
	_, q := connectNVMe(t, n.nsA, tp.addr(1, 1)+":4420", nqnA)
	block, motif := markerBlock()
	sums := make([][32]byte, blocks)
	buf := make([]byte, 4096)
	ctx := context.Background()
	for i := range blocks {
		if i%16 == 0 {
			copy(buf, block)
		} else if _, err := rand.Read(buf); err != nil {
			t.Fatal(err)
		}
		if err := q.Write(ctx, 1, uint64(i), 1, buf, false); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		sums[i] = sha256.Sum256(buf)
	}
	st := n.a.waitInSync("vol0", time.Minute)
	if !st.KeysExchanged || st.FramesFailed != 0 || st.Latency.Count < blocks {
		t.Fatalf("A after the writes: %+v", st)
	}
	t.Logf("A: %d frames, %d bytes sent, send→ack p50 %.0f µs p99 %.0f µs", st.FramesSent, st.BytesSent,
		float64(st.Latency.P50Ns)/1e3, float64(st.Latency.P99Ns)/1e3)

	dek := dataKey(t, baseFile, n.rawA)
	sec := secrets{"plaintext marker": motif, "data key (XTS key 1)": dek[:32], "data key (XTS key 2)": dek[32:]}
	sec.addKey("A's KEK", n.rawA)
	sec.addKey("B's KEK", n.rawB)
	for _, c := range []struct {
		name string
		c    *capture
	}{{"A–proxy link", capA}, {"proxy–B link", capB}} {
		hits, frames, nbytes := c.c.search(sec)
		t.Logf("%s: %d frames, %d bytes captured", c.name, frames, nbytes)
		if nbytes < blocks*4096 {
			t.Fatalf("%s: only %d bytes captured for %d bytes replicated", c.name, nbytes, blocks*4096)
		}
		if len(hits) > 0 {
			t.Fatalf("%s carried secrets outside the tunnel: %v", c.name, hits)
		}
	}
	// A1, A3: A's link carries only A's connection to the proxy's public port; B's link
	// only the proxy's to B's base port: never a link's derived port.
	for p := range capB.ports() {
		if p > resp.BasePort && p <= resp.BasePort+3 {
			t.Fatalf("a derived port (%d) crossed the proxy–B link", p)
		}
	}
	if !capA.ports()[resp.ProxyPort] || !capB.ports()[resp.BasePort] {
		t.Fatalf("ports seen: A link %v, B link %v", capA.ports(), capB.ports())
	}
	n.positiveControl(t, block, motif)
	if hits := sec.scanDir(t, n.b.dataDir); len(hits) > 0 {
		t.Fatalf("B's disk holds secrets: %v", hits)
	}
	n.promoteAndRead(t, resp, sums, sec)
}

// positiveControl sends the marker block in clear over a test socket across the same
// link while capturing: the search must find it, or the captures prove nothing.
func (n *publicNet) positiveControl(t *testing.T, block, motif []byte) {
	t.Helper()
	ctl := startCapture(t, n.nsA, n.ifA)
	ln, err := listenIn(n.nsP, n.tp.addr(1, 2)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- 0
			return
		}
		b, _ := io.ReadAll(c)
		c.Close()
		got <- len(b)
	}()
	c, err := nsDialer{n.nsA}.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(block); err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-got
	time.Sleep(100 * time.Millisecond)
	hits, _, _ := ctl.search(secrets{"plaintext marker": motif})
	if len(hits) == 0 {
		t.Fatal("positive control: the capture did not see a block sent in clear")
	}
	t.Logf("positive control: %v", hits)
}

func (n *publicNet) promoteAndRead(t *testing.T, resp agentResponse, sums [][32]byte, sec secrets) {
	t.Helper()
	var pr replication.PromoteResult
	n.b.call("replication_promote", map[string]any{"partnership": resp.Partnership, "volume": "vol0",
		"name": "cvol"}, &pr)
	if !pr.Encrypted || pr.Bdev != "cvol" {
		t.Fatalf("promotion: %+v", pr)
	}
	var ki struct {
		KEKSource string `json:"kek_source"`
		KeyFile   string `json:"key_file"`
	}
	n.b.call("bdev_crypt_get_key_info", map[string]any{"name": "cvol"}, &ki)
	if ki.KeyFile != n.kekB {
		t.Fatalf("promoted volume keyed by %+v, want B's key file", ki)
	}
	nqnB := "nqn.2026-11.dev.sluice:repl-b"
	n.b.exportNVMe(nqnB, pr.Bdev, n.tp.addr(2, 2), 4420)
	_, q := connectNVMe(t, n.nsB, n.tp.addr(2, 2)+":4420", nqnB)
	buf := make([]byte, 4096)
	for i := range blocks {
		if err := q.Read(context.Background(), 1, uint64(i), 1, buf); err != nil {
			t.Fatalf("read %d on B: %v", i, err)
		}
		if sha256.Sum256(buf) != sums[i] {
			t.Fatalf("block %d read through B differs from what A's host wrote", i)
		}
	}
	t.Logf("B serves all %d blocks as written (sha256 of every block)", blocks)
	if hits := sec.scanDir(t, n.b.dataDir); len(hits) > 0 {
		t.Fatalf("B's disk after promotion holds secrets: %v", hits)
	}
	// A is fenced out of the promoted copy.
	deadline := time.Now().Add(20 * time.Second)
	for n.a.volumeStatus("vol0").State != "refused" {
		if time.Now().After(deadline) {
			t.Fatalf("A still replicates into a promoted copy: %+v", n.a.volumeStatus("vol0"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// teardown: stopping and deleting the partnership leaves A no connection to the proxy,
// and B no listener on any derived port (R5).
func (n *publicNet) teardown(t *testing.T, resp agentResponse) {
	t.Helper()
	n.a.call("replication_volume_stop", map[string]any{"name": "vol0"}, nil)
	n.a.call("replication_partnership_delete", map[string]any{"name": resp.Partnership}, nil)
	n.b.call("replication_partnership_delete", map[string]any{"name": resp.Partnership}, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, estA := tcpSockets(t, n.a.cmd.Process.Pid)
		listenB, _ := tcpSockets(t, n.b.cmd.Process.Pid)
		left := []string{}
		for _, e := range estA {
			if strings.HasSuffix(e, "→"+strconv.Itoa(int(resp.ProxyPort))) {
				left = append(left, "A "+e)
			}
		}
		for p := resp.BasePort; p <= resp.BasePort+3; p++ {
			if listenB[p] {
				left = append(left, fmt.Sprintf("B listens on %d", p))
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after teardown: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := n.partnershipOf(n.a, resp.Partnership); ok {
		t.Fatal("A still lists the partnership")
	}
}
