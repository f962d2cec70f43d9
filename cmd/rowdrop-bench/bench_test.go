package main

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var seedFlag = flag.Int64("seed", 0, "seed for the quick benchmark run (0: time-based)")

// TestMain lets the test binary play the benchmark's child processes (the
// import whose memory P5 measures, the app writer of P6): the harness
// re-executes its own binary, which under `go test` is this one.
func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// TestQuick runs the quick mode, as CI does, and checks that every figure
// was produced with plausible numbers. It asserts nothing about speed.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quick benchmark (~20 s); skipped with -short")
	}
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_007
	}
	t.Logf("seed %d (rerun with: go test ./cmd/rowdrop-bench -run TestQuick -seed %d)", seed, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Quick: true, Seed: seed, Dir: t.TempDir(), Reps: 5})
	if rep != nil {
		t.Log(rep.Markdown())
	}
	if err != nil {
		t.Fatal(err)
	}
	if m := rep.Missing(); len(m) > 0 {
		t.Fatalf("figures not produced: %s", strings.Join(m, ", "))
	}
	// Each figure carries both sides of its comparison.
	want := map[string][]string{
		"P1 export":         {"p50_s", "full_diff_s", "ratio"},
		"P1 initial export": {"initial_s"},
		"P2 merge":          {"rowdrop_rows_s", "raw_rows_s", "ratio"},
		"P3 bytes":          {"published", "zstd_changeset"},
		"P3 file-level":     {"file_level_bytes", "rowdrop_bytes"},
		"P5 memory":         {"peak_rss_bytes", "raw_bytes"},
		"P6 lock":           {"max_lock_ms", "app_commits"},
		"P6 under load":     {"max_lock_ms", "app_commits", "hogs"},
		"P7 memory":         {"value_bytes", "export_rss_bytes", "import_rss_bytes", "conflict_rss_bytes", "ratio"},
		"J1 join":           {"join_s", "backup_s", "replay_s", "rowbyrow_s"},
		"J2 restore":        {"restore_s", "backup_s"},
		"D3 first sync":     {"first_s", "backup_s", "published_bytes", "state_bytes"},
	}
	for prefix, keys := range want {
		found := false
		for _, f := range rep.Figures {
			if !strings.HasPrefix(f.ID, prefix) {
				continue
			}
			found = true
			for _, k := range keys {
				if v, ok := f.Values[k]; !ok || !(v > 0) {
					t.Errorf("%s: value %s = %v, want > 0", f.ID, k, v)
				}
			}
			if f.Measured == "" || f.Target == "" || f.Met == "" || f.Ratio == "" {
				t.Errorf("%s: incomplete row %+v", f.ID, f)
			}
		}
		if !found {
			t.Errorf("no %s figure", prefix)
		}
	}
	md := rep.Markdown()
	if !strings.Contains(md, "| figure | measured | ratio | target | met? |") {
		t.Errorf("table header missing from:\n%s", md)
	}
}
