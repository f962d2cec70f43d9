package main

// Terminal output on stderr: the logger, and on a terminal a status line
// redrawn in place for long work.

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// startLogging sets up a.log after the layering: text or JSON on stderr,
// through a termWriter when stderr is a terminal.
func (a *app) startLogging() {
	logOut := a.stderr
	if isTerminal(a.stderr) {
		a.term = &termWriter{w: a.stderr}
		logOut = a.term
	}
	a.log = newLogger(logOut, a.opts.logJSON, a.opts.verbose)
	if a.opts.configFile != "" {
		a.log.Debug("config file read", "file", a.opts.configFile)
	}
}

// newLogger builds the stderr logger: readable text with a short clock by
// default, JSON lines with --log-json.
func newLogger(w io.Writer, jsonLogs, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	if jsonLogs {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, at slog.Attr) slog.Attr {
		if len(groups) == 0 && at.Key == slog.TimeKey && at.Value.Kind() == slog.KindTime {
			return slog.String(slog.TimeKey, at.Value.Time().Format("15:04:05.000"))
		}
		return at
	}}))
}

// isTerminal reports whether f is a character device (a terminal), where
// progress lines make sense.
func isTerminal(f io.Writer) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// termWriter is stderr on a terminal: it carries the log records and one
// status line that is redrawn in place. A log record first clears the
// status line, so the two never run into each other.
type termWriter struct {
	mu    sync.Mutex
	w     io.Writer
	dirty bool // a status line is on screen
}

func (t *termWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dirty {
		io.WriteString(t.w, "\r\033[K")
		t.dirty = false
	}
	return t.w.Write(p)
}

// status (re)draws the status line.
func (t *termWriter) status(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	io.WriteString(t.w, "\r\033[K"+line)
	t.dirty = true
}

// clear removes the status line, if any.
func (t *termWriter) clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dirty {
		io.WriteString(t.w, "\r\033[K")
		t.dirty = false
	}
}

// progress shows long work on a terminal: a line that says what is being
// done and for how long, updated in place. It stays silent when stderr is
// not a terminal or logs are JSON: there it would only be noise.
type progress struct {
	term    *termWriter
	label   string
	start   time.Time
	mu      sync.Mutex
	msg     string
	stop    chan struct{}
	stopped sync.WaitGroup
}

// newProgress starts a progress display for one step of one pair.
func (a *app) newProgress(label string) *progress {
	p := &progress{label: label, start: time.Now(), stop: make(chan struct{})}
	if a.term != nil && !a.opts.logJSON {
		p.term = a.term
		p.stopped.Add(1)
		go p.tick()
	}
	return p
}

// tick redraws the line once a second after the first two seconds: short
// steps print nothing.
func (p *progress) tick() {
	defer p.stopped.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.draw()
		}
	}
}

func (p *progress) draw() {
	elapsed := time.Since(p.start)
	if elapsed < 2*time.Second {
		return
	}
	p.mu.Lock()
	msg := p.msg
	p.mu.Unlock()
	if msg == "" {
		msg = "syncing"
	}
	p.term.status(fmt.Sprintf("%s: %s (%s)", p.label, msg, elapsed.Round(time.Second)))
}

// files is the library's Config.Progress callback (import, per file).
func (p *progress) files(done, total int, file string) {
	p.mu.Lock()
	if strings.HasSuffix(file, rdfile.SnapshotExt) {
		// Joining or re-basing: done and total count the snapshot's rows.
		p.msg = fmt.Sprintf("merging snapshot %s: %d/%d rows", file, done, total)
	} else {
		p.msg = fmt.Sprintf("imported %d/%d files, last %s", done, total, file)
	}
	p.mu.Unlock()
	p.draw()
}

// callback returns the Config.Progress function, nil when off.
func (p *progress) callback() func(int, int, string) {
	if p.term == nil {
		return nil
	}
	return p.files
}

// done stops the display and clears its line.
func (p *progress) done() {
	if p.term == nil {
		return
	}
	close(p.stop)
	p.stopped.Wait()
	p.term.clear()
}
