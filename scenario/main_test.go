package scenario_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/rowdrop/rowdrop"
)

// TestMain lets this test binary be its own child process. The crash tests
// re-execute it with ROWDROP_CRASH_CHILD=sync to run one `sync` cycle (the
// same code `rowdrop sync` runs) and kill it with SIGKILL at a random
// moment; the busy-app test re-executes it with ROWDROP_CRASH_CHILD=app to
// run the app (runApp). Any other run is the tests.
func TestMain(m *testing.M) {
	if os.Getenv("ROWDROP_CRASH_CHILD") == "sync" {
		batch, _ := strconv.Atoi(os.Getenv("ROWDROP_MERGE_BATCH")) // 0: adaptive
		s, err := rowdrop.Open(context.Background(), rowdrop.Config{DB: os.Getenv("ROWDROP_DB"), Folder: os.Getenv("ROWDROP_FOLDER"), State: os.Getenv("ROWDROP_STATE"), MergeBatch: batch})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if _, err := s.Sync(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		s.Close()
		os.Exit(0)
	}
	if os.Getenv("ROWDROP_CRASH_CHILD") == "import" { // Import alone (no export first)
		s, err := rowdrop.Open(context.Background(), rowdrop.Config{DB: os.Getenv("ROWDROP_DB"), Folder: os.Getenv("ROWDROP_FOLDER"), State: os.Getenv("ROWDROP_STATE")})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if _, err := s.Import(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		s.Close()
		os.Exit(0)
	}
	if os.Getenv("ROWDROP_CRASH_CHILD") == "app" {
		os.Exit(runApp())
	}
	if os.Getenv("ROWDROP_CRASH_CHILD") == "hog" {
		for x := 0; ; x++ { // a CPU hog, killed by its parent
			_ = x
		}
	}
	if os.Getenv("ROWDROP_CRASH_CHILD") == "shortapp" {
		os.Exit(runShortTimeoutApp())
	}
	os.Exit(m.Run())
}
