package fetch

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progress reports downloads: a redrawn bar per download on a terminal,
// one line at the start and one at the end otherwise (logs and CI read
// those). It is a small piece of our own rather than a library: the
// maintained ones pull in terminal-handling dependencies for what is, here,
// thirty lines of formatting.
type progress struct {
	w     io.Writer
	tty   bool
	debug bool
	mu    sync.Mutex
}

func newProgress(w io.Writer, debug bool) *progress {
	p := &progress{w: w, debug: debug}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

func (p *progress) printf(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// Info is a one-line message.
func (p *progress) Info(format string, args ...any) { p.printf(format, args...) }

// Warn is a one-line warning.
func (p *progress) Warn(format string, args ...any) { p.printf(format, args...) }

// Debug is a message shown under --debug only.
func (p *progress) Debug(format string, args ...any) {
	if p != nil && p.debug {
		p.printf(format, args...)
	}
}

// bar follows one download.
type bar struct {
	p         *progress
	label     string
	total     int64 // -1: unknown
	start     int64 // bytes already there when it started (resume)
	done      int64
	began     time.Time
	lastDrawn time.Time
}

// Start begins reporting a download of total bytes (-1 unknown), of which
// already are present from an earlier attempt.
func (p *progress) Start(label string, total, already int64) *bar {
	b := &bar{p: p, label: label, total: total, start: already, done: already, began: time.Now()}
	if p == nil || p.w == nil {
		return b
	}
	if !p.tty {
		msg := "Downloading " + label
		if total >= 0 {
			msg += " (" + byteSize(total) + ")"
		}
		if already > 0 {
			msg += ", resuming at " + byteSize(already)
		}
		p.printf("%s", msg)
	}
	return b
}

// Add records n more bytes.
func (b *bar) Add(n int) {
	b.done += int64(n)
	if b.p == nil || b.p.w == nil || !b.p.tty {
		return
	}
	if now := time.Now(); now.Sub(b.lastDrawn) >= 100*time.Millisecond {
		b.lastDrawn = now
		b.draw(false)
	}
}

// Finish ends the report; err nil means the download completed.
func (b *bar) Finish(err error) {
	if b.p == nil || b.p.w == nil {
		return
	}
	if b.p.tty {
		b.draw(true)
	}
	elapsed := time.Since(b.began)
	got := b.done - b.start
	if err != nil {
		if !b.p.tty {
			b.p.printf("Download of %s stopped after %s: %v", b.label, byteSize(b.done), err)
		}
		return
	}
	if !b.p.tty {
		b.p.printf("Downloaded %s: %s in %s (%s/s)", b.label, byteSize(b.done), elapsed.Round(time.Millisecond), byteSize(rate(got, elapsed)))
	}
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// draw redraws the bar in place: name, bar, bytes / total, rate.
func (b *bar) draw(final bool) {
	const width = 30
	elapsed := time.Since(b.began)
	var sb strings.Builder
	sb.WriteString("\r")
	sb.WriteString(b.label)
	sb.WriteString(" [")
	if b.total > 0 {
		filled := int(float64(width) * float64(b.done) / float64(b.total))
		filled = min(max(filled, 0), width)
		sb.WriteString(strings.Repeat("=", filled))
		if filled < width {
			sb.WriteString(">")
			sb.WriteString(strings.Repeat(" ", width-filled-1))
		}
	} else {
		sb.WriteString(strings.Repeat("?", width))
	}
	sb.WriteString("] ")
	sb.WriteString(byteSize(b.done))
	if b.total >= 0 {
		sb.WriteString(" / " + byteSize(b.total))
	}
	sb.WriteString("  " + byteSize(rate(b.done-b.start, elapsed)) + "/s")
	sb.WriteString("\x1b[K") // clear what a longer previous line left
	if final {
		sb.WriteString("\n")
	}
	b.p.mu.Lock()
	io.WriteString(b.p.w, sb.String())
	b.p.mu.Unlock()
}

// byteSize formats n in binary units: "12.3 MiB".
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
