package nvmf

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"sluice/engine/proto/nvme"
)

// ListenAddress is a transport address (SPDK's listen_address object). The
// advertised fields, when set, replace traddr/trsvcid in discovery log entries: a
// target behind NAT or port forwarding tells hosts where to reach it.
type ListenAddress struct {
	TrType            string `json:"trtype"`
	AdrFam            string `json:"adrfam"`
	TrAddr            string `json:"traddr"`
	TrSvcID           string `json:"trsvcid"`
	AdvertisedTrAddr  string `json:"advertised_traddr,omitempty"`
	AdvertisedTrSvcID string `json:"advertised_trsvcid,omitempty"`
}

// normalize fills defaults and checks the address.
func (a ListenAddress) normalize() (ListenAddress, error) {
	if a.TrType == "" {
		a.TrType = "TCP"
	}
	if !strings.EqualFold(a.TrType, "TCP") {
		return a, fmt.Errorf("trtype %q: only TCP is served: %w", a.TrType, ErrInvalid)
	}
	a.TrType = "TCP"
	ip := net.ParseIP(a.TrAddr)
	if ip == nil {
		return a, fmt.Errorf("traddr %q is not an IP address: %w", a.TrAddr, ErrInvalid)
	}
	fam := "IPv6"
	if ip.To4() != nil {
		fam = "IPv4"
	}
	if a.AdrFam == "" {
		a.AdrFam = fam
	}
	if !strings.EqualFold(a.AdrFam, fam) {
		return a, fmt.Errorf("adrfam %q does not match traddr %s: %w", a.AdrFam, a.TrAddr, ErrInvalid)
	}
	a.AdrFam = fam
	a.TrAddr = ip.String()
	if a.TrSvcID == "" {
		a.TrSvcID = "4420"
	}
	if p, err := strconv.Atoi(a.TrSvcID); err != nil || p <= 0 || p > 65535 {
		return a, fmt.Errorf("trsvcid %q is not a TCP port: %w", a.TrSvcID, ErrInvalid)
	}
	if a.AdvertisedTrAddr != "" && net.ParseIP(a.AdvertisedTrAddr) == nil {
		return a, fmt.Errorf("advertised_traddr %q is not an IP address: %w", a.AdvertisedTrAddr, ErrInvalid)
	}
	if a.AdvertisedTrSvcID != "" {
		if p, err := strconv.Atoi(a.AdvertisedTrSvcID); err != nil || p <= 0 || p > 65535 {
			return a, fmt.Errorf("advertised_trsvcid %q is not a TCP port: %w", a.AdvertisedTrSvcID, ErrInvalid)
		}
	}
	return a, nil
}

// endpoint is the host:port the socket binds.
func (a ListenAddress) endpoint() string { return net.JoinHostPort(a.TrAddr, a.TrSvcID) }

func (a ListenAddress) sameEndpoint(b ListenAddress) bool {
	return a.TrAddr == b.TrAddr && a.TrSvcID == b.TrSvcID
}

// advertised is the address hosts are told about.
func (a ListenAddress) advertised() (traddr, trsvcid string) {
	traddr, trsvcid = a.TrAddr, a.TrSvcID
	if a.AdvertisedTrAddr != "" {
		traddr = a.AdvertisedTrAddr
	}
	if a.AdvertisedTrSvcID != "" {
		trsvcid = a.AdvertisedTrSvcID
	}
	return
}

func (a ListenAddress) adrfamCode() uint8 {
	ip := net.ParseIP(a.TrAddr)
	if t, _ := a.advertised(); t != a.TrAddr {
		ip = net.ParseIP(t)
	}
	if ip != nil && ip.To4() == nil {
		return nvme.AdrFamIPv6
	}
	return nvme.AdrFamIPv4
}
