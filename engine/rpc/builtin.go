package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// VersionInfo is the result of sluice_get_version, shaped like SPDK's spdk_get_version
// ({"version": "SPDK v24.01", "fields": {...}}) so that scripts written for SPDK adapt
// easily.
type VersionInfo struct {
	Version string         `json:"version"`
	Fields  *VersionFields `json:"fields,omitempty"`
	Go      string         `json:"go"`
	Commit  string         `json:"commit,omitempty"`
}

// VersionFields is the parsed form of a "vMAJOR.MINOR.PATCH-suffix" version.
type VersionFields struct {
	Major  int    `json:"major"`
	Minor  int    `json:"minor"`
	Patch  int    `json:"patch"`
	Suffix string `json:"suffix"`
}

type saveConfigParams struct {
	// Path, when set, makes the server write the config to this file atomically (temp
	// file, fsync, rename) with mode 0600, and answer true. It must be absolute: the
	// daemon's working directory means nothing to the client.
	Path string `json:"path,omitempty"`
}

func (p *saveConfigParams) Validate() error {
	if p.Path != "" && !filepath.IsAbs(p.Path) {
		return fmt.Errorf("path %q is not absolute", p.Path)
	}
	return nil
}

func registerBuiltins(r *Registry) {
	Handle(r, "rpc_get_methods", func(context.Context, struct{}) ([]string, error) {
		return r.Methods(), nil
	})
	Handle(r, "sluice_get_version", func(context.Context, struct{}) (VersionInfo, error) {
		return r.versionInfo(), nil
	})
	Handle(r, "save_config", func(_ context.Context, p saveConfigParams) (any, error) {
		cfg, err := r.SaveConfig()
		if err != nil {
			return nil, err
		}
		if p.Path == "" {
			return cfg, nil
		}
		b, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("save_config: encode: %w", err)
		}
		if err := r.writeFile(p.Path, append(b, '\n')); err != nil {
			return nil, fmt.Errorf("save_config: %w", err)
		}
		return true, nil
	})
}

func (r *Registry) versionInfo() VersionInfo {
	v := VersionInfo{Version: "sluice " + r.version, Go: runtime.Version()}
	if r.version == "" {
		v.Version = "sluice (devel)"
	}
	v.Fields = parseVersion(r.version)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	return v
}

// parseVersion parses "v1.2.3-suffix" (the "v" and the patch are optional); nil if the
// version has another form.
func parseVersion(s string) *VersionFields {
	s = strings.TrimPrefix(s, "v")
	core, suffix := s, ""
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		core, suffix = s[:i], s[i:]
	}
	parts := strings.Split(core, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return nil
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return nil
		}
		n[i] = x
	}
	return &VersionFields{Major: n[0], Minor: n[1], Patch: n[2], Suffix: suffix}
}
