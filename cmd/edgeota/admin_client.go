package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// defaultAdmin is the admin API a gateway listens on by default.
const defaultAdmin = "http://127.0.0.1:8080"

// adminClient talks to a gateway's admin API.
type adminClient struct {
	base      string
	hc        *http.Client
	token     string // sent as a bearer token when set
	tokenFile string // where token came from, for errors
}

// newAdminClient is a client of the admin API at base (default
// defaultAdmin) sending token, when set, with hc.
func newAdminClient(base, token, tokenFile string, hc *http.Client) (*adminClient, error) {
	if base == "" {
		base = defaultAdmin
	}
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, usagef("--admin %q: want a URL such as %s", base, defaultAdmin)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Minute}
	}
	return &adminClient{base: strings.TrimSuffix(base, "/"), hc: hc, token: token, tokenFile: tokenFile}, nil
}

// do sends a request and decodes a JSON answer into out; an error answer
// becomes an error carrying the gateway's reason.
func (c *adminClient) do(req *http.Request, out any) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var unknownCA x509.UnknownAuthorityError
		if errors.As(err, &unknownCA) {
			return fmt.Errorf("admin API %s: %w (pass --admin-ca with the gateway's certificate or its CA)", c.base, err)
		}
		return fmt.Errorf("admin API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		if c.token == "" {
			return errors.New("the gateway requires a token: pass --token-file (the gateway's --admin-token-file)")
		}
		return fmt.Errorf("the gateway refused the token in --token-file %s: it is not the gateway's (--admin-token-file)", c.tokenFile)
	}
	if resp.StatusCode == http.StatusBadRequest && strings.HasPrefix(c.base, "http://") && bytes.Contains(body, []byte("HTTPS server")) {
		return fmt.Errorf("the gateway's admin API speaks HTTPS: use --admin https://%s", strings.TrimPrefix(c.base, "http://"))
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error, Reason string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			if e.Reason != "" {
				return fmt.Errorf("gateway refused (%s): %s", e.Reason, e.Error)
			}
			return fmt.Errorf("gateway refused: %s", e.Error)
		}
		return fmt.Errorf("gateway answered %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

func (c *adminClient) getJSON(path string, out any) error {
	return c.send(http.MethodGet, path, nil, out)
}

func (c *adminClient) postJSON(path string, in, out any) error {
	return c.send(http.MethodPost, path, in, out)
}

// send sends a JSON request (no body when in is nil) and decodes a JSON
// answer into out (when not nil).
func (c *adminClient) send(method, path string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.do(req, out)
}
