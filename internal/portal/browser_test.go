package portal_test

// The browser harness of the portal's tests: Debian's Chromium, headless, driven with chromedp
// through a real daemon. Controls are found as a user finds them, by role and accessible name,
// in Chromium's own accessibility tree (CDP's Accessibility.queryAXTree), and clicked with real
// mouse events at their place on the page; a control without an accessible name cannot be
// reached. Every step is screenshotted; a failed test writes the screenshots out.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// stepTimeout bounds how long a step waits for its control to appear.
const stepTimeout = 20 * time.Second

// Browser is one headless Chromium signed in to a test daemon's portal.
type Browser struct {
	t      testing.TB
	D      *testenv.Daemon
	ctx    context.Context
	Portal string // https://portal.localhost:PORT
	scope  cdp.BackendNodeID

	mu        *sync.Mutex
	front     *context.Context // the tab in front, shared by a browser's tabs
	console   *[]consoleEntry
	shots     *[]shot
	apiErrors *bool
}

type consoleEntry struct{ source, level, text string }

type shot struct {
	name string
	png  []byte
}

// NewBrowser starts Chromium for d's portal, trusting exactly the daemon's certificate key,
// and signs in with the one-time link `pgflex portal` prints.
func NewBrowser(t testing.TB, d *testenv.Daemon) *Browser {
	t.Helper()
	testkit.Require(t, testkit.Chromium)
	p := d.Profile()
	spki := certificateSPKI(t, p.Endpoint, p.CACertificate)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(testkit.ChromiumExe),
		chromedp.NoSandbox, // as root, Chromium's sandbox refuses to start
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors-spki-list", spki),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &Browser{t: t, D: d, ctx: ctx, Portal: strings.TrimRight(p.PortalEndpoint, "/"),
		mu: &sync.Mutex{}, front: &ctx, console: &[]consoleEntry{}, shots: &[]shot{}, apiErrors: new(bool)}
	b.listen(ctx)
	if err := chromedp.Run(ctx, cdplog.Enable()); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			b.checkConsole()
		}
		if t.Failed() {
			b.writeShots()
		}
		cancelCtx()
		cancelAlloc()
	})
	b.SignInWithLink()
	return b
}

// NewTab opens another tab of the same browser (same cookies and storage, so the same
// session), as a user watches one page while acting on another.
func (b *Browser) NewTab() *Browser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	c := *b
	c.ctx, c.scope = ctx, 0
	c.listen(ctx)
	if err := chromedp.Run(ctx, cdplog.Enable()); err != nil {
		b.t.Fatalf("new tab: %v", err)
	}
	return &c
}

// toFront brings b's tab to the front before it is used: a headless browser does not lay out
// a tab behind another, so its accessibility tree would not answer.
func (b *Browser) toFront() {
	b.mu.Lock()
	front := *b.front
	b.mu.Unlock()
	if front == b.ctx {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, page.BringToFront()); err != nil {
		b.t.Fatalf("bring the tab to the front: %v", err)
	}
	b.mu.Lock()
	*b.front = b.ctx
	b.mu.Unlock()
}

// listen collects a tab's console errors, exceptions and log entries.
func (b *Browser) listen(ctx context.Context) {
	chromedp.ListenTarget(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				*b.console = append(*b.console, consoleEntry{"console", string(e.Type), strings.Join(parts, " ")})
			}
		case *runtime.EventExceptionThrown:
			text := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				text += " " + e.ExceptionDetails.Exception.Description
			}
			*b.console = append(*b.console, consoleEntry{"exception", "error", text})
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.LevelError {
				*b.console = append(*b.console, consoleEntry{string(e.Entry.Source), "error", e.Entry.Text + " " + e.Entry.URL})
			}
		}
	})
}

// certificateSPKI is the base64 SHA-256 of the daemon's certificate key, for Chromium's
// ignore-certificate-errors-spki-list, after checking the certificate against pgflex's CA.
func certificateSPKI(t testing.TB, endpoint, caPEM string) string {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatal("the profile's CA certificate does not parse")
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(endpoint, "https://"), &tls.Config{RootCAs: pool, ServerName: "portal.localhost"})
	if err != nil {
		t.Fatalf("TLS to the daemon as portal.localhost: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// SignInWithLink gets a one-time link from `pgflex portal` and opens it.
func (b *Browser) SignInWithLink() {
	b.t.Helper()
	out, err := exec.Command(b.D.Bin, "portal", "--profile", b.D.ProfilePath(), "--query", "url", "-o", "tsv").CombinedOutput()
	if err != nil {
		b.t.Fatalf("pgflex portal: %v\n%s", err, out)
	}
	link := strings.TrimSpace(string(out))
	if !strings.HasPrefix(link, b.Portal+"/#signin=") {
		b.t.Fatalf("pgflex portal printed %q, want a link to %s", link, b.Portal)
	}
	b.run("open the sign-in link", chromedp.Navigate(link))
	b.WaitFor("button", "Sign out")
}

// ExpectAPIErrors allows the browser's "Failed to load resource" entries for API refusals,
// which a negative flow causes on purpose; script errors still fail the test.
func (b *Browser) ExpectAPIErrors() { b.mu.Lock(); *b.apiErrors = true; b.mu.Unlock() }

func (b *Browser) checkConsole() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range *b.console {
		if e.source == "network" && *b.apiErrors && regexp.MustCompile(`status of 4\d\d`).MatchString(e.text) {
			continue
		}
		b.t.Errorf("browser console %s (%s): %s", e.level, e.source, e.text)
	}
}

// ConsoleErrors returns what the console reported so far.
func (b *Browser) ConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, e := range *b.console {
		out = append(out, e.source+": "+e.text)
	}
	return out
}

func (b *Browser) writeShots() {
	dir := os.Getenv("PGFLEX_PORTAL_SHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "pgflex-portal-shots")
	}
	dir = filepath.Join(dir, regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(b.t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("screenshots: %v", err)
		return
	}
	b.mu.Lock()
	shots := append([]shot(nil), *b.shots...)
	b.mu.Unlock()
	for i, s := range shots {
		name := fmt.Sprintf("%03d-%s.png", i, regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(s.name, "-"))
		_ = os.WriteFile(filepath.Join(dir, name), s.png, 0o644)
	}
	b.t.Logf("%d screenshots of the steps are in %s", len(shots), dir)
}

// run runs actions as one named step and screenshots the page after it.
func (b *Browser) run(step string, actions ...chromedp.Action) {
	b.t.Helper()
	b.toFront()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout+10*time.Second)
	defer cancel()
	err := chromedp.Run(ctx, actions...)
	b.snap(step)
	if err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
}

func (b *Browser) snap(step string) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)); err == nil {
		b.mu.Lock()
		*b.shots = append(*b.shots, shot{step, png})
		if len(*b.shots) > 300 {
			*b.shots = (*b.shots)[1:]
		}
		b.mu.Unlock()
	}
}

// Screenshot writes the page as it is to path.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	var png []byte
	b.run("screenshot", chromedp.CaptureScreenshot(&png))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// Go opens a portal route (#/...).
func (b *Browser) Go(route string) {
	b.t.Helper()
	b.run("go "+route, chromedp.Navigate(b.Portal+"/#"+route))
}

// Within returns a Browser whose lookups are limited to the element of role and name (a dialog,
// a tab panel, a table): Within("dialog", "Select a key").Click("button", "Select").
func (b *Browser) Within(role, name string) *Browser {
	b.t.Helper()
	id := b.find(role, name, stepTimeout)
	c := *b
	c.scope = id
	return &c
}

// query returns the non-ignored accessibility nodes of role with exactly name under the scope.
func (b *Browser) query(ctx context.Context, role, name string) ([]*accessibility.Node, error) {
	root := b.scope
	if root == 0 {
		doc, err := dom.GetDocument().WithDepth(0).Do(ctx)
		if err != nil {
			return nil, err
		}
		root = doc.BackendNodeID
	}
	q := accessibility.QueryAXTree().WithBackendNodeID(root).WithAccessibleName(name)
	if role != "" {
		q = q.WithRole(role)
	}
	nodes, err := q.Do(ctx)
	if err != nil {
		return nil, err
	}
	var out []*accessibility.Node
	for _, n := range nodes {
		if !n.Ignored && n.BackendDOMNodeID != 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

// find waits for exactly one control of role and name and returns its DOM node.
func (b *Browser) find(role, name string, timeout time.Duration) cdp.BackendNodeID {
	b.t.Helper()
	b.toFront()
	var found cdp.BackendNodeID
	var last string
	deadline := time.Now().Add(timeout)
	for {
		qctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		err := chromedp.Run(qctx, chromedp.ActionFunc(func(ctx context.Context) error {
			nodes, err := b.query(ctx, role, name)
			if err != nil {
				return err
			}
			switch len(nodes) {
			case 0:
				last = "not on the page"
			case 1:
				found = nodes[0].BackendDOMNodeID
			default:
				last = fmt.Sprintf("%d controls have that name: scope the lookup with Within", len(nodes))
			}
			return nil
		}))
		cancel()
		if err != nil {
			last = err.Error()
		}
		if found != 0 {
			return found
		}
		if time.Now().After(deadline) {
			b.snap(fmt.Sprintf("missing %s %s", role, name))
			b.t.Fatalf("%s %q: %s after %s", role, name, last, timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Has reports whether a control of role and name is on the page now.
func (b *Browser) Has(role, name string) bool {
	b.toFront()
	var n int
	_ = chromedp.Run(b.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		nodes, err := b.query(ctx, role, name)
		n = len(nodes)
		return err
	}))
	return n > 0
}

// WaitFor waits until a control of role and name is on the page.
func (b *Browser) WaitFor(role, name string) { b.t.Helper(); b.find(role, name, stepTimeout) }

// WaitForLong is WaitFor with a longer wait, for deployments and state changes.
func (b *Browser) WaitForLong(role, name string, timeout time.Duration) {
	b.t.Helper()
	b.find(role, name, timeout)
	b.snap(fmt.Sprintf("%s %s appeared", role, name))
}

// WaitGone waits until no control of role and name is on the page.
func (b *Browser) WaitGone(role, name string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for b.Has(role, name) {
		if time.Now().After(deadline) {
			b.snap("still there " + name)
			b.t.Fatalf("%s %q is still on the page after %s", role, name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Click clicks the control of role and name with the mouse, at its centre.
func (b *Browser) Click(role, name string) {
	b.t.Helper()
	id := b.find(role, name, stepTimeout)
	b.run(fmt.Sprintf("click %s %s", role, name), chromedp.ActionFunc(func(ctx context.Context) error {
		if err := dom.ScrollIntoViewIfNeeded().WithBackendNodeID(id).Do(ctx); err != nil {
			return err
		}
		quads, err := dom.GetContentQuads().WithBackendNodeID(id).Do(ctx)
		if err != nil {
			return err
		}
		if len(quads) == 0 {
			return fmt.Errorf("%s %q has no box on the page", role, name)
		}
		q := quads[0]
		x, y := (q[0]+q[2]+q[4]+q[6])/4, (q[1]+q[3]+q[5]+q[7])/4
		if err := input.DispatchMouseEvent(input.MousePressed, x, y).WithButton(input.Left).WithClickCount(1).Do(ctx); err != nil {
			return err
		}
		return input.DispatchMouseEvent(input.MouseReleased, x, y).WithButton(input.Left).WithClickCount(1).Do(ctx)
	}))
}

// call runs a JavaScript function with the control as this and returns its string result.
func (b *Browser) call(step string, id cdp.BackendNodeID, fn string, args ...any) string {
	b.t.Helper()
	var res string
	b.run(step, chromedp.ActionFunc(func(ctx context.Context) error {
		obj, err := dom.ResolveNode().WithBackendNodeID(id).Do(ctx)
		if err != nil {
			return err
		}
		var callArgs []*runtime.CallArgument
		for _, a := range args {
			raw, err := jsonValue(a)
			if err != nil {
				return err
			}
			callArgs = append(callArgs, &runtime.CallArgument{Value: raw})
		}
		r, exc, err := runtime.CallFunctionOn(fn).WithObjectID(obj.ObjectID).WithArguments(callArgs).WithReturnByValue(true).Do(ctx)
		if err != nil {
			return err
		}
		if exc != nil {
			return fmt.Errorf("%s: %s", exc.Text, exc.Exception.Description)
		}
		if r != nil && len(r.Value) > 0 {
			var s any
			if err := unmarshal(r.Value, &s); err == nil && s != nil {
				res = fmt.Sprint(s)
			}
		}
		return nil
	}))
	return res
}

// Fill types value into the text box named name, replacing what it held.
func (b *Browser) Fill(name, value string) {
	b.t.Helper()
	id := b.find("textbox", name, stepTimeout)
	b.call("clear "+name, id, `function() { this.focus(); this.select(); }`)
	b.run(fmt.Sprintf("type into %s", name), chromedp.ActionFunc(func(ctx context.Context) error {
		if value == "" {
			return input.DispatchKeyEvent(input.KeyDown).WithKey("Delete").WithCode("Delete").WithWindowsVirtualKeyCode(46).Do(ctx)
		}
		return input.InsertText(value).Do(ctx)
	}))
}

// Choose picks the option whose text is option in the drop-down (combobox) named name.
func (b *Browser) Choose(name, option string) {
	b.t.Helper()
	id := b.find("combobox", name, stepTimeout)
	deadline := time.Now().Add(stepTimeout)
	for {
		got := b.call(fmt.Sprintf("choose %s in %s", option, name), id, `function(label) {
			const o = [...this.options].find((o) => o.textContent.trim() === label);
			if (!o) return [...this.options].map((o) => o.textContent.trim()).join(' | ');
			this.focus();
			this.value = o.value;
			this.dispatchEvent(new Event('input', {bubbles: true}));
			this.dispatchEvent(new Event('change', {bubbles: true}));
			return '';
		}`, option)
		if got == "" {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("drop-down %q has no option %q; it has: %s", name, option, got)
		}
		time.Sleep(200 * time.Millisecond) // options load from the API
	}
}

// Options lists the option texts of the drop-down named name.
func (b *Browser) Options(name string) []string {
	b.t.Helper()
	id := b.find("combobox", name, stepTimeout)
	s := b.call("options of "+name, id, `function() { return [...this.options].map((o) => o.textContent.trim()).join('\n'); }`)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Value is the value of the text box or drop-down of role and name.
func (b *Browser) Value(role, name string) string {
	b.t.Helper()
	return b.call("value of "+name, b.find(role, name, stepTimeout), `function() { return this.value; }`)
}

// Checked says whether the checkbox or radio button of role and name is checked.
func (b *Browser) Checked(role, name string) bool {
	b.t.Helper()
	return b.call("checked "+name, b.find(role, name, stepTimeout), `function() { return String(this.checked); }`) == "true"
}

// Text is the visible text of the element of role and name.
func (b *Browser) Text(role, name string) string {
	b.t.Helper()
	return b.call("text of "+name, b.find(role, name, stepTimeout), `function() { return this.innerText; }`)
}

// PageText is the visible text of the page (or of the scope).
func (b *Browser) PageText() string {
	b.t.Helper()
	var s string
	b.run("page text", chromedp.ActionFunc(func(ctx context.Context) error {
		return chromedp.Evaluate(`document.body.innerText`, &s).Do(ctx)
	}))
	return s
}

// WaitText waits until the page's visible text contains text.
func (b *Browser) WaitText(text string, timeout time.Duration) {
	b.t.Helper()
	b.toFront()
	deadline := time.Now().Add(timeout)
	for {
		var s string
		_ = chromedp.Run(b.ctx, chromedp.Evaluate(`document.body.innerText`, &s))
		if strings.Contains(s, text) {
			b.snap("text " + text)
			return
		}
		if time.Now().After(deadline) {
			b.snap("missing text " + text)
			b.t.Fatalf("the page does not show %q after %s; it shows:\n%s", text, timeout, s)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// Alerts are the texts of the page's visible alerts (inline errors).
func (b *Browser) Alerts() []string {
	b.t.Helper()
	var s []string
	b.run("alerts", chromedp.Evaluate(`[...document.querySelectorAll('[role=alert],[role=alertdialog]')].filter((e) => !e.hidden && e.offsetParent !== null).map((e) => e.innerText.trim()).filter(Boolean)`, &s))
	return s
}

// WaitAlert waits for a visible alert that contains text.
func (b *Browser) WaitAlert(text string, timeout time.Duration) {
	b.t.Helper()
	b.toFront()
	deadline := time.Now().Add(timeout)
	for {
		var s []string
		_ = chromedp.Run(b.ctx, chromedp.Evaluate(`[...document.querySelectorAll('[role=alert]')].filter((e) => !e.hidden && e.offsetParent !== null).map((e) => e.innerText.trim())`, &s))
		for _, a := range s {
			if strings.Contains(a, text) {
				b.snap("alert " + text)
				return
			}
		}
		if time.Now().After(deadline) {
			b.snap("missing alert " + text)
			b.t.Fatalf("no alert says %q after %s; alerts: %q", text, timeout, s)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// Press sends a key (Enter, Escape, Tab, ArrowRight, ...) to the focused element.
func (b *Browser) Press(key string) {
	b.t.Helper()
	codes := map[string]int64{"Enter": 13, "Escape": 27, "Tab": 9, "ArrowRight": 39, "ArrowLeft": 37, "ArrowDown": 40, "ArrowUp": 38, " ": 32}
	b.run("press "+key, chromedp.ActionFunc(func(ctx context.Context) error {
		code := codes[key]
		text := ""
		if key == "Enter" {
			text = "\r"
		}
		if err := input.DispatchKeyEvent(input.KeyDown).WithKey(key).WithWindowsVirtualKeyCode(code).WithText(text).Do(ctx); err != nil {
			return err
		}
		return input.DispatchKeyEvent(input.KeyUp).WithKey(key).WithWindowsVirtualKeyCode(code).Do(ctx)
	}))
}

// Focused is the role and accessible name of the focused element.
func (b *Browser) Focused() (role, name string) {
	b.t.Helper()
	b.run("focused element", chromedp.ActionFunc(func(ctx context.Context) error {
		var id cdp.BackendNodeID
		obj, exc, err := runtime.Evaluate(`document.activeElement`).Do(ctx)
		if err != nil || exc != nil {
			return fmt.Errorf("active element: %v", err)
		}
		n, err := dom.DescribeNode().WithObjectID(obj.ObjectID).Do(ctx)
		if err != nil {
			return err
		}
		id = n.BackendNodeID
		nodes, err := accessibility.GetPartialAXTree().WithBackendNodeID(id).WithFetchRelatives(false).Do(ctx)
		if err != nil {
			return err
		}
		for _, an := range nodes {
			if an.BackendDOMNodeID == id {
				if an.Role != nil {
					role = strings.Trim(string(an.Role.Value), `"`)
				}
				if an.Name != nil {
					name = strings.Trim(string(an.Name.Value), `"`)
				}
			}
		}
		return nil
	}))
	return role, name
}

// SetViewport resizes the page (a narrow window: 390×844).
func (b *Browser) SetViewport(w, h int64) {
	b.t.Helper()
	b.run(fmt.Sprintf("viewport %dx%d", w, h), chromedp.EmulateViewport(w, h))
}

// Eval evaluates a JavaScript expression in the page into out.
func (b *Browser) Eval(expr string, out any) {
	b.t.Helper()
	b.run("eval", chromedp.Evaluate(expr, out))
}

// Reload reloads the page.
func (b *Browser) Reload() { b.t.Helper(); b.run("reload", chromedp.Reload()) }

// Navigate opens a URL.
func (b *Browser) Navigate(url string) { b.t.Helper(); b.run("navigate", chromedp.Navigate(url)) }

// Ctx is the browser's context, for chromedp actions a test runs itself.
func (b *Browser) Ctx() context.Context { b.toFront(); return b.ctx }

func jsonValue(v any) ([]byte, error) { return json.Marshal(v) }

func unmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }
