package iscsi

import (
	"fmt"
	"time"

	proto "sluice/engine/proto/iscsi"
	"sluice/engine/tcpconn"
)

// Options are the target-wide parameters (iscsi_set_options, iscsi_get_options). Zero
// fields take the defaults; ImmediateData and InitialR2T are pointers so that "off"
// is expressible.
type Options struct {
	// MaxRecvDataSegmentLength is the largest data segment the target receives, which
	// it declares at login: larger segments mean fewer PDUs per I/O.
	MaxRecvDataSegmentLength uint32 `json:"max_recv_data_segment_length,omitempty"`
	MaxBurstLength           uint32 `json:"max_burst_length,omitempty"`
	FirstBurstLength         uint32 `json:"first_burst_length,omitempty"`
	ImmediateData            *bool  `json:"immediate_data,omitempty"`
	InitialR2T               *bool  `json:"initial_r2t,omitempty"`
	// MaxOutstandingR2T bounds the R2Ts in flight per task (at most maxR2TPerTask).
	MaxOutstandingR2T uint32 `json:"max_r2t_per_task,omitempty"`
	// MaxConnectionsPerSession is the most connections a session may have (MC/S).
	MaxConnectionsPerSession uint32 `json:"max_connections_per_session,omitempty"`
	// MaxSessions bounds the sessions of the target (SPDK's MaxSessions); a login
	// beyond it is refused with status 0302, out of resources.
	MaxSessions        uint32 `json:"max_sessions,omitempty"`
	DefaultTime2Wait   uint32 `json:"default_time2wait,omitempty"`
	DefaultTime2Retain uint32 `json:"default_time2retain,omitempty"`
	// NopInIntervalSec pings an initiator idle that long; NopTimeoutSec drops a
	// connection whose initiator answers no ping for that long (SPDK's 30 s and 60 s).
	NopInIntervalSec uint32 `json:"nop_in_interval,omitempty"`
	NopTimeoutSec    uint32 `json:"nop_timeout,omitempty"`
	// Limits are the connection machinery's (per portal and per host connections,
	// login timeout as the setup timeout, Data-Out timeout, awaited-data quota).
	tcpconn.Limits
}

const (
	defaultQueueDepth  = 128
	maxQueueDepth      = 1024
	maxR2TPerTask      = 8
	defaultNopInSec    = 30
	defaultNopTimeout  = 60
	defaultMaxSessions = 128
)

func (o Options) normalize() (Options, error) {
	d := proto.DefaultConfig()
	yes := true
	if o.MaxRecvDataSegmentLength == 0 {
		o.MaxRecvDataSegmentLength = d.MaxRecvDataSegmentLength
	}
	if o.MaxBurstLength == 0 {
		o.MaxBurstLength = d.MaxBurstLength
	}
	if o.FirstBurstLength == 0 {
		o.FirstBurstLength = min(d.FirstBurstLength, o.MaxBurstLength)
	}
	if o.ImmediateData == nil {
		o.ImmediateData = &yes
	}
	if o.InitialR2T == nil {
		o.InitialR2T = &yes
	}
	if o.MaxOutstandingR2T == 0 {
		o.MaxOutstandingR2T = 1
	}
	if o.MaxConnectionsPerSession == 0 {
		o.MaxConnectionsPerSession = 2
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = defaultMaxSessions
	}
	if o.DefaultTime2Wait == 0 {
		o.DefaultTime2Wait = d.DefaultTime2Wait
	}
	if o.DefaultTime2Retain == 0 {
		o.DefaultTime2Retain = d.DefaultTime2Retain
	}
	if o.NopInIntervalSec == 0 {
		o.NopInIntervalSec = defaultNopInSec
	}
	if o.NopTimeoutSec == 0 {
		o.NopTimeoutSec = defaultNopTimeout
	}
	if o.MaxOutstandingR2T > maxR2TPerTask {
		return o, fmt.Errorf("max_r2t_per_task %d above %d: %w", o.MaxOutstandingR2T, maxR2TPerTask, ErrInvalid)
	}
	l, err := o.Limits.Normalize()
	if err != nil {
		return o, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	o.Limits = l
	c := o.protoConfig("", 0)
	if err := c.Validate(); err != nil {
		return o, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	return o, nil
}

// protoConfig is what negotiation starts from for a node (alias) on a portal group.
func (o Options) protoConfig(alias string, tpgt uint16) proto.Config {
	c := proto.DefaultConfig()
	c.TargetAlias, c.TargetPortalGroupTag = alias, tpgt
	c.MaxRecvDataSegmentLength = o.MaxRecvDataSegmentLength
	c.MaxBurstLength, c.FirstBurstLength = o.MaxBurstLength, o.FirstBurstLength
	c.ImmediateData, c.InitialR2T = *o.ImmediateData, *o.InitialR2T
	c.MaxOutstandingR2T, c.MaxConnections = o.MaxOutstandingR2T, o.MaxConnectionsPerSession
	c.DefaultTime2Wait, c.DefaultTime2Retain = o.DefaultTime2Wait, o.DefaultTime2Retain
	return c
}

func (o Options) nopInterval() int64 { return int64(time.Duration(o.NopInIntervalSec) * time.Second) }
func (o Options) nopTimeout() int64  { return int64(time.Duration(o.NopTimeoutSec) * time.Second) }
