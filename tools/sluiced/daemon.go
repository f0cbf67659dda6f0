package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/bdev/crypt"
	"sluice/engine/group"
	"sluice/engine/iscsi"
	"sluice/engine/mem"
	"sluice/engine/nvmf"
	"sluice/engine/reactor"
	"sluice/engine/replication"
	"sluice/engine/rpc"
)

type options struct {
	configPath, dataDir, rpcSocket string
	cores, pollMode                string
	idleSpin                       time.Duration
	memSize, hugepages, listenAddr string
	nvmfPort, discoveryPort        string
	iscsiPort                      string
	groupAddr                      string
	maxQueueDepth, maxIOSize       uint
	icdSize, maxH2CData            uint
	logLevel, cpuProfile           string
}

// daemon is everything started, in start order.
type daemon struct {
	log    *slog.Logger
	state  *stateFile
	domain *mem.Domain
	group  *reactor.Group
	bdevs  *bdev.Manager
	target *nvmf.Target
	iscsi  *iscsi.Target
	resv   *reservations
	reg    *rpc.Registry
	srv    *rpc.Server
	served chan error

	stopSaver chan struct{}
}

// powerOnSavePeriod bounds the power-on time a crash loses.
const powerOnSavePeriod = 10 * time.Minute

func (d *daemon) savePowerOn(stop <-chan struct{}) {
	t := time.NewTicker(powerOnSavePeriod)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := d.state.savePowerOn(d.target.PowerOnSeconds()); err != nil {
				d.log.Warn("sluiced: saving power-on time", "err", err)
			}
		}
	}
}

func start(o options, log *slog.Logger) (_ *daemon, err error) {
	d := &daemon{log: log, bdevs: bdev.NewManager(), served: make(chan error, 1)}
	defer func() {
		if err != nil {
			_ = d.abort()
		}
	}()
	cores, err := reactor.ParseCores(o.cores)
	if err != nil {
		return nil, fmt.Errorf("--cores: %w", err)
	}
	mode, err := reactor.ParseMode(o.pollMode)
	if err != nil {
		return nil, fmt.Errorf("--poll-mode: %w", err)
	}
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if d.state, err = openState(filepath.Join(o.dataDir, "state.json")); err != nil {
		return nil, err
	}
	if d.domain, err = newDomain(o, log); err != nil {
		return nil, err
	}
	// Every file bdev ring gets the domain as fixed buffers, which the NVMe/TCP
	// requests' data buffers (allocated from it) name. Set before the config loads,
	// since backends take the registrar when they are created.
	d.bdevs.SetBufferRegistrar(d.domain.RegisterFixedBuffers)
	cs := make([]*mem.Core, len(cores))
	for i := range cores {
		if cs[i], err = d.domain.NewCore(i); err != nil {
			return nil, err
		}
	}
	if d.group, err = reactor.StartGroup(reactor.GroupConfig{Cores: cores, Mode: mode, IdleSpin: o.idleSpin}); err != nil {
		return nil, err
	}
	if d.state.NodeID == 0 {
		if d.state.NodeID, err = newNodeID(); err != nil {
			return nil, err
		}
		if err := d.state.save(); err != nil {
			return nil, err
		}
	}
	if d.resv, err = startReservations(o.dataDir, d.state.NodeID, o.groupAddr, d.group.Reactors(), log); err != nil {
		return nil, err
	}
	d.target, err = nvmf.NewTarget(nvmf.Config{
		Reservations: d.resv.mgr,
		Reactors:     d.group, Bdevs: d.bdevs, Mem: func(i int) *mem.Core { return cs[i] },
		Transport: nvmf.TransportOpts{MaxQueueDepth: uint16(o.maxQueueDepth), MaxIOSize: uint32(o.maxIOSize),
			InCapsuleDataSize: uint32(o.icdSize), MaxH2CData: uint32(o.maxH2CData)},
		Firmware: firmwareRevision(), Logger: log,
		PowerCycles: d.state.PowerCycles, UnsafeShutdowns: d.state.UnsafeShutdowns,
		PowerOnSeconds: d.state.PowerOnSeconds,
	})
	if err != nil {
		return nil, err
	}
	d.iscsi, err = iscsi.NewTarget(iscsi.Config{Reactors: d.group, Bdevs: d.bdevs, Reservations: d.resv.mgr,
		Mem: func(i int) *mem.Core { return cs[i] }, Logger: log, Revision: scsiRevision()})
	if err != nil {
		return nil, err
	}
	d.reg = rpc.NewRegistry(rpc.RegistryOptions{Version: version, Logger: log})
	bdev.RegisterRPC(d.reg, d.bdevs, regionAllocator{d.domain})
	crypt.RegisterRPC(d.reg, d.bdevs, crypt.Env{Mem: func(i int) *mem.Core { return cs[i] },
		Control: d.group.Reactor(0), DataDir: o.dataDir})
	replication.RegisterRPC(d.reg, d.bdevs, replication.Env{Mem: func(i int) *mem.Core { return cs[i] }, Control: d.group.Reactor(0), DataDir: o.dataDir, Logger: log})
	nvmf.RegisterRPC(d.reg, d.target)
	iscsi.RegisterRPC(d.reg, d.iscsi)
	group.RegisterRPC(d.reg, d.resv.node)
	registerFramework(d.reg, d.group, d.domain)

	cfg := strings.NewReader(expandDefaultConfig(o))
	if o.configPath != "" {
		f, err := os.Open(o.configPath)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		err = d.reg.LoadConfig(context.Background(), f)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", o.configPath, err)
		}
	} else if err := d.reg.LoadConfig(context.Background(), cfg); err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}

	d.resv.claimOwners(d.exportedVolumes, log)

	ln, err := rpc.Listen(o.rpcSocket)
	if err != nil {
		return nil, err
	}
	d.srv = rpc.NewServer(d.reg, rpc.ServerOptions{Logger: log})
	go func() { d.served <- d.srv.Serve(ln) }()
	d.stopSaver = make(chan struct{})
	go d.savePowerOn(d.stopSaver)
	log.Info("sluiced: started", "version", version, "cores", o.cores, "poll_mode", mode.String(),
		"hugepages", d.domain.Hugepages(), "rpc", o.rpcSocket)
	if o.configPath == "" {
		printConnect(o, "nqn.2026-11.dev.sluice:vol0")
	}
	return d, nil
}

// stop is the orderly shutdown: no new RPCs, drain the target, close bdevs (each file
// volume's final fdatasync), stop the reactors, and record a clean shutdown only if all
// of that succeeded: a volume whose last flush failed may have lost acknowledged
// writes, and the next start must count it as an unsafe shutdown.
func (d *daemon) stop(ctx context.Context) error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if d.stopSaver != nil {
		close(d.stopSaver)
	}
	if d.srv != nil {
		keep(d.srv.Shutdown(ctx))
	}
	if d.iscsi != nil {
		keep(d.iscsi.Shutdown(ctx))
	}
	if d.target != nil {
		keep(d.target.Shutdown(ctx))
	}
	keep(d.abort())
	if first == nil && d.state != nil {
		keep(d.state.markClean(d.target.PowerOnSeconds()))
	}
	return first
}

// abort releases what was started, without the graceful steps. It returns the bdevs'
// close error (a failed final flush).
func (d *daemon) abort() error {
	if d.resv != nil {
		// Before the reactors stop: the manager's barriers post to them.
		if err := d.resv.close(); err != nil {
			d.log.Warn("sluiced: closing the reservation group", "err", err)
		}
		d.resv = nil
	}
	if d.group != nil {
		d.group.Stop()
		d.group = nil
	}
	err := d.bdevs.CloseAll()
	if err != nil {
		d.log.Error("sluiced: closing bdevs; this stop counts as unsafe", "err", err)
	}
	if d.domain != nil {
		_ = d.domain.Close()
		d.domain = nil
	}
	return err
}

func newDomain(o options, log *slog.Logger) (*mem.Domain, error) {
	size, err := parseSize(o.memSize)
	if err != nil {
		return nil, fmt.Errorf("--mem-size: %w", err)
	}
	var mode mem.HugepageMode
	switch o.hugepages {
	case "prefer":
		mode = mem.HugepagesPrefer
	case "require":
		mode = mem.HugepagesRequire
	case "off":
		mode = mem.HugepagesNever
	default:
		return nil, fmt.Errorf("--hugepages %q: want prefer, require or off", o.hugepages)
	}
	return mem.NewDomain(mem.DomainConfig{SizeBytes: size, Hugepages: mode, Logger: log})
}

// parseSize reads sizes such as 512M, 2G or 1048576.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"), strings.HasSuffix(s, "g"):
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional K, M or G", s)
	}
	return n * mult, nil
}

// firmwareRevision fits the version into Identify's 8-character FR field, dropping a
// pre-release suffix rather than cutting it in the middle ("0.1.0-dev" → "0.1.0").
func firmwareRevision() string {
	v := strings.TrimPrefix(version, "v")
	if len(v) > 8 {
		v, _, _ = strings.Cut(v, "-")
	}
	if len(v) > 8 {
		v = v[:8]
	}
	return v
}

// scsiRevision is the version as INQUIRY's 4-character PRODUCT REVISION LEVEL:
// "0.1.0" becomes "0100" (major, minor and patch digits), which sorts like the version.
func scsiRevision() string {
	v := firmwareRevision()
	var out []byte
	for _, part := range strings.SplitN(v, ".", 3) {
		if part != "" {
			out = append(out, part...)
		}
	}
	for len(out) < 4 {
		out = append(out, '0')
	}
	return string(out[:4])
}

// regionAllocator gives the malloc bdev hugepage memory from the domain.
type regionAllocator struct{ d *mem.Domain }

func (ra regionAllocator) AllocRegion(size int) ([]byte, func(), error) {
	r, err := ra.d.AllocRegion(int64(size))
	if err != nil {
		return nil, nil, err
	}
	if !r.Contiguous() {
		r.Free()
		return nil, nil, fmt.Errorf("no contiguous run of %d bytes in the memory domain: %w", size, mem.ErrNoMemory)
	}
	return r.Bytes()[:size], r.Free, nil
}
