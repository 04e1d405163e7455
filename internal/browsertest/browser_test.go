// Package browsertest drives the real Gatehouse from headless Chromium with
// chromedp: each simulated device is a separate browser with its own
// profile, so its own cookie jar, as two laptops would be.
//
// The suite needs a Chromium binary: CHROMIUM_PATH, or /usr/bin/chromium.
// Without one the tests skip, except when CI is set: CI must run them.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/session"
)

const (
	// testTimeout bounds a whole test, browsers included, so nothing hangs.
	testTimeout = 60 * time.Second
	// A desktop window; screenshots are this wide.
	windowWidth, windowHeight = 1280, 800
	defaultChromium           = "/usr/bin/chromium"
)

// chromiumPath finds the browser, or skips the test (fails it in CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHROMIUM_PATH")
	if path == "" {
		path = defaultChromium
	}
	if p, err := exec.LookPath(path); err == nil {
		return p
	}
	msg := fmt.Sprintf("chromium not found at %s; install it with apt-get install -y chromium (or set CHROMIUM_PATH)", path)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: CI must run the browser tests", msg)
	}
	t.Skip(msg)
	return ""
}

// suite is one browser test: a fresh Gatehouse and a deadline.
type suite struct {
	t        *testing.T
	ctx      context.Context // ends at the test's deadline
	env      *apptest.Env
	chromium string
}

// start checks for Chromium first (skipping is cheap), then runs the app
// (configured by opts).
func start(t *testing.T, opts ...apptest.Option) *suite {
	t.Helper()
	return startFor(t, testTimeout, opts...)
}

// startFor is start for a test that may take up to timeout: one that
// visits every page, say.
func startFor(t *testing.T, timeout time.Duration, opts ...apptest.Option) *suite {
	t.Helper()
	// Each test has its own app, database and browsers, and most of its
	// time is spent waiting for a browser: two side by side keep the CPUs
	// busier (go test's -parallel, GOMAXPROCS by default, bounds them).
	t.Parallel()
	chromium := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel) // registered first, so it runs after every browser has closed
	return &suite{t: t, ctx: ctx, env: apptest.New(t, opts...), chromium: chromium}
}

// Browser is one simulated device: a Chromium process with its own profile
// and one tab.
type Browser struct {
	t    *testing.T
	name string
	ctx  context.Context
	base string
	// device is how Gatehouse names this browser: "Chrome on Linux".
	device string

	mu sync.Mutex
	// expected are console messages the test expects (a form answered
	// 422 on purpose), which are not problems.
	expected []string
}

// expectConsole makes a console error containing text expected, not a
// failure: Chromium logs every page answered 4xx, a failed form's too.
func (b *Browser) expectConsole(text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expected = append(b.expected, text)
}

func (b *Browser) isExpected(msg string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.expected {
		if strings.Contains(msg, e) {
			return true
		}
	}
	return false
}

// watchConsole fails the test, when it ends, if any page logged an error to
// the console: a resource that failed to load, a Content-Security-Policy
// violation, an uncaught exception. Such a page is broken even when the
// elements the test looks at are there.
func (b *Browser) watchConsole(closeTab context.CancelFunc) {
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(b.ctx) // subscribed from here on
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return // the tab has closed
			}
			if (m.Type == chromedp.ConsoleError || m.IsException()) && !b.isExpected(m.Text) {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s)", m.Text, m.URL))
				mu.Unlock()
			}
		}
	}()
	b.t.Cleanup(func() {
		closeTab() // ends the stream once every message before it is read
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			b.t.Errorf("%s: console error: %s", b.name, p)
		}
	})
}

type browserConfig struct {
	javaScript bool
	phone      bool
}

// BrowserOption changes how a browser starts.
type BrowserOption func(*browserConfig)

// withoutJavaScript starts a browser whose pages run no script, to prove the
// pages work as plain forms.
func withoutJavaScript(c *browserConfig) { c.javaScript = false }

// asPhone starts a browser that is a phone: a 360 px wide touch screen
// (the narrowest common one) and the user agent of Chrome on Android.
func asPhone(c *browserConfig) { c.phone = true }

const (
	phoneWidth, phoneHeight = 360, 780
	phoneUserAgent          = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36"
)

// newBrowser starts a separate Chromium for one simulated device. It closes
// when the test ends.
func (s *suite) newBrowser(name string, opts ...BrowserOption) *Browser {
	t := s.t
	t.Helper()
	cfg := browserConfig{javaScript: true}
	for _, o := range opts {
		o(&cfg)
	}
	profile, err := os.MkdirTemp("", "gatehouse-browser-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	output := &syncBuffer{}
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(s.chromium),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // Chromium refuses to start as root without it
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(windowWidth, windowHeight),
		chromedp.CombinedOutput(output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(s.ctx, allocOpts...)
	// chromedp logs from its own goroutines, possibly after the test has
	// returned, so it writes to a buffer that is shown if the test fails.
	cdpLog := &syncBuffer{}
	logTo := func(kind string) func(string, ...any) {
		return func(f string, a ...any) { fmt.Fprintf(cdpLog, kind+f+"\n", a...) }
	}
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(logTo("")), chromedp.WithErrorf(logTo("error: ")))
	t.Cleanup(func() {
		cancelTab()   // closes the browser gracefully
		cancelAlloc() // and waits until its process has exited
		if err := os.RemoveAll(profile); err != nil {
			t.Logf("%s: remove profile: %v", name, err)
		}
		if !t.Failed() {
			return
		}
		if out := chromiumOutput(output.String()); out != "" {
			t.Logf("%s: chromium output:\n%s", name, out)
		}
		if cdpLog.Len() > 0 {
			t.Logf("%s: chromedp log:\n%s", name, cdpLog.String())
		}
	})

	// The first action starts the browser and opens the tab.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: start chromium (%s): %v\n%s", name, s.chromium, err, chromiumOutput(output.String()))
	}
	// Chromium headless says "HeadlessChrome", which the user-agent parser
	// labels a bot. Present it as the desktop Chrome it is, so the Devices
	// page shows what a person would see.
	version, err := chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
	if err != nil {
		t.Fatalf("%s: browser version: %v", name, err)
	}
	ua := strings.Replace(version.UserAgent, "HeadlessChrome/", "Chrome/", 1)
	viewport := chromedp.EmulateViewport(windowWidth, windowHeight)
	if cfg.phone {
		ua = phoneUserAgent
		viewport = chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulateScale(2))
	}
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua}); err != nil {
		t.Fatalf("%s: user agent: %v", name, err)
	}
	// A desktop (or phone) viewport, whatever window decorations headless
	// mode counts.
	if err := chromedp.Do(ctx, viewport); err != nil {
		t.Fatalf("%s: viewport: %v", name, err)
	}
	d := session.Describe(ua)
	b := &Browser{t: t, name: name, ctx: ctx, base: s.env.BaseURL, device: d.Browser + " on " + d.OS}
	b.watchConsole(cancelTab)
	if !cfg.javaScript {
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatalf("%s: disable JavaScript: %v", name, err)
		}
		b.requireNoJavaScript()
	}
	return b
}

// requireNoJavaScript proves the page scripts really do not run: a page
// whose only script would set its title keeps the title it was given.
func (b *Browser) requireNoJavaScript() {
	b.t.Helper()
	probe := "data:text/html," + url.PathEscape(`<title>scripts off</title><script>document.title = "scripts on"</script>`)
	b.do("load the JavaScript probe", chromedp.Navigate(probe))
	if title := b.title(); title != "scripts off" {
		b.t.Fatalf("%s: JavaScript still runs (probe page title %q)", b.name, title)
	}
}

// do runs actions and fails the test, naming the browser and the step, if
// one fails.
func (b *Browser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, step, err)
	}
}

// run runs one action that returns a value; a generic method is not
// possible, hence a function.
func run[T any](b *Browser, step string, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, step, err)
	}
	return v
}

func (b *Browser) title() string { return run(b, "read the title", chromedp.Title()) }

// open navigates to path and waits for the final page (after redirects) to
// load. It returns that page's path.
func (b *Browser) open(path string) string {
	b.t.Helper()
	res := run(b, "open "+path, chromedp.NavigateResponse(b.base+path))
	return b.landed("open "+path, res.Status, res.URL)
}

// submit clicks a form's submit button and waits for the page the
// post/redirect/get ends on. It returns that page's path.
func (b *Browser) submit(button chromedp.CSS) string {
	b.t.Helper()
	step := "submit " + string(button)
	res, err := chromedp.RunResponse(b.ctx, chromedp.Click(button, chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, step, err)
	}
	return b.landed(step, res.Status, res.URL)
}

// click clicks an element that does not navigate (an htmx button).
func (b *Browser) click(sel chromedp.CSS) {
	b.t.Helper()
	b.do("click "+string(sel), chromedp.Click(sel, chromedp.NodeVisible))
}

// eval runs a JavaScript expression in the page and returns its value.
func eval[T any](b *Browser, expression string) T {
	b.t.Helper()
	return run(b, "evaluate "+expression, chromedp.Evaluate[T](expression))
}

// landed checks that a navigation ended on a 200 page of the app and
// returns its path (with the query, if any).
func (b *Browser) landed(step string, status int64, raw string) string {
	b.t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		b.t.Fatalf("%s: %s: bad URL %q: %v", b.name, step, raw, err)
	}
	if status != 200 {
		b.t.Fatalf("%s: %s: ended on %s with status %d\n%s", b.name, step, u.RequestURI(), status, b.bodyText())
	}
	if !strings.HasPrefix(raw, b.base+"/") {
		b.t.Fatalf("%s: %s: left the app for %s", b.name, step, raw)
	}
	return u.RequestURI()
}

// bodyText is the page's text for a failure message; it waits at most a
// few seconds, since the page may not be one of ours.
func (b *Browser) bodyText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		return fmt.Sprintf("(page text unavailable: %v)", err)
	}
	return text
}

// fill types a value into a form field, as a person would.
func (b *Browser) fill(sel chromedp.CSS, value string) {
	b.t.Helper()
	b.do("fill "+string(sel), chromedp.SendKeys(sel, value, chromedp.NodeVisible))
}

// text is the visible text of the first element matching sel; it waits for
// the element to be there.
func (b *Browser) text(sel chromedp.CSS) string {
	b.t.Helper()
	return strings.TrimSpace(run(b, "read "+string(sel), chromedp.Text(sel)))
}

// signUp creates an account through the sign-up form.
func (b *Browser) signUp(name, email, password string) string {
	b.t.Helper()
	if path := b.open("/signup"); path != "/signup" {
		b.t.Fatalf("%s: /signup ended on %s", b.name, path)
	}
	b.fill("#name", name)
	b.fill("#email", email)
	b.fill("#password", password)
	return b.submit(`form[action="/signup"] button[type="submit"]`)
}

// signIn signs in through the sign-in form and requires landing on /account.
func (b *Browser) signIn(email, password string) {
	b.t.Helper()
	if path := b.open("/signin"); path != "/signin" {
		b.t.Fatalf("%s: /signin ended on %s", b.name, path)
	}
	b.fill("#email", email)
	b.fill("#password", password)
	if path := b.submit(`form[action="/signin"] button[type="submit"]`); path != "/account" {
		b.t.Fatalf("%s: sign in ended on %s, want /account", b.name, path)
	}
}

// screenshot saves a full-page PNG of the current page as
// <test name>-<label>.png in the screenshot directory, and returns its path.
func (b *Browser) screenshot(label string) string {
	b.t.Helper()
	png := run(b, "screenshot "+label, chromedp.FullScreenshot(100))
	dir := screenshotDir(b.t)
	path := filepath.Join(dir, fileSafe(b.t.Name())+"-"+label+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// docScreenshot saves a screenshot like screenshot does and, when
// UPDATE_SCREENSHOTS is set, also as docs/screenshots/<name>.png, the
// images the README shows. Plain test runs leave docs/ alone, so they never
// dirty the working tree.
func (b *Browser) docScreenshot(label, name string) {
	b.t.Helper()
	path := b.screenshot(label)
	if os.Getenv("UPDATE_SCREENSHOTS") == "" {
		return
	}
	root, err := repoRoot()
	if err != nil {
		b.t.Fatal(err)
	}
	png, err := os.ReadFile(path)
	if err != nil {
		b.t.Fatal(err)
	}
	doc := filepath.Join(root, "docs", "screenshots", name+".png")
	if err := os.WriteFile(doc, png, 0o644); err != nil {
		b.t.Fatalf("save %s: %v", doc, err)
	}
	b.t.Logf("screenshot: %s", doc)
}

// screenshotDir is $SCREENSHOT_DIR, or artifacts/screenshots at the
// repository root; it is created if missing.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SCREENSHOT_DIR")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "artifacts", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot directory: %v", err)
	}
	return dir
}

// repoRoot walks up from the working directory (the package's, under go
// test) to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// chromiumOutput drops the noise of a container without a D-Bus (Chromium
// complains about it and carries on) from the browser's output.
func chromiumOutput(s string) string {
	var keep []string
	for line := range strings.Lines(s) {
		if !strings.Contains(line, "dbus/") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func fileSafe(s string) string { return unsafeChars.ReplaceAllString(s, "_") }

// syncBuffer collects the browser's output from its own goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Len()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
