package main

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// phaseBar shows a spinner with the current step of a long command on
// standard error when it is a terminal; elsewhere it does nothing.
type phaseBar struct {
	bar  *progressbar.ProgressBar
	stop chan struct{}
	done sync.WaitGroup
}

func newPhaseBar(w io.Writer) *phaseBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &phaseBar{}
	}
	p := &phaseBar{
		bar: progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetElapsedTime(true)),
		stop: make(chan struct{}),
	}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
				p.bar.Add(1)
			}
		}
	}()
	return p
}

// step names the work now under way.
func (p *phaseBar) step(desc string) {
	if p.bar != nil {
		p.bar.Describe(desc)
	}
}

// finish removes the spinner.
func (p *phaseBar) finish() {
	if p.bar == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
	p.bar.Finish()
	p.bar = nil
}
