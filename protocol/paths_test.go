package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	d := Digest{0xab, 0x01}
	tests := []struct {
		name string
		path string
		want Path
		ok   bool
	}{
		{"core", "/.well-known/core", Path{Kind: PathCoreKind}, true},
		{"image", ImagePath(d), Path{Kind: PathImage, Digest: d}, true},
		{"delta", DeltaPath(d), Path{Kind: PathDelta, Digest: d}, true},
		{"delta literal", "/d/" + d.String(), Path{Kind: PathDelta, Digest: d}, true},
		{"delta prefix only", "/d/", Path{}, false},
		{"delta short digest", "/d/abcd", Path{}, false},
		{"delta upper-case digest", "/d/" + strings.ToUpper(d.String()), Path{}, false},
		{"delta with tail", DeltaPath(d) + "/x", Path{}, false},
		{"manifest", NodePath("n-1", ResManifest), Path{Kind: PathNode, Node: "n-1", Resource: ResManifest}, true},
		{"hello", "/n/a.b_c/hello", Path{Kind: PathNode, Node: "a.b_c", Resource: ResHello}, true},
		{"health", "/n/x/health", Path{Kind: PathNode, Node: "x", Resource: ResHealth}, true},
		{"status", "/n/x/status", Path{Kind: PathNode, Node: "x", Resource: ResStatus}, true},
		{"root", "/", Path{}, false},
		{"empty", "", Path{}, false},
		{"image prefix only", "/m/", Path{}, false},
		{"short digest", "/m/abcd", Path{}, false},
		{"upper-case digest", "/m/" + strings.ToUpper(d.String()), Path{}, false},
		{"image with tail", ImagePath(d) + "/x", Path{}, false},
		{"node without resource", "/n/x", Path{}, false},
		{"node unknown resource", "/n/x/events", Path{}, false},
		{"node extra segment", "/n/x/hello/1", Path{}, false},
		{"node bad id", "/n/a b/hello", Path{}, false},
		{"node id too long", "/n/" + strings.Repeat("a", 65) + "/hello", Path{}, false},
		{"node empty id", "/n//hello", Path{}, false},
		{"other", "/x/y", Path{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePath(tt.path)
			if tt.ok != (err == nil) {
				t.Fatalf("ParsePath(%q) err = %v, want ok=%v", tt.path, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrNoResource) {
				t.Fatalf("ParsePath(%q) err = %v, want ErrNoResource", tt.path, err)
			}
			if got != tt.want {
				t.Fatalf("ParsePath(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func TestParseTopic(t *testing.T) {
	for _, prefix := range []string{"", "edgeota/v1", "site/a/edgeota"} {
		tp := Topics{Prefix: prefix}
		p := prefix
		if p == "" {
			p = DefaultTopicPrefix
		}
		tests := []struct {
			name  string
			topic string
			want  Topic
			ok    bool
		}{
			{"health", tp.Gateway("gw-1", TopicHealth), Topic{Kind: TopicHealth, Gateway: "gw-1"}, true},
			{"status", tp.Gateway("gw-1", TopicStatus), Topic{Kind: TopicStatus, Gateway: "gw-1"}, true},
			{"state", tp.Gateway("gw-1", TopicState), Topic{Kind: TopicState, Gateway: "gw-1"}, true},
			{"rollout", tp.Rollout("gw-1", "d1"), Topic{Kind: TopicRollout, Gateway: "gw-1", ID: "d1"}, true},
			{"deployment", tp.Deployment("gw-1", "d1"), Topic{Kind: TopicDeployment, Gateway: "gw-1", ID: "d1"}, true},
			{"fleet deployment", tp.FleetDeployment("d1"), Topic{Kind: TopicDeployment, ID: "d1", Fleet: true}, true},
			{"literal", p + "/gw/g/events", Topic{Kind: TopicStatus, Gateway: "g"}, true},
			{"other prefix", "other/gw/g/health", Topic{}, false},
			{"unknown leaf", p + "/gw/g/logs", Topic{}, false},
			{"rollout without id", p + "/gw/g/rollouts", Topic{}, false},
			{"health with id", p + "/gw/g/health/x", Topic{}, false},
			{"wildcard gateway", tp.Gateway("+", TopicHealth), Topic{}, false},
			{"bad deployment id", p + "/gw/g/deployments/a b", Topic{}, false},
			{"fleet without id", p + "/fleet/deployments", Topic{}, false},
			{"fleet other", p + "/fleet/rollouts/x", Topic{}, false},
			{"prefix only", p, Topic{}, false},
		}
		for _, tt := range tests {
			t.Run(p+"/"+tt.name, func(t *testing.T) {
				got, err := tp.Parse(tt.topic)
				if tt.ok != (err == nil) {
					t.Fatalf("Parse(%q) err = %v, want ok=%v", tt.topic, err, tt.ok)
				}
				if err != nil && !errors.Is(err, ErrNotATopic) {
					t.Fatalf("Parse(%q) err = %v, want ErrNotATopic", tt.topic, err)
				}
				if got != tt.want {
					t.Fatalf("Parse(%q) = %+v, want %+v", tt.topic, got, tt.want)
				}
			})
		}
	}
}

func TestTopicFilters(t *testing.T) {
	tp := Topics{}
	for _, tt := range []struct{ got, want string }{
		{tp.Gateway("+", TopicHealth), "edgeota/v1/gw/+/health"},
		{tp.GatewayAll("+"), "edgeota/v1/gw/+/#"},
		{tp.Deployment("gw", "+"), "edgeota/v1/gw/gw/deployments/+"},
		{tp.FleetDeployment("+"), "edgeota/v1/fleet/deployments/+"},
		{tp.Rollout("gw", "d"), "edgeota/v1/gw/gw/rollouts/d"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// FuzzParsePath: a path that parses is rebuilt byte for byte by the
// builders, and nothing panics.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/.well-known/core", ImagePath(Digest{1}), DeltaPath(Digest{2}), "/n/a/hello", "/n/a/manifest", "/m/", "/d/", "/n//x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		var back string
		switch p.Kind {
		case PathCoreKind:
			back = PathCore
		case PathImage:
			back = ImagePath(p.Digest)
		case PathDelta:
			back = DeltaPath(p.Digest)
		case PathNode:
			back = NodePath(p.Node, p.Resource)
		}
		if back != s {
			t.Fatalf("ParsePath(%q) = %+v, rebuilt as %q", s, p, back)
		}
	})
}

// FuzzParseTopic: a topic that parses is rebuilt byte for byte by the
// builders, and nothing panics.
func FuzzParseTopic(f *testing.F) {
	tp := Topics{}
	for _, s := range []string{tp.Gateway("g", TopicHealth), tp.Rollout("g", "d"), tp.FleetDeployment("d"), "edgeota/v1/gw/g/x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := tp.Parse(s)
		if err != nil {
			return
		}
		var back string
		switch {
		case p.Fleet:
			back = tp.FleetDeployment(p.ID)
		case p.Kind == TopicRollout:
			back = tp.Rollout(p.Gateway, p.ID)
		case p.Kind == TopicDeployment:
			back = tp.Deployment(p.Gateway, p.ID)
		default:
			back = tp.Gateway(p.Gateway, p.Kind)
		}
		if back != s {
			t.Fatalf("Parse(%q) = %+v, rebuilt as %q", s, p, back)
		}
	})
}
