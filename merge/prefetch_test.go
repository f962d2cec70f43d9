package merge

import (
	"errors"
	"io"
	"testing"

	"rowdrop/internal/changeset"
)

// listReader yields n changes numbered by their Int key, then err.
type listReader struct {
	i, n  int
	err   error
	calls int
}

func (l *listReader) Next() (*changeset.Change, error) {
	l.calls++
	if l.i >= l.n {
		return nil, l.err
	}
	l.i++
	return &changeset.Change{Old: []changeset.Value{changeset.Int(int64(l.i))}}, nil
}

// The prefetcher hands over every change in order, then the reader's
// error (io.EOF or another) at the same place, and keeps returning it.
func TestPrefetchKeepsOrderAndError(t *testing.T) {
	bad := errors.New("truncated")
	for _, n := range []int{0, 1, prefetchChunk - 1, prefetchChunk, 3*prefetchChunk + 7} {
		for _, end := range []error{io.EOF, bad} {
			p := prefetch(&listReader{n: n, err: end})
			for i := 1; i <= n; i++ {
				c, err := p.Next()
				if err != nil || c.Old[0].Int != int64(i) {
					t.Fatalf("n=%d: change %d: %v %v", n, i, c, err)
				}
			}
			for k := 0; k < 2; k++ {
				if c, err := p.Next(); c != nil || err != end {
					t.Fatalf("n=%d: after the last change: %v %v, want %v", n, c, err, end)
				}
			}
			p.close()
		}
	}
}

// Closing before the end stops the reading goroutine: it reads at most a
// few chunks ahead and never again after close returns.
func TestPrefetchCloseStopsReading(t *testing.T) {
	l := &listReader{n: 1 << 30, err: io.EOF}
	p := prefetch(l)
	if _, err := p.Next(); err != nil {
		t.Fatal(err)
	}
	p.close()
	calls := l.calls
	if calls > 6*prefetchChunk+1 {
		t.Fatalf("read %d changes ahead", calls)
	}
	if l.calls != calls {
		t.Fatal("still reading after close")
	}
}
