package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"sluice/engine/replication"
)

const usage = `usage: sluice-agent serve   -config agents.json -listen HOST:PORT -token-file FILE
       sluice-agent proxy   -key FILE -admin HOST:PORT -token-file FILE
       sluice-agent request -portal URL -token-file FILE -first-node NAME -credential KEY
                            [-criterion capacity|label] [-label k=v] [-partnership NAME]

serve    the agent's portal: chooses a second node by the criterion, configures the
         proxy beside it, tells it about the partnership, answers what the first needs
proxy    the proxy beside a second node: an SSH server admitting only the credentials
         the agent stored, forwarding only the ports it asked to translate
request  send a request to a portal and print the answer (JSON)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:], log)
	case "proxy":
		err = proxy(os.Args[2:], log)
	case "request":
		err = request(os.Args[2:], os.Stdout)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-agent:", err)
		os.Exit(1)
	}
}

func serve(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "candidates (JSON)")
	listen := fs.String("listen", "127.0.0.1:7900", "portal address")
	tokenFile := fs.String("token-file", "", "bearer token callers must present")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*cfgPath)
	if err != nil {
		return err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("config %s: %w", *cfgPath, err)
	}
	tok, err := readToken(*tokenFile)
	if err != nil {
		return err
	}
	return listenAndServe(*listen, NewAgent(cfg, log).portal(tok), log, nil)
}

func proxy(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	keyPath := fs.String("key", "", "the proxy's host key (OpenSSH private key; created if absent)")
	admin := fs.String("admin", "127.0.0.1:7901", "admin API address (the agent's)")
	tokenFile := fs.String("token-file", "", "bearer token the agent presents")
	if err := fs.Parse(args); err != nil {
		return err
	}
	id, err := replication.LoadIdentity(*keyPath)
	if err != nil {
		return err
	}
	tok, err := readToken(*tokenFile)
	if err != nil {
		return err
	}
	px := replication.NewProxy(id, log)
	return listenAndServe(*admin, proxyAdmin(px, tok), log, px.Close)
}

// listenAndServe serves h until SIGTERM or SIGINT, then runs stop.
func listenAndServe(addr string, h http.Handler, log *slog.Logger, stop func()) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("sluice-agent: serving", "address", ln.Addr().String())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-done:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(ctx)
	if stop != nil {
		stop()
	}
	return err
}

func request(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("request", flag.ContinueOnError)
	portal := fs.String("portal", "http://127.0.0.1:7900", "the agent's portal")
	tokenFile := fs.String("token-file", "", "bearer token")
	var req Request
	fs.StringVar(&req.FirstNode, "first-node", "", "the first node's name")
	fs.StringVar(&req.Credential, "credential", "", "the first node's public key (replication_get_identity)")
	fs.StringVar(&req.Criterion.Kind, "criterion", "capacity", "capacity or label")
	fs.StringVar(&req.Criterion.Label, "label", "", "key=value, for the label criterion")
	fs.StringVar(&req.Partnership, "partnership", "", "the partnership's name (default: generated)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok, err := readToken(*tokenFile)
	if err != nil {
		return err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(*portal, "/")+"/v1/partnerships", bytes.NewReader(b))
	if err != nil {
		return err
	}
	hr.Header.Set("Authorization", "Bearer "+tok)
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = out.Write(body)
	return err
}
