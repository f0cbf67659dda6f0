package bench

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/cpuid/v2"
	"golang.org/x/sys/unix"
)

// Machine is what every report states about where it was made.
type Machine struct {
	Date        time.Time `json:"date"`
	CPUModel    string    `json:"cpu_model"`
	CPUVendor   string    `json:"cpu_vendor"`
	CPUFamily   int       `json:"cpu_family"`
	CPUModelNum int       `json:"cpu_model_number"`
	CPUMHz      int64     `json:"cpu_mhz,omitempty"`
	CPUFlags    []string  `json:"cpu_flags"`
	LogicalCPUs int       `json:"logical_cpus"`
	Physical    int       `json:"physical_cores"`
	Online      int       `json:"online_cpus"` // what this process may use
	Kernel      string    `json:"kernel"`
	Hugepages   string    `json:"hugepages"`
	GoVersion   string    `json:"go_version"`
	Commit      string    `json:"commit"`
	LoadAvg     string    `json:"loadavg_at_start"`
	Hostname    string    `json:"hostname"`
}

// Facts gathers the machine facts.
func Facts() Machine {
	m := Machine{
		Date:        time.Now().UTC(),
		CPUModel:    cpuid.CPU.BrandName,
		CPUVendor:   cpuid.CPU.VendorString,
		CPUFamily:   cpuid.CPU.Family,
		CPUModelNum: cpuid.CPU.Model,
		CPUMHz:      cpuid.CPU.Hz / 1e6,
		CPUFlags:    cpuid.CPU.FeatureSet(),
		LogicalCPUs: cpuid.CPU.LogicalCores,
		Physical:    cpuid.CPU.PhysicalCores,
		Online:      runtime.NumCPU(),
		GoVersion:   runtime.Version(),
		Commit:      commit(),
		Hugepages:   hugepages(),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + " " +
			unix.ByteSliceToString(u.Machine[:])
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	m.Hostname, _ = os.Hostname()
	return m
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

func hugepages() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	var parts []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, k := range []string{"HugePages_Total:", "HugePages_Free:", "Hugepagesize:"} {
			if strings.HasPrefix(l, k) {
				parts = append(parts, strings.Join(strings.Fields(l), " "))
			}
		}
	}
	return strings.Join(parts, ", ")
}
