package merge

import "rowdrop/internal/changeset"

// prefetchChunk is how many changes the reading goroutine hands over at a
// time: enough to make the channel's cost negligible, few enough to keep
// the changes in flight small.
const prefetchChunk = 256

// prefetcher reads changes on its own goroutine, so reading and decoding
// the next changes (a file read and a parse each) overlaps the merge of
// the current ones, whose goroutine is the busiest of an import. Reading
// depends on nothing the merge writes.
type prefetcher struct {
	ch   chan prefetched
	stop chan struct{}
	done chan struct{}
	cur  prefetched
	pos  int
}

type prefetched struct {
	cs  []*changeset.Change
	err error // after cs: io.EOF at the end, or the reading error
}

func prefetch(rd ChangeReader) *prefetcher {
	p := &prefetcher{ch: make(chan prefetched, 4), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			var got prefetched
			for len(got.cs) < prefetchChunk {
				c, err := rd.Next()
				if err != nil {
					got.err = err
					break
				}
				got.cs = append(got.cs, c)
			}
			select {
			case p.ch <- got:
			case <-p.stop:
				return
			}
			if got.err != nil {
				return
			}
		}
	}()
	return p
}

// Next returns the changes in the order the reader gave them.
func (p *prefetcher) Next() (*changeset.Change, error) {
	for p.pos >= len(p.cur.cs) {
		if p.cur.err != nil {
			return nil, p.cur.err
		}
		p.cur, p.pos = <-p.ch, 0
	}
	c := p.cur.cs[p.pos]
	p.cur.cs[p.pos] = nil
	p.pos++
	return c, nil
}

// close stops the reading goroutine and waits for it, so the caller may
// use or close the underlying reader again.
func (p *prefetcher) close() {
	close(p.stop)
	<-p.done
}
