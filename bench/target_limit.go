package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// limitTarget is the raw-socket limit server, re-executed from this binary
// ("sluicebench rawserver") so that its CPU time is its own.
type limitTarget struct {
	env *Env
	p   *proc
}

// NewLimit returns the raw-socket limit as a target.
func NewLimit(env *Env) Target { return &limitTarget{env: env} }

func (t *limitTarget) Name() string     { return "limit" }
func (t *limitTarget) Family() string   { return "limit" }
func (t *limitTarget) Backend() string  { return "" }
func (t *limitTarget) Protocol() string { return ProtoRaw }

func (t *limitTarget) Start(ctx context.Context) (Endpoint, error) {
	port := freePort()
	p, err := startProc(t.env.Dir, "limit", t.env.Self, "rawserver", "-cpu", strconv.Itoa(t.env.ServerCPU),
		"-addr", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return Endpoint{}, err
	}
	t.p = p
	ready := func() bool {
		b, _ := os.ReadFile(p.log)
		return strings.Contains(string(b), "listening")
	}
	if err := waitFor(ctx, p, 10*time.Second, "limit server", ready); err != nil {
		t.Stop()
		return Endpoint{}, err
	}
	return Endpoint{Protocol: ProtoRaw, Addr: fmt.Sprintf("127.0.0.1:%d", port), PID: p.pid(),
		MaxQD: 128}, nil
}

func (t *limitTarget) Stop() error {
	t.p.stop(5 * time.Second)
	t.p = nil
	return nil
}

// ServeRaw is the "rawserver" subcommand's body: it announces itself on stdout, then
// serves until killed.
func ServeRaw(addr string, cpu int) error {
	w := bufio.NewWriter(os.Stdout)
	return RawServe(addr, cpu, func(port int) {
		fmt.Fprintf(w, "listening on port %d\n", port)
		w.Flush()
	})
}
