package guest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Addresses as the guest sees them under qemu user networking. HostAddr is the
// host's loopback: a target listening on 127.0.0.1:PORT on the host is reached
// from the guest at HostAddr:PORT.
const (
	HostAddr  = "10.0.2.2"
	GuestAddr = "10.0.2.15"
)

// HostNQN and HostID are the guest's default NVMe host identity (written to
// /etc/nvme/hostnqn and /etc/nvme/hostid by init.sh, which must agree). The
// host ID is the UUID in the NQN, as nvme-cli expects; it is a valid version 4
// UUID, so it also works as a 128-bit host identifier for reservations.
const (
	HostID  = "5a1c3e00-7b2d-4c9e-8f10-2e6d4b8a9c01"
	HostNQN = "nqn.2014-08.org.nvmexpress:uuid:" + HostID
)

// InitiatorName is the guest's default iSCSI initiator name (written to
// /etc/iscsi/initiatorname.iscsi by init.sh, which must agree), under the
// project's own naming authority.
const InitiatorName = "iqn.2026-11.dev.sluice:guest"

// Image is a bootable guest: what build-image.sh built.
type Image struct {
	Kernel  string // uncompressed vmlinux (qemu boots it through its PVH note)
	Initrd  string // newc cpio
	Release string // the guest's `uname -r`
	Package string // Debian kernel package and version it came from
}

// defaultBuildTimeout bounds a build whose context has no deadline: a cold
// build downloads about 70 MB and takes well under a minute here.
const defaultBuildTimeout = 15 * time.Minute

// Build runs build-image.sh (cached: about 0.1 s when nothing changed) and
// returns the image it reports. The cache directory is SLUICE_GUEST_DIR, default
// /var/cache/sluice/guest; a cold build needs root (apt-get) and Go.
func Build(ctx context.Context) (Image, error) {
	script, err := scriptPath()
	if err != nil {
		return Image{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultBuildTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// The script starts apt-get, dd and go: on cancellation end its whole
	// process group, not only bash, or they would keep our pipes open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return Image{}, fmt.Errorf("guest: build image (%s): %w\n%s", script, err, lastLines(stderr.String(), 30))
	}
	img, err := parseManifest(stdout.String())
	if err != nil {
		return Image{}, fmt.Errorf("guest: build image: %w\n%s", err, lastLines(stderr.String(), 30))
	}
	return img, nil
}

func parseManifest(s string) (Image, error) {
	var img Image
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "kernel":
			img.Kernel = v
		case "initrd":
			img.Initrd = v
		case "release":
			img.Release = v
		case "package":
			img.Package = v
		}
	}
	if img.Kernel == "" || img.Initrd == "" {
		return Image{}, fmt.Errorf("manifest names no kernel or initrd: %q", s)
	}
	return img, nil
}

// scriptPath finds build-image.sh: beside this source file when the binary was
// built from a source tree (go test), else by walking up from the working
// directory to the sluice module root (binaries built with -trimpath).
func scriptPath() (string, error) {
	const rel = "tools/guest/build-image.sh"
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		p := filepath.Join(filepath.Dir(file), "build-image.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("guest: find %s: %w", rel, err)
	}
	for {
		if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(mod, []byte("module sluice\n")) {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("guest: find build script: %w", err)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("guest: find build script: not inside the sluice module")
		}
		dir = parent
	}
}

// lastLines returns the last n lines of s, for error messages that must stay
// readable when a script printed pages of apt output.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
