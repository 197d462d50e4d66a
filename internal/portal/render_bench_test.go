package portal_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pgflex/pgflex/internal/testenv"
)

// waitShown polls the page's text every few milliseconds until it contains text.
func waitShown(b *testing.B, br *Browser, text string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		if err := chromedp.Run(br.Ctx(), chromedp.Evaluate(fmt.Sprintf("document.body.innerText.includes(%q)", text), &ok)); err != nil {
			b.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the page never shows %q", text)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkPortalPageRender measures, in a real Chromium against a real daemon, how long a
// page takes from navigation until its heading is shown: the portal's shell, a page module
// loaded on demand and its API calls. ms/render is the mean of the iterations (ns/op also
// counts leaving the page before each one).
//
//	go test ./internal/portal/ -run '^$' -bench PortalPageRender -benchtime 20x
func BenchmarkPortalPageRender(b *testing.B) {
	d := testenv.Start(b, testenv.Options{})
	br := NewBrowser(b, d)
	// Each page is timed until its data is shown (the text that follows its API calls), not
	// only its heading.
	for _, page := range []struct{ route, heading, shown string }{
		{"/", "Home", "None yet."},
		{"/browse/servers", "Azure Database for PostgreSQL flexible servers", "No servers yet."},
		{"/browse/groups", "Resource groups", "No resource groups yet."},
	} {
		b.Run(page.heading, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				br.Go("/none") // leave the page, so that each iteration renders it anew
				br.WaitFor("heading", "Not found")
				start := time.Now()
				br.Go(page.route)
				br.WaitForLong("heading", page.heading, 10*time.Second)
				waitShown(b, br, page.shown)
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/render")
		})
	}
}
