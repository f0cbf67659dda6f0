package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"sluice/engine/replication"
	"sluice/engine/rpc"
)

// Config is the agent's view of the second nodes it may choose from: how to reach
// each one's management plane and its proxy, and which ports to hand out.
type Config struct {
	Candidates []Candidate `json:"candidates"`
}

// Candidate is one possible second node.
type Candidate struct {
	Name string `json:"name"`
	// RPCSocket is the node's JSON-RPC socket (sluicectl's), through which the agent
	// reads its node info and sends it the partnership.
	RPCSocket string `json:"rpc_socket"`
	// Address is where the node listens for tunnels, as its proxy reaches it.
	Address string `json:"address"`
	// BasePorts is the range [first, last] of base ports the agent may give it.
	BasePorts [2]uint16 `json:"base_ports"`
	// KeyFile is the node's KEK path (on the node), which protects received volume keys.
	KeyFile string      `json:"key_file,omitempty"`
	Proxy   ProxyConfig `json:"proxy"`
}

// ProxyConfig is how the agent reaches a candidate's proxy.
type ProxyConfig struct {
	Admin       string    `json:"admin"`       // base URL of its admin API
	TokenFile   string    `json:"token_file"`  // bearer token for it
	PublicHost  string    `json:"public_host"` // what first nodes dial
	PublicPorts [2]uint16 `json:"public_ports"`
}

// Criterion chooses the second node: "capacity" takes the most free capacity,
// "label" the candidates whose node labels include Label ("key=value"), then the most
// free capacity among them. MinFreeBytes excludes smaller ones.
type Criterion struct {
	Kind         string `json:"kind"`
	Label        string `json:"label,omitempty"`
	MinFreeBytes uint64 `json:"min_free_bytes,omitempty"`
}

// Request is what a first node's operator sends to the portal.
type Request struct {
	Partnership string    `json:"partnership,omitempty"`
	FirstNode   string    `json:"first_node"`
	Credential  string    `json:"credential"` // the first node's public key
	Criterion   Criterion `json:"criterion"`
	Offsets     []uint16  `json:"offsets,omitempty"`
}

// Response is what the first node needs: replication_partnership_create's dialing
// parameters, and who its partner is.
type Response struct {
	Partnership  string   `json:"partnership"`
	SecondNode   string   `json:"second_node"`
	PeerKey      string   `json:"peer_key"`
	ProxyAddress string   `json:"proxy_address"`
	ProxyPort    uint16   `json:"proxy_port"`
	ProxyHostKey string   `json:"proxy_host_key"`
	BasePort     uint16   `json:"base_port"`
	Offsets      []uint16 `json:"offsets"`
}

// Agent sets partnerships up. It carries no replication data: it talks to the nodes'
// management planes and the proxies' admin APIs only (A5).
type Agent struct {
	cfg  Config
	log  *slog.Logger
	http *http.Client

	mu   sync.Mutex
	used map[string]bool // "node:port" and "proxy:port" already handed out
}

// NewAgent makes an agent over cfg.
func NewAgent(cfg Config, log *slog.Logger) *Agent {
	return &Agent{cfg: cfg, log: log, http: &http.Client{Timeout: 20 * time.Second}, used: map[string]bool{}}
}

type scored struct {
	c    Candidate
	info replication.NodeInfo
}

// Choose queries every candidate's node info and applies the criterion.
func (a *Agent) Choose(ctx context.Context, cr Criterion) (Candidate, replication.NodeInfo, error) {
	var ok []scored
	var errs []string
	for _, c := range a.cfg.Candidates {
		var info replication.NodeInfo
		if err := callNode(ctx, c.RPCSocket, "replication_get_node_info", struct{}{}, &info); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", c.Name, err))
			continue
		}
		if info.FreeBytes < cr.MinFreeBytes {
			continue
		}
		switch cr.Kind {
		case "capacity", "":
		case "label":
			k, v, _ := strings.Cut(cr.Label, "=")
			if got, has := info.Labels[k]; !has || got != v {
				continue
			}
		default:
			return Candidate{}, replication.NodeInfo{}, fmt.Errorf("criterion %q: want capacity or label", cr.Kind)
		}
		ok = append(ok, scored{c, info})
	}
	if len(ok) == 0 {
		return Candidate{}, replication.NodeInfo{}, fmt.Errorf("no candidate matches %+v (unreachable: %s)",
			cr, strings.Join(errs, "; "))
	}
	sort.SliceStable(ok, func(i, j int) bool {
		if ok[i].info.FreeBytes != ok[j].info.FreeBytes {
			return ok[i].info.FreeBytes > ok[j].info.FreeBytes
		}
		return ok[i].c.Name < ok[j].c.Name
	})
	return ok[0].c, ok[0].info, nil
}

// Setup runs the whole flow: choose the second node, configure its proxy (credential
// and port translations), then tell the second node, and answer what the first needs.
// A failure after the proxy was configured removes its entry again.
func (a *Agent) Setup(ctx context.Context, req Request) (Response, error) {
	if req.FirstNode == "" || req.Credential == "" {
		return Response{}, errors.New("first_node and credential are required")
	}
	if _, err := replication.ParsePublicKey(req.Credential); err != nil {
		return Response{}, err
	}
	if req.Partnership == "" {
		req.Partnership = fmt.Sprintf("%s-%d", req.FirstNode, time.Now().UnixNano()%1e9)
	}
	c, info, err := a.Choose(ctx, req.Criterion)
	if err != nil {
		return Response{}, err
	}
	offsets := req.Offsets
	if len(offsets) == 0 {
		offsets = replication.DefaultOffsets
	}
	base, err := a.allocate("node "+c.Name, c.BasePorts, offsets)
	if err != nil {
		return Response{}, err
	}
	pub, err := a.allocate("proxy "+c.Proxy.Admin, c.Proxy.PublicPorts, offsets)
	if err != nil {
		return Response{}, err
	}
	tr, err := replication.TranslationsFor(pub, c.Address, base, offsets)
	if err != nil {
		return Response{}, err
	}
	entry := replication.ProxyEntry{Partnership: req.Partnership, Credential: req.Credential,
		Listen: fmt.Sprintf("%s:%d", c.Proxy.PublicHost, pub), Translations: tr}
	var added struct {
		HostKey string `json:"host_key"`
	}
	if err := a.proxyCall(ctx, c.Proxy, http.MethodPost, "/v1/partnerships", entry, &added); err != nil {
		return Response{}, fmt.Errorf("configure proxy of %s: %w", c.Name, err)
	}
	pp := replication.PartnershipParams{Name: req.Partnership, Role: replication.RoleListen,
		Address: c.Address, BasePort: base, Offsets: offsets, PeerKey: req.Credential, KeyFile: c.KeyFile}
	if err := callNode(ctx, c.RPCSocket, "replication_partnership_create", pp, nil); err != nil {
		_ = a.proxyCall(ctx, c.Proxy, http.MethodDelete, "/v1/partnerships/"+req.Partnership, nil, nil)
		return Response{}, fmt.Errorf("tell %s: %w", c.Name, err)
	}
	a.log.Info("agent: partnership set up", "partnership", req.Partnership, "first", req.FirstNode,
		"second", c.Name, "base_port", base, "proxy_port", pub)
	return Response{Partnership: req.Partnership, SecondNode: c.Name, PeerKey: info.PublicKey,
		ProxyAddress: c.Proxy.PublicHost, ProxyPort: pub, ProxyHostKey: added.HostKey,
		BasePort: base, Offsets: offsets}, nil
}

// allocate hands out a base port from rng whose derived ports fit and were not given
// out before by this agent.
func (a *Agent) allocate(owner string, rng [2]uint16, offsets []uint16) (uint16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for base := rng[0]; base != 0 && base <= rng[1]; base++ {
		ports, err := replication.DerivePorts(base, offsets)
		if err != nil {
			continue
		}
		free := true
		for _, p := range ports {
			if a.used[fmt.Sprintf("%s:%d", owner, p)] {
				free = false
			}
		}
		if !free {
			continue
		}
		for _, p := range ports {
			a.used[fmt.Sprintf("%s:%d", owner, p)] = true
		}
		return base, nil
	}
	return 0, fmt.Errorf("%s: no free port range in %v", owner, rng)
}

func callNode(ctx context.Context, sock, method string, params, result any) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := rpc.DialContext(ctx, sock)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, method, params, result)
}

func (a *Agent) proxyCall(ctx context.Context, p ProxyConfig, method, path string, body, out any) error {
	tok, err := readToken(p.TokenFile)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(p.Admin, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// portal is the agent's HTTP API: POST /v1/partnerships with a Request.
func (a *Agent) portal(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/partnerships", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r, token) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var req Request
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := a.Setup(r.Context(), req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		writeJSON(w, resp)
	})
	return mux
}

func authorized(r *http.Request, token string) bool {
	return token != "" && r.Header.Get("Authorization") == "Bearer "+token
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
