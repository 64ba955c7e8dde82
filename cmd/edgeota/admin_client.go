package main

import (
	"bytes"
	"encoding/json"
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
	base string
	hc   *http.Client
}

func newAdminClient(base string) (*adminClient, error) {
	if base == "" {
		base = defaultAdmin
	}
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, usagef("--admin %q: want a URL such as %s", base, defaultAdmin)
	}
	return &adminClient{base: strings.TrimSuffix(base, "/"), hc: &http.Client{Timeout: 10 * time.Minute}}, nil
}

// do sends a request and decodes a JSON answer into out; an error answer
// becomes an error carrying the gateway's reason.
func (c *adminClient) do(req *http.Request, out any) error {
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
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
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	return c.do(req, out)
}

func (c *adminClient) postJSON(path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, out)
}
