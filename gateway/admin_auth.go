package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// The admin API's security (docs/operations.md, "Admin API security"):
//
//   - With Config.AdminToken set, every request, /healthz and /metrics
//     included, must carry "Authorization: Bearer <token>"; anything else
//     is answered 401 with WWW-Authenticate: Bearer and counted in
//     edgeota_admin_refused_total. /healthz is not left open: a load
//     balancer or Prometheus sends the token as well (Prometheus'
//     authorization.credentials_file).
//   - Without a token the admin API may listen on loopback only
//     (127.0.0.0/8, ::1) or on a listener that is no IP socket (a Unix
//     socket, an in-memory listener): New refuses any other address.
//   - With Config.AdminTLS set, the admin API speaks HTTPS.

// ErrAdminNoToken is returned by New when the admin API would listen
// beyond loopback without Config.AdminToken.
var ErrAdminNoToken = errors.New("the admin API listens beyond loopback without a token")

// ErrAdminTokenShort is returned by New for an admin token shorter than 16
// characters.
var ErrAdminTokenShort = errors.New("admin token too short")

// minAdminToken is the shortest admin token New accepts.
const minAdminToken = 16

// checkAdminSecurity validates the admin token and TLS settings of cfg
// and, when it can tell from the address alone, refuses an admin API
// beyond loopback without a token. It clones cfg.AdminTLS so New never
// changes the caller's tls.Config.
func checkAdminSecurity(cfg *Config) error {
	if err := checkAdminToken(cfg.AdminToken); err != nil {
		return err
	}
	if cfg.AdminTLS != nil {
		tc := cfg.AdminTLS.Clone()
		if len(tc.Certificates) == 0 && tc.GetCertificate == nil && tc.GetConfigForClient == nil {
			return errors.New("gateway: AdminTLS has no certificate")
		}
		if tc.MinVersion == 0 {
			tc.MinVersion = tls.VersionTLS12
		}
		cfg.AdminTLS = tc
	}
	if cfg.AdminToken != "" {
		return nil
	}
	if cfg.AdminListener != nil {
		return checkAdminAddr(cfg.AdminListener.Addr())
	}
	if cfg.AdminAddr == "-" {
		return nil
	}
	host, _, err := net.SplitHostPort(cfg.AdminAddr)
	if err != nil {
		return nil // net.Listen says what is wrong with it
	}
	if host == "" {
		return adminExposedErr(cfg.AdminAddr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !ip.Unmap().IsLoopback() {
			return adminExposedErr(cfg.AdminAddr)
		}
		return nil
	}
	// A host name: net.Listen binds one of its addresses, so every one
	// must be loopback.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("gateway: admin address %s: %w", cfg.AdminAddr, err)
	}
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			return adminExposedErr(cfg.AdminAddr)
		}
	}
	return nil
}

// checkAdminToken refuses a token shorter than minAdminToken or with
// characters other than printable ASCII; "" (no token) passes.
func checkAdminToken(t string) error {
	if t == "" {
		return nil
	}
	if len(t) < minAdminToken {
		return fmt.Errorf("gateway: %w (%d characters, want at least %d)", ErrAdminTokenShort, len(t), minAdminToken)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return errors.New("gateway: the admin token must be printable ASCII without spaces")
		}
	}
	return nil
}

// SetAdminToken replaces the admin API's bearer token while the gateway
// runs (an operator's reload after rotating the token file): requests
// from then on need the new token, and the old one is refused. It
// refuses what [New] would refuse: a short token ([ErrAdminTokenShort]),
// or no token for an admin API beyond loopback ([ErrAdminNoToken]). A
// gateway without an admin API has no token to set.
func (g *Gateway) SetAdminToken(token string) error {
	if g.admin == nil {
		return errors.New("gateway: the admin API is off")
	}
	if err := checkAdminToken(token); err != nil {
		return err
	}
	if token == "" {
		if err := checkAdminAddr(g.admin.Addr()); err != nil {
			return err
		}
	}
	g.adminToken.Store(&token)
	g.log.Info("admin API token replaced", "token_required", token != "")
	return nil
}

// logAdminSecurity says how the admin API is protected, and warns when a
// token would cross the network in clear.
func (g *Gateway) logAdminSecurity() {
	scheme := "http"
	if g.cfg.AdminTLS != nil {
		scheme = "https"
	}
	g.log.Info("admin API", "addr", g.admin.Addr().String(), "scheme", scheme, "token_required", g.cfg.AdminToken != "")
	if g.cfg.AdminToken != "" && g.cfg.AdminTLS == nil && checkAdminAddr(g.admin.Addr()) != nil {
		g.log.Warn("admin API beyond loopback over plain HTTP: its token crosses the network in clear; give the admin API a TLS certificate")
	}
}

// checkAdminAddr refuses an admin listener bound beyond loopback when no
// token is configured; addresses that are no IP socket are local.
func checkAdminAddr(a net.Addr) error {
	if a == nil {
		return nil
	}
	switch a.Network() {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return adminExposedErr(a.String())
	}
	if !ap.Addr().Unmap().IsLoopback() {
		return adminExposedErr(a.String())
	}
	return nil
}

func adminExposedErr(addr string) error {
	return fmt.Errorf("gateway: %w (%s)", ErrAdminNoToken, addr)
}
