package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// Workload is one I/O pattern of the matrix.
type Workload struct {
	Name      string `json:"name"`
	BlockSize int    `json:"block_size"` // bytes per I/O
	ReadPct   int    `json:"read_pct"`   // 100: reads only, 0: writes only
	Seq       bool   `json:"sequential"`
}

// Workloads is the matrix's set, in report order: the four that storage buyers ask
// about first (4 KiB random read, write and a 70/30 mix) and streaming in 128 KiB.
var Workloads = []Workload{
	{Name: "randread-4k", BlockSize: 4096, ReadPct: 100},
	{Name: "randwrite-4k", BlockSize: 4096, ReadPct: 0},
	{Name: "randrw70-4k", BlockSize: 4096, ReadPct: 70},
	{Name: "seqread-128k", BlockSize: 128 << 10, ReadPct: 100, Seq: true},
	{Name: "seqwrite-128k", BlockSize: 128 << 10, ReadPct: 0, Seq: true},
}

// WorkloadByName finds one of Workloads.
func WorkloadByName(name string) (Workload, error) {
	for _, w := range Workloads {
		if w.Name == name {
			return w, nil
		}
	}
	return Workload{}, fmt.Errorf("unknown workload %q (have %s)", name, workloadNames())
}

func workloadNames() string {
	var n []string
	for _, w := range Workloads {
		n = append(n, w.Name)
	}
	return strings.Join(n, ", ")
}

// QDMax stands for the target's largest queue depth in a QD list; each target resolves
// it (sluice and SPDK: MQES, tgt: its session queue depth).
const QDMax = 0

// Point is one measured configuration: QD is per connection.
type Point struct {
	Workload Workload `json:"workload"`
	QD       int      `json:"qd"`
	QDMax    bool     `json:"qd_is_max,omitempty"` // QD was resolved from "max"
	Conns    int      `json:"conns"`
}

// Key names the point in tables and file names.
func (p Point) Key() string {
	return fmt.Sprintf("%s/qd%s/c%d", p.Workload.Name, p.QDLabel(), p.Conns)
}

// QDLabel is the QD as the matrix asked for it: "max" stays "max".
func (p Point) QDLabel() string {
	if p.QDMax {
		return "max"
	}
	return strconv.Itoa(p.QD)
}

// ParseQDs reads "1,8,32,max".
func ParseQDs(s string) ([]int, error) {
	var qds []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "max" {
			qds = append(qds, QDMax)
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 4095 {
			return nil, fmt.Errorf("queue depth %q: want 1..4095 or max", f)
		}
		qds = append(qds, n)
	}
	return qds, nil
}

// ParseInts reads "1,4".
func ParseInts(s string) ([]int, error) {
	var v []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want a positive integer", f)
		}
		v = append(v, n)
	}
	return v, nil
}

// ParseWorkloads reads "randread-4k,seqwrite-128k" or "all".
func ParseWorkloads(s string) ([]Workload, error) {
	if s == "all" {
		return Workloads, nil
	}
	var ws []Workload
	for _, f := range strings.Split(s, ",") {
		w, err := WorkloadByName(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}
