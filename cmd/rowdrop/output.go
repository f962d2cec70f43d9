package main

// Output on stderr: the logger, and progress of long work (on a terminal
// a status line redrawn in place, elsewhere a log record every few seconds).

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

// progressLogEvery is how often long work logs a progress line when stderr
// is not a terminal (systemd, a log file): often enough that a service's
// log shows it alive, rarely enough not to flood it.
const progressLogEvery = 5 * time.Second

// progress shows long work. On a terminal: a line that says what is being
// done and for how long, updated in place. Elsewhere (stderr a file or a
// journal, or logs as JSON): a log record every progressLogEvery while the
// step lasts. Steps shorter than that print nothing.
type progress struct {
	term    *termWriter  // on a terminal
	log     *slog.Logger // otherwise
	every   time.Duration
	label   string
	start   time.Time
	mu      sync.Mutex
	msg     string
	stop    chan struct{}
	stopped sync.WaitGroup
}

// newProgress starts a progress display for one step of one pair.
func (a *app) newProgress(label string) *progress {
	p := &progress{label: label, start: time.Now(), stop: make(chan struct{}), every: time.Second}
	if a.term != nil && !a.opts.logJSON {
		p.term = a.term
	} else {
		p.log = a.log.With("db", label)
		p.every = progressLogEvery
		if a.progressEvery > 0 {
			p.every = a.progressEvery
		}
	}
	p.stopped.Add(1)
	go p.tick()
	return p
}

// tick redraws the line (or logs a record) every p.every.
func (p *progress) tick() {
	defer p.stopped.Done()
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if p.term != nil {
				p.draw()
			} else {
				p.logLine()
			}
		}
	}
}

// message is what the step is doing now.
func (p *progress) message() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.msg == "" {
		return "syncing"
	}
	return p.msg
}

func (p *progress) draw() {
	elapsed := time.Since(p.start)
	if elapsed < 2*time.Second {
		return
	}
	p.term.status(fmt.Sprintf("%s: %s (%s)", p.label, p.message(), elapsed.Round(time.Second)))
}

func (p *progress) logLine() {
	p.log.Info("still working: "+p.message(), "elapsed", time.Since(p.start).Round(time.Second).String())
}

// files is the library's Config.Progress callback (import, per file).
func (p *progress) files(done, total int, file string) {
	if strings.HasSuffix(file, rdfile.SnapshotExt) {
		// Joining or re-basing: done and total count the snapshot's rows.
		p.set(fmt.Sprintf("merging snapshot %s: %d/%d rows", file, done, total))
		return
	}
	p.set(fmt.Sprintf("imported %d/%d files, last %s", done, total, file))
}

// set says what the step is doing now.
func (p *progress) set(msg string) {
	p.mu.Lock()
	p.msg = msg
	p.mu.Unlock()
	if p.term != nil {
		p.draw()
	}
}

// callback returns the Config.Progress function.
func (p *progress) callback() func(int, int, string) { return p.files }

// done stops the display and clears its line.
func (p *progress) done() {
	close(p.stop)
	p.stopped.Wait()
	if p.term != nil {
		p.term.clear()
	}
}
