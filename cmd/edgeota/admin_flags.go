package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"edgeota/gateway"
	"edgeota/gateway/admin"
)

// adminServeFlags are the gateway's admin API security flags.
type adminServeFlags struct {
	tokenFile, cert, key string
}

func (a *adminServeFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&a.tokenFile, "admin-token-file", "", "file holding the admin API's bearer token, required on every admin request; created (mode 0600, a new random token) when missing")
	fl.StringVar(&a.cert, "admin-cert", "", "certificate (PEM) of the admin API: it serves HTTPS (with --admin-key)")
	fl.StringVar(&a.key, "admin-key", "", "private key (PEM) of --admin-cert")
}

// apply loads (or creates) the token file and the TLS certificate into gc.
func (a *adminServeFlags) apply(gc *gateway.Config, log *slog.Logger) error {
	if a.tokenFile != "" {
		tok, err := loadOrCreateToken(a.tokenFile, log)
		if err != nil {
			return err
		}
		gc.AdminToken = tok
	}
	if a.cert != "" || a.key != "" {
		if a.cert == "" || a.key == "" {
			return usagef("--admin-cert and --admin-key go together")
		}
		c, err := tls.LoadX509KeyPair(a.cert, a.key)
		if err != nil {
			return fmt.Errorf("--admin-cert/--admin-key: %w", err)
		}
		gc.AdminTLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{c}}
	}
	return nil
}

// loadOrCreateToken reads the admin token from path or, when the file does
// not exist, creates it (mode 0600) with a new token: 32 bytes from
// crypto/rand in hex. The token itself is never logged.
func loadOrCreateToken(path string, log *slog.Logger) (string, error) {
	tok, err := readTokenFile(path, "--admin-token-file", log)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	var b [32]byte
	rand.Read(b[:])
	tok = hex.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // created meanwhile by another process
		return readTokenFile(path, "--admin-token-file", log)
	}
	if err != nil {
		return "", fmt.Errorf("--admin-token-file: %w", err)
	}
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("--admin-token-file: %w", err)
	}
	log.Info("created the admin token file with a new token: give it to operators (--token-file) and to Prometheus", "file", path, "mode", "0600")
	return tok, nil
}

// readTokenFile reads a token file, trimmed of white space; an empty one
// is an error, one that others than its owner may read or write a
// warning. The error wraps fs.ErrNotExist when the file does not exist.
func readTokenFile(path, flag string, log *slog.Logger) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s %s is empty: write a token in it, or remove it and let the gateway create one", flag, path)
	}
	if st, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 && log != nil {
		log.Warn("the token file is readable or writable by others than its owner: chmod 600 it", "file", path,
			"mode", fmt.Sprintf("%04o", st.Mode().Perm()))
	}
	return tok, nil
}

// adminFlags are an operator command's flags to reach a gateway's admin
// API: its URL, the bearer token and the CA of an https:// URL. Every
// command using the admin API registers them with register.
type adminFlags struct {
	url, tokenFile, ca string
}

func (a *adminFlags) register(fl *pflag.FlagSet, def, usage string) {
	fl.StringVar(&a.url, "admin", def, usage)
	fl.StringVar(&a.tokenFile, "token-file", "", "file holding the admin API's bearer token (the gateway's --admin-token-file)")
	fl.StringVar(&a.ca, "admin-ca", "", "CA certificate (PEM) to trust for an https:// --admin URL (the gateway's --admin-cert, when self-signed)")
}

// token reads --token-file ("" without it).
func (a *adminFlags) token() (string, error) {
	if a.tokenFile == "" {
		return "", nil
	}
	return readTokenFile(a.tokenFile, "--token-file", nil)
}

// defaultAdmin is the admin API a gateway listens on by default.
const defaultAdmin = "http://127.0.0.1:8080"

// client is the admin API client these flags describe: --admin (default
// defaultAdmin), the token of --token-file, and --admin-ca for an
// https:// URL. Its errors go through explain.
func (a *adminFlags) client() (*admin.Client, error) {
	base := a.base()
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, usagef("--admin %q: want a URL such as %s", base, defaultAdmin)
	}
	tok, err := a.token()
	if err != nil {
		return nil, err
	}
	opts := []admin.Option{admin.WithToken(tok), admin.WithHTTPClient(&http.Client{Timeout: 10 * time.Minute})}
	if a.ca != "" {
		if !strings.HasPrefix(base, "https://") {
			return nil, usagef("--admin-ca needs an https:// --admin URL, got %q", a.url)
		}
		pem, err := os.ReadFile(a.ca)
		if err != nil {
			return nil, fmt.Errorf("--admin-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--admin-ca %s: no PEM certificate", a.ca)
		}
		opts = append(opts, admin.WithRootCAs(pool))
	}
	return admin.NewClient(base, opts...)
}

// base is --admin, or defaultAdmin without it.
func (a *adminFlags) base() string {
	if a.url == "" {
		return defaultAdmin
	}
	return strings.TrimSuffix(a.url, "/")
}

// explain adds to an admin API error the flag an operator passes about
// it: --token-file, an https:// --admin, --admin-ca.
func (a *adminFlags) explain(err error) error {
	var unknownCA x509.UnknownAuthorityError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, admin.ErrUnauthorized) && a.tokenFile == "":
		return errors.New("the gateway requires a token: pass --token-file (the gateway's --admin-token-file)")
	case errors.Is(err, admin.ErrUnauthorized):
		return fmt.Errorf("the gateway refused the token in --token-file %s: it is not the gateway's (--admin-token-file)", a.tokenFile)
	case errors.Is(err, admin.ErrNeedsHTTPS):
		return fmt.Errorf("the gateway's admin API speaks HTTPS: use --admin https://%s", strings.TrimPrefix(a.base(), "http://"))
	case errors.As(err, &unknownCA):
		return fmt.Errorf("%w (pass --admin-ca with the gateway's certificate or its CA)", err)
	}
	return err
}
