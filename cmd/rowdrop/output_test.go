package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer the progress goroutine and the test can
// share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// When stderr is not a terminal (a service's journal, a log file), long
// work logs what it is doing every few seconds, and stops when it is done.
func TestProgressLogsWhenNotATerminal(t *testing.T) {
	var buf lockedBuffer
	a := &app{stderr: &buf, opts: &options{}, progressEvery: 10 * time.Millisecond}
	a.log = newLogger(&buf, false, false)
	p := a.newProgress("notes.db")
	p.files(3, 10, "abcd/0000000003.rdc")
	for deadline := time.Now().Add(20 * time.Second); strings.Count(buf.String(), "still working") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("no progress lines logged:\n%s", buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.done()
	out := buf.String()
	for _, want := range []string{`msg="still working: imported 3/10 files, last abcd/0000000003.rdc"`, "db=notes.db", "elapsed="} {
		if !strings.Contains(out, want) {
			t.Errorf("progress log lacks %q:\n%s", want, out)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if after := buf.String(); after != out {
		t.Errorf("progress logged after done:\n%s", strings.TrimPrefix(after, out))
	}
	// JSON logs get the same records, as JSON.
	var jbuf lockedBuffer
	a = &app{stderr: &jbuf, opts: &options{logJSON: true}, progressEvery: 10 * time.Millisecond}
	a.log = newLogger(&jbuf, true, false)
	p = a.newProgress("notes.db")
	p.set("checking 1/2 abcd/0000000001.rdc")
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(jbuf.String(), `"msg":"still working: checking 1/2`); {
		if time.Now().After(deadline) {
			t.Fatalf("no JSON progress lines logged:\n%s", jbuf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.done()
}
