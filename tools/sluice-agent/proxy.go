package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"sluice/engine/replication"
)

// proxyAdmin is the proxy's admin API, which only the agent (holding the token) uses:
//
//	GET    /v1/host_key              the proxy's SSH host key
//	POST   /v1/partnerships          register a ProxyEntry; answers {"host_key": ...}
//	GET    /v1/partnerships          list the entries and their counters
//	DELETE /v1/partnerships/{name}   remove an entry: its port closes, its sessions end
func proxyAdmin(px *replication.Proxy, token string) http.Handler {
	mux := http.NewServeMux()
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !authorized(r, token) {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /v1/host_key", guard(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]string{"host_key": px.HostKey()})
	}))
	mux.HandleFunc("POST /v1/partnerships", guard(func(w http.ResponseWriter, r *http.Request) {
		var e replication.ProxyEntry
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := px.Add(e); err != nil {
			code := http.StatusUnprocessableEntity
			if errors.Is(err, replication.ErrExists) {
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
		writeJSON(w, map[string]string{"host_key": px.HostKey()})
	}))
	mux.HandleFunc("GET /v1/partnerships", guard(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, px.List())
	}))
	mux.HandleFunc("DELETE /v1/partnerships/{name}", guard(func(w http.ResponseWriter, r *http.Request) {
		if err := px.Remove(r.PathValue("name")); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		writeJSON(w, map[string]bool{"ok": true})
	}))
	return mux
}
