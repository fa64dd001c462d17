package main

import (
	"io"
	"os"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress draws transfer bars on stderr. It is active only when stderr is
// a terminal, -o json is off and --quiet is not given, so pipes and scripts
// see none of it; otherwise every method is a no-op pass-through.
type progress struct {
	p *mpb.Progress
}

// newProgress returns a progress for stderr; quiet forces it off.
func newProgress(stderr io.Writer, quiet bool) *progress {
	if quiet || !isTerminal(stderr) {
		return &progress{}
	}
	return &progress{p: mpb.New(mpb.WithOutput(stderr), mpb.WithWidth(40))}
}

// isTerminal reports whether w is a character device (a TTY).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// bar is one transfer; a nil *mpb.Bar means no drawing.
type bar struct{ b *mpb.Bar }

// add starts a bar for name of total bytes (total <= 0: unknown).
func (p *progress) add(name string, total int64) bar {
	if p.p == nil {
		return bar{}
	}
	b := p.p.AddBar(max(total, 0),
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30), decor.Percentage(decor.WCSyncSpace)),
	)
	return bar{b}
}

// reader counts r's bytes on the bar.
func (b bar) reader(r io.Reader) io.Reader {
	if b.b == nil {
		return r
	}
	return b.b.ProxyReader(r)
}

// writer counts w's bytes on the bar.
func (b bar) writer(w io.Writer) io.Writer {
	if b.b == nil {
		return w
	}
	return b.b.ProxyWriter(w)
}

// done completes the bar (ok) or aborts it, leaving the line on screen.
func (b bar) done(ok bool) {
	if b.b == nil {
		return
	}
	if ok {
		b.b.SetTotal(-1, true)
	} else {
		b.b.Abort(false)
	}
}

// wait waits for the bars to finish drawing.
func (p *progress) wait() {
	if p.p != nil {
		p.p.Wait()
	}
}
