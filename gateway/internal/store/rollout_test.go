package store

import (
	"bytes"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestCommitRollouts: one commit puts and deletes a rollout's records and
// writes its assignments; a commit with a malformed assignment writes
// nothing.
func TestCommitRollouts(t *testing.T) {
	db, _ := openTest(t)
	signed := testKeys(t, 1).sign(t, manifestFor([]byte("image"), 3))
	b := RolloutBatch{
		Rollouts: []RolloutWrite{{ID: "dep", Records: map[string][]byte{"s": []byte("summary"), "n/a": []byte("A"), "n/b": []byte("B")}}},
		Assign:   []Assignment{{Nodes: []string{"a", "b"}, Signed: signed}},
	}
	if err := db.CommitRollouts(b); err != nil {
		t.Fatal(err)
	}
	if err := db.CommitRollouts(RolloutBatch{Rollouts: []RolloutWrite{{ID: "dep", Records: map[string][]byte{"n/a": nil, "n/b": []byte("B2")}}}}); err != nil {
		t.Fatal(err)
	}
	bad := RolloutBatch{Rollouts: []RolloutWrite{{ID: "dep", Records: map[string][]byte{"n/c": []byte("C")}}},
		Assign: []Assignment{{Nodes: []string{"c"}, Signed: []byte("not a manifest")}}}
	if err := db.CommitRollouts(bad); err == nil {
		t.Fatal("a malformed assignment was committed")
	}
	rs, err := db.Rollouts()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].ID != "dep" || rs[0].Legacy != nil || len(rs[0].Records) != 2 ||
		string(rs[0].Records["s"]) != "summary" || string(rs[0].Records["n/b"]) != "B2" {
		t.Fatalf("rollouts: %+v", rs)
	}
	for _, n := range []string{"a", "b"} {
		if a, err := db.Assignment(n); err != nil || !bytes.Equal(a, signed) {
			t.Fatalf("%s assigned %q, %v", n, a, err)
		}
	}
	if a, _ := db.Assignment("c"); a != nil {
		t.Fatal("the refused commit assigned c")
	}
}

// TestMigrateRolloutsToBuckets: a schema 1 database keeps a rollout as the
// value rollouts/<id>; Open moves it to rollouts/<id>/legacy, where the
// rollout engine finds it.
func TestMigrateRolloutsToBuckets(t *testing.T) {
	db, path := openTest(t)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		all, err := tx.CreateBucketIfNotExists(bucketRollouts)
		if err != nil {
			return err
		}
		return all.Put([]byte("dep"), []byte(`{"id":"dep"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	setVersion(t, path, 1)
	db = openPath(t, path)
	rs, err := db.Rollouts()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].ID != "dep" || string(rs[0].Legacy) != `{"id":"dep"}` || len(rs[0].Records) != 0 {
		t.Fatalf("after the migration: %+v", rs)
	}
	if err := db.CommitRollouts(RolloutBatch{Rollouts: []RolloutWrite{{ID: "dep", Records: map[string][]byte{LegacyRolloutKey: nil, "s": []byte("x")}}}}); err != nil {
		t.Fatal(err)
	}
	if rs, _ := db.Rollouts(); rs[0].Legacy != nil || string(rs[0].Records["s"]) != "x" {
		t.Fatalf("after rewriting: %+v", rs)
	}
}
