package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"sluice/engine/rpc"
)

//go:embed default_config.json
var defaultConfig string

// version is set by the build (-ldflags "-X main.version=...").
var version = "0.1.0-dev"

func main() {
	var o options
	flag.StringVar(&o.configPath, "config", "", "JSON config file (SPDK save_config format); empty: the embedded default")
	flag.StringVar(&o.dataDir, "data-dir", "/var/lib/sluice", "directory for the default volume and daemon state")
	flag.StringVar(&o.rpcSocket, "rpc-socket", rpc.DefaultSocketPath, "JSON-RPC Unix socket")
	flag.StringVar(&o.cores, "cores", "0", "reactor cores: a list (0,2-3) or a hex mask (0x3)")
	flag.StringVar(&o.pollMode, "poll-mode", "adaptive", "reactor poll mode: busy, adaptive or interrupt")
	flag.DurationVar(&o.idleSpin, "idle-spin", 0, "adaptive mode: idle time before a reactor sleeps (default 200µs)")
	flag.StringVar(&o.memSize, "mem-size", "512M", "buffer memory per NUMA node (hugepages when reserved)")
	flag.StringVar(&o.hugepages, "hugepages", "prefer", "hugepage use: prefer (fall back with a warning), require, off (ordinary pages)")
	flag.StringVar(&o.listenAddr, "listen-addr", "127.0.0.1", "address the embedded default config listens on")
	flag.StringVar(&o.nvmfPort, "nvmf-port", "4420", "NVMe/TCP port of the embedded default config")
	flag.StringVar(&o.discoveryPort, "discovery-port", "8009", "discovery port of the embedded default config")
	flag.StringVar(&o.iscsiPort, "iscsi-port", "3260", "iSCSI portal port of the embedded default config")
	flag.StringVar(&o.groupAddr, "group-addr", "127.0.0.1:7410", "address the reservation group's peers reach this node at (host:port)")
	flag.UintVar(&o.maxQueueDepth, "max-queue-depth", 0, "NVMe/TCP queue depth (default 128)")
	flag.UintVar(&o.maxIOSize, "max-io-size", 0, "largest transfer, bytes (default 512 KiB)")
	flag.UintVar(&o.icdSize, "in-capsule-data-size", 0, "in-capsule data on I/O queues, bytes (default 4096)")
	flag.UintVar(&o.maxH2CData, "max-h2c-data", 0, "largest H2CData PDU, bytes (default 64 KiB)")
	flag.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	flag.StringVar(&o.cpuProfile, "cpu-profile", "", "write a CPU profile (pprof) from start to shutdown")
	flag.Parse()

	log := newLogger(o.logLevel)
	if err := run(o, log); err != nil {
		// Plain text, not a log record: multi-line config errors stay readable.
		fmt.Fprintln(os.Stderr, "sluiced:", err)
		os.Exit(1)
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func run(o options, log *slog.Logger) error {
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	d, err := start(o, log)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Info("sluiced: shutting down", "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.stop(ctx)
}

// defaultIQN is the iSCSI target node of the embedded default config.
const defaultIQN = "iqn.2026-11.dev.sluice:vol0"

// printConnect tells the operator how to reach the default volume.
func printConnect(o options, subnqn string) {
	addr := o.listenAddr
	fmt.Printf(`sluice is serving %s on %s (data in %s, RPC on %s)

NVMe/TCP:
  nvme discover -t tcp -a %s -s %s
  nvme connect  -t tcp -a %s -s %s -n %s
iSCSI (the same volume, LUN 0 of %s):
  iscsiadm -m discovery -t sendtargets -p %s:%s
  iscsiadm -m node -T %s -p %s:%s --login
  iscsi-inq iscsi://%s:%s/%s/0
RPC:
  sluicectl -s %s bdev_get_bdevs

From a qemu guest with user networking the host's 127.0.0.1 is 10.0.2.2.
`, subnqn, addr, o.dataDir, o.rpcSocket, addr, o.discoveryPort, addr, o.nvmfPort, subnqn,
		defaultIQN, addr, o.iscsiPort, defaultIQN, addr, o.iscsiPort, addr, o.iscsiPort, defaultIQN, o.rpcSocket)
}

func expandDefaultConfig(o options) string {
	r := strings.NewReplacer("@DATA_DIR@", o.dataDir, "@LISTEN_ADDR@", o.listenAddr,
		"@NVMF_PORT@", o.nvmfPort, "@DISCOVERY_PORT@", o.discoveryPort, "@ISCSI_PORT@", o.iscsiPort)
	return r.Replace(defaultConfig)
}
