package host

import (
	"context"
	"errors"
	"fmt"

	"sluice/engine/proto/nvme"
)

// MaxDiscoveryRecords bounds the NUMREC this host believes: 4096 entries is a 4 MiB
// log, far more than any real discovery service serves.
const MaxDiscoveryRecords = 4096

// discoveryRetries bounds re-reads while GENCTR keeps moving.
const discoveryRetries = 10

// Discover connects to the discovery controller at addr (NQN
// nqn.2014-08.org.nvmexpress.discovery, KATO 0 as non-persistent Linux discovery
// sends), reads the Discovery log (LID 70h) as nvme-cli does, and shuts the controller
// down. The log is read with offset reads: the 1024-byte header, then NUMREC entries
// from offset 1024, then the header again; if GENCTR moved, it starts over (PROTOCOLS.md
// §1.6). It returns the entries and the GENCTR they belong to.
func Discover(ctx context.Context, addr string, opts Options) ([]nvme.DiscoveryLogEntry, uint64, error) {
	opts.KATO = -1
	c, err := Connect(ctx, addr, nvme.DiscoveryNQN, opts)
	if err != nil {
		return nil, 0, err
	}
	es, gen, err := c.DiscoveryLog(ctx)
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	if err := c.Shutdown(ctx); err != nil {
		return nil, 0, err
	}
	return es, gen, nil
}

// DiscoveryLog reads the Discovery log on a discovery controller (see Discover).
func (c *Controller) DiscoveryLog(ctx context.Context) ([]nvme.DiscoveryLogEntry, uint64, error) {
	h, err := c.discoveryHeader(ctx)
	if err != nil {
		return nil, 0, err
	}
	for range discoveryRetries {
		var es []nvme.DiscoveryLogEntry
		if h.NUMREC > 0 {
			n := int(h.NUMREC)
			b, err := c.GetLogPage(ctx, nvme.LogDiscovery, 0, nvme.DiscoveryLogHdrLen, n*nvme.DiscoveryLogEntryLen, false)
			if err != nil {
				return nil, 0, fmt.Errorf("discovery log entries: %w", err)
			}
			es = make([]nvme.DiscoveryLogEntry, n)
			for i := range es {
				es[i].Unmarshal((*[nvme.DiscoveryLogEntryLen]byte)(b[i*nvme.DiscoveryLogEntryLen:]))
			}
		}
		h2, err := c.discoveryHeader(ctx)
		if err != nil {
			return nil, 0, err
		}
		if h2.GENCTR == h.GENCTR {
			if h2.NUMREC != h.NUMREC {
				return nil, 0, gateErr(fmt.Sprintf("discovery log NUMREC changed from %d to %d without GENCTR changing",
					h.NUMREC, h2.NUMREC))
			}
			return es, h.GENCTR, nil
		}
		h = h2
	}
	return nil, 0, errors.New("nvme/tcp host: discovery log GENCTR kept changing")
}

func (c *Controller) discoveryHeader(ctx context.Context) (nvme.DiscoveryLogHeader, error) {
	var h nvme.DiscoveryLogHeader
	b, err := c.GetLogPage(ctx, nvme.LogDiscovery, 0, 0, nvme.DiscoveryLogHdrLen, false)
	if err != nil {
		return h, fmt.Errorf("discovery log header: %w", err)
	}
	h.Unmarshal((*[nvme.DiscoveryLogHdrLen]byte)(b))
	if h.RECFMT != 0 {
		return h, gateErr(fmt.Sprintf("discovery log RECFMT %d, only 0 is defined", h.RECFMT))
	}
	if h.NUMREC > MaxDiscoveryRecords {
		return h, gateErr(fmt.Sprintf("discovery log NUMREC %d above %d", h.NUMREC, MaxDiscoveryRecords))
	}
	return h, nil
}
