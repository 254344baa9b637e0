// Package browser_test drives the dashboard (/dashboard) in headless Chromium: an ingest
// and a worker run in this process, on embedded NATS and the test store, and each test
// signs in and clicks through the pages as a merchant would. Chromium is Debian's
// package: `make chromium` installs it, and `make test` does so first.
package browser_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/billing/billing/internal/storetest"
)

func TestMain(m *testing.M) {
	code := storetest.Run(m)
	shared.stop()
	os.Exit(code)
}

// chromiumPath finds Chromium: chromium on the PATH, else /usr/bin/chromium.
func chromiumPath() (string, error) {
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	if st, err := os.Stat("/usr/bin/chromium"); err == nil && !st.IsDir() {
		return "/usr/bin/chromium", nil
	}
	return "", errors.New("chromium is neither on the PATH nor at /usr/bin/chromium: " +
		"`make chromium` installs Debian's package (as root or with passwordless sudo), and `make test` runs it first")
}

// shared is the one browser of the package's tests; each test opens its own tabs in a
// browser context (a profile: cookies included) of its own.
var shared browser

type browser struct {
	once   sync.Once
	ctx    context.Context // the browser's first tab: the parent of the tests' tabs
	cancel context.CancelFunc
	err    error
}

// start starts Chromium once, headless. As root in a container it needs --no-sandbox;
// /dev/shm is small there, and there is no GPU.
func (b *browser) start() (context.Context, error) {
	b.once.Do(func() {
		path, err := chromiumPath()
		if err != nil {
			b.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.Headless,
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.WindowSize(1280, 900),
		)
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(allocCtx)
		b.ctx, b.cancel = ctx, func() { cancelCtx(); cancelAlloc() }
		// The first Do starts the browser, which then lives as long as ctx: the start is
		// bounded apart.
		done := make(chan error, 1)
		go func() { done <- chromedp.Do(ctx) }()
		select {
		case err = <-done:
		case <-time.After(60 * time.Second):
			b.cancel()
			err = errors.New("no answer in 60s")
		}
		if err != nil {
			b.err = fmt.Errorf("starting %s: %w", path, err)
		}
	})
	return b.ctx, b.err
}

func (b *browser) stop() {
	if b.cancel != nil {
		_ = chromedp.Cancel(b.ctx)
		b.cancel()
	}
}

// tab is a browser tab of one test, in a profile of its own, with its console.
type tab struct {
	t *testing.T
	// ctx is the tab's life: a little longer than the deadline of the test's actions,
	// so that a failure can still describe the page.
	ctx      context.Context
	deadline time.Time
	mu       sync.Mutex
	log      []chromedp.ConsoleMessage
}

// newTab opens a tab for t; every action on it must end within timeout. A missing
// Chromium fails the test: it does not skip it. When the test ends, an uncaught
// exception or a Content-Security-Policy violation on any page fails it: the dashboard's
// own scripts and styles must run under its strict policy.
func newTab(t *testing.T, timeout time.Duration) *tab {
	t.Helper()
	parent, err := shared.start()
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout+10*time.Second)
	tb := &tab{t: t, ctx: ctx, deadline: time.Now().Add(timeout)}
	// Console opens the tab (before anything else may: opening it twice at once races)
	// and subscribes to its console when it returns.
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.log = append(tb.log, m)
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		<-done
		for _, m := range tb.console() {
			switch {
			case m.IsException(), strings.Contains(m.Text, "Content Security Policy"):
				t.Errorf("browser console: %s (%s)", m, m.URL)
			case t.Failed():
				t.Logf("browser console: %s (%s)", m, m.URL)
			}
		}
	})
	return tb
}

// console returns what the page wrote to the console so far.
func (tb *tab) console() []chromedp.ConsoleMessage {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), tb.log...)
}

// do runs steps on the tab and fails the test at the first error, naming what was
// being done.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithDeadline(tb.ctx, tb.deadline)
	defer cancel()
	for i, step := range steps {
		if err := chromedp.Do(ctx, step); err != nil {
			tb.t.Fatalf("%s, step %d of %d: %v%s", what, i+1, len(steps), err, tb.page())
		}
	}
}

// run runs action on the tab and returns its value; an error fails the test.
func run[T any](tb *tab, what string, action chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithDeadline(tb.ctx, tb.deadline)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		tb.t.Fatalf("%s: %v%s", what, err, tb.page())
	}
	return v
}

// text returns the visible text of the first element sel matches.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return strings.TrimSpace(run(tb, "reading the text of "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// page describes the page on screen for a failure message: its address and its text,
// read with a short deadline of its own (the tab's may be what ran out).
func (tb *tab) page() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(body) > 2000 {
		body = body[:2000] + "…"
	}
	return fmt.Sprintf("\npage %s:\n%s", loc, body)
}
