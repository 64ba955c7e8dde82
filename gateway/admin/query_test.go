package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"edgeota/gateway/admin"
)

// TestParseNodeQuery: every parameter of GET /v1/nodes is read, and each
// value the gateway cannot read is refused with ErrBadQuery and a message
// naming the parameter.
func TestParseNodeQuery(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    admin.NodeQuery
		wantErr string // "" for success
	}{
		{"empty", "", admin.NodeQuery{}, ""},
		{"every parameter", "label=site=north&label=hw=rev2&cohort=hw:rev2+AND+NOT+site:lab&model=1.4.0&state=failed&after=n-9&limit=1000",
			admin.NodeQuery{Labels: map[string]string{"site": "north", "hw": "rev2"}, Cohort: "hw:rev2 AND NOT site:lab", Model: "1.4.0",
				State: "failed", After: "n-9", Limit: 1000}, ""},
		{"label value with =", "label=k=a=b", admin.NodeQuery{Labels: map[string]string{"k": "a=b"}}, ""},
		{"label empty value", "label=k=", admin.NodeQuery{Labels: map[string]string{"k": ""}}, ""},
		{"idle", "state=idle", admin.NodeQuery{State: "idle"}, ""},
		{"limit 0 is the default", "limit=0", admin.NodeQuery{}, ""},
		{"label without =", "label=site", admin.NodeQuery{}, `label "site": want KEY=VALUE`},
		{"label without key", "label==x", admin.NodeQuery{}, `label "=x": want KEY=VALUE`},
		{"label key twice", "label=a=1&label=a=2", admin.NodeQuery{}, `label "a" given twice`},
		{"cohort syntax", "cohort=hw:rev2+AND", admin.NodeQuery{}, "cohort: "},
		{"model empty", "model=", admin.NodeQuery{}, `model "": want a version or 8 to 64 hex digits`},
		{"model padded", "model=+1.4.0", admin.NodeQuery{}, `model " 1.4.0"`},
		{"unknown state", "state=downloadin", admin.NodeQuery{}, `state "downloadin": want one of idle, downloading,`},
		{"rollout state", "state=succeeded", admin.NodeQuery{}, `state "succeeded"`},
		{"limit over max", "limit=1001", admin.NodeQuery{}, `limit "1001": want a page size from 1 to 1000`},
		{"limit negative", "limit=-1", admin.NodeQuery{}, `limit "-1"`},
		{"limit not a number", "limit=ten", admin.NodeQuery{}, `limit "ten"`},
		{"wave is a rollout parameter", "wave=1", admin.NodeQuery{}, `unknown parameter "wave"`},
		{"state twice", "state=idle&state=failed", admin.NodeQuery{}, `parameter "state" given 2 times`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := admin.ParseNodeQuery(v)
			checkParse(t, got, tt.want, err, tt.wantErr)
			if err == nil {
				// What Values writes, ParseNodeQuery reads back.
				back, err := admin.ParseNodeQuery(got.Values())
				if err != nil || !reflect.DeepEqual(back, got) {
					t.Errorf("round trip %q: %+v, %v", got.Values().Encode(), back, err)
				}
			}
		})
	}
}

// TestParseRolloutNodeQuery: the parameters of GET
// /v1/rollouts/{id}/nodes, and the values refused.
func TestParseRolloutNodeQuery(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    admin.RolloutNodeQuery
		wantErr string
	}{
		{"empty", "", admin.RolloutNodeQuery{}, ""},
		{"every parameter", "state=timed-out&wave=3&after=n-1&limit=7", admin.RolloutNodeQuery{State: admin.NodeTimedOut, Wave: 3, After: "n-1", Limit: 7}, ""},
		{"wave 0 is every wave", "wave=0", admin.RolloutNodeQuery{}, ""},
		{"ineligible", "state=ineligible", admin.RolloutNodeQuery{State: admin.NodeIneligible}, ""},
		{"unknown state", "state=downloading", admin.RolloutNodeQuery{}, `state "downloading": want one of waiting, assigned,`},
		{"empty state", "state=", admin.RolloutNodeQuery{}, `state ""`},
		{"negative wave", "wave=-1", admin.RolloutNodeQuery{}, `wave "-1": want a wave number from 1`},
		{"wave not a number", "wave=two", admin.RolloutNodeQuery{}, `wave "two"`},
		{"limit over max", "limit=5000", admin.RolloutNodeQuery{}, `limit "5000"`},
		{"limit negative", "limit=-5", admin.RolloutNodeQuery{}, `limit "-5"`},
		{"label is a registry parameter", "label=a=b", admin.RolloutNodeQuery{}, `unknown parameter "label"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := admin.ParseRolloutNodeQuery(v)
			checkParse(t, got, tt.want, err, tt.wantErr)
			if err == nil {
				back, err := admin.ParseRolloutNodeQuery(got.Values())
				if err != nil || back != got {
					t.Errorf("round trip %q: %+v, %v", got.Values().Encode(), back, err)
				}
			}
		})
	}
}

func checkParse(t *testing.T, got, want any, err error, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
		return
	}
	if !errors.Is(err, admin.ErrBadQuery) || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("error %v, want ErrBadQuery saying %q", err, wantErr)
	}
}

// pagingServer serves GET /v1/nodes and GET /v1/rollouts/r1/nodes over
// ids, filtering nothing: each page holds the limit's count of ids after
// the query's after. bad, when set, rewrites a page's next.
func pagingServer(t *testing.T, ids []string, bad func(next string) string) (*admin.Client, *[]string) {
	t.Helper()
	var requests []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests = append(requests, r.URL.RequestURI())
		var after string
		var limit int
		var err error
		switch r.URL.Path {
		case admin.PathNodes:
			var q admin.NodeQuery
			q, err = admin.ParseNodeQuery(r.URL.Query())
			after, limit = q.After, q.Limit
		case admin.RolloutPath("r1") + "/nodes":
			var q admin.RolloutNodeQuery
			q, err = admin.ParseRolloutNodeQuery(r.URL.Query())
			after, limit = q.After, q.Limit
		default:
			http.NotFound(w, r)
			return
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(admin.ErrorBody{Error: err.Error(), Reason: "query"})
			return
		}
		i, _ := slices.BinarySearch(ids, after)
		if i < len(ids) && ids[i] == after {
			i++
		}
		page := ids[i:min(len(ids), i+admin.PageLimit(limit))]
		next := ""
		if i+len(page) < len(ids) {
			next = page[len(page)-1]
		}
		if bad != nil {
			next = bad(next)
		}
		nodes := make([]admin.Node, len(page))
		for j, id := range page {
			nodes[j] = admin.Node{ID: id}
		}
		json.NewEncoder(w).Encode(admin.NodePage{Nodes: nodes, Next: next, Total: len(ids)})
	}))
	t.Cleanup(srv.Close)
	c, err := admin.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c, &requests
}

// TestClientWalks: AllNodes and AllRolloutNodes yield every node of every
// page once, in order, whatever the page size, with one request per page;
// a failed request ends the walk with its error, and so does a page whose
// next would loop.
func TestClientWalks(t *testing.T) {
	var ids []string
	for i := range 23 {
		ids = append(ids, fmt.Sprintf("n-%02d", i))
	}
	for _, limit := range []int{1, 5, 23, 100} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			c, requests := pagingServer(t, ids, nil)
			var got []string
			for n, err := range c.AllNodes(context.Background(), admin.NodeQuery{Limit: limit, State: "failed"}) {
				if err != nil || len(got) == len(ids) {
					t.Fatalf("after %d nodes: %v, %s", len(got), err, n.ID)
				}
				got = append(got, n.ID)
			}
			var rgot []string
			for n, err := range c.AllRolloutNodes(context.Background(), "r1", admin.RolloutNodeQuery{Limit: limit}) {
				if err != nil || len(rgot) == len(ids) {
					t.Fatalf("after %d nodes: %v, %s", len(rgot), err, n.ID)
				}
				rgot = append(rgot, n.ID)
			}
			if !slices.Equal(got, ids) || !slices.Equal(rgot, ids) {
				t.Fatalf("AllNodes walked %v\nAllRolloutNodes walked %v\nwant %v", got, rgot, ids)
			}
			pages := (len(ids) + limit - 1) / limit
			if len(*requests) != 2*pages || !strings.Contains((*requests)[0], "state=failed") {
				t.Fatalf("%d requests %v, want %d pages each, the filter kept", len(*requests), *requests, pages)
			}
		})
	}
	t.Run("from after", func(t *testing.T) {
		c, _ := pagingServer(t, ids, nil)
		var got []string
		for n, err := range c.AllNodes(context.Background(), admin.NodeQuery{After: "n-19", Limit: 2}) {
			if err != nil || len(got) == len(ids) {
				t.Fatalf("after %d nodes: %v", len(got), err)
			}
			got = append(got, n.ID)
		}
		if !slices.Equal(got, ids[20:]) {
			t.Fatalf("walked %v, want %v", got, ids[20:])
		}
	})
	t.Run("stop early", func(t *testing.T) {
		c, requests := pagingServer(t, ids, nil)
		yields := 0
		for n := range c.AllNodes(context.Background(), admin.NodeQuery{Limit: 5}) {
			if yields++; n.ID == "n-06" || yields > len(ids) {
				break
			}
		}
		if len(*requests) != 2 {
			t.Fatalf("%d requests after stopping on the second page", len(*requests))
		}
	})
	t.Run("bad query", func(t *testing.T) {
		c, _ := pagingServer(t, ids, nil)
		var errs []error
		for _, err := range c.AllRolloutNodes(context.Background(), "r1", admin.RolloutNodeQuery{State: "nope"}) {
			errs = append(errs, err)
		}
		if len(errs) != 1 || !errors.Is(errs[0], admin.ErrBadRequest) || !strings.Contains(errs[0].Error(), `state "nope"`) {
			t.Fatalf("errors %v, want one ErrBadRequest naming the state", errs)
		}
	})
	t.Run("unknown rollout", func(t *testing.T) {
		c, _ := pagingServer(t, ids, nil)
		for _, err := range c.AllRolloutNodes(context.Background(), "r2", admin.RolloutNodeQuery{}) {
			if !errors.Is(err, admin.ErrNotFound) {
				t.Fatalf("%v, want ErrNotFound", err)
			}
		}
	})
	t.Run("next that loops", func(t *testing.T) {
		c, requests := pagingServer(t, ids, func(next string) string {
			if next != "" {
				return "n-00"
			}
			return next
		})
		var errs []error
		yields := 0
		for _, err := range c.AllNodes(context.Background(), admin.NodeQuery{Limit: 5}) {
			if yields++; yields > len(ids) {
				t.Fatal("the walk loops")
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "not after it") || len(*requests) != 2 {
			t.Fatalf("errors %v after %d requests, want one error after the second page", errs, len(*requests))
		}
	})
}
