package portal_test

import (
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
)

// BenchmarkPortalPageRender measures, in a real Chromium against a real daemon, how long a
// page takes from navigation until its heading is shown: the portal's shell, a page module
// loaded on demand and its API calls. ms/render is the mean of the iterations (ns/op also
// counts leaving the page before each one).
//
//	go test ./internal/portal/ -run '^$' -bench PortalPageRender -benchtime 20x
func BenchmarkPortalPageRender(b *testing.B) {
	d := testenv.Start(b, testenv.Options{})
	br := NewBrowser(b, d)
	for _, page := range []struct{ route, heading string }{
		{"/", "Home"},
		{"/browse/servers", "Azure Database for PostgreSQL flexible servers"},
		{"/browse/groups", "Resource groups"},
	} {
		b.Run(page.heading, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				br.Go("/none") // leave the page, so that each iteration renders it anew
				br.WaitFor("heading", "Not found")
				start := time.Now()
				br.Go(page.route)
				br.WaitForLong("heading", page.heading, 10*time.Second)
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/render")
		})
	}
}
