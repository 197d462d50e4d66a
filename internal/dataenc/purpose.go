package dataenc

import (
	"context"
	"strings"
)

type purposeKey struct{}

// WithPurpose says why the keys used under ctx are used: which server, what for. Every wrap
// and unwrap made with ctx carries it to the key store, whose audit trail records it as the
// request's clientInfo (Azure's AuditEvent field for the client's User-Agent), so that each
// release of a key can be traced to its server and reason.
func WithPurpose(ctx context.Context, purpose string) context.Context {
	return context.WithValue(ctx, purposeKey{}, cleanPurpose(purpose))
}

// Purpose returns what WithPurpose attached to ctx, or "".
func Purpose(ctx context.Context) string {
	p, _ := ctx.Value(purposeKey{}).(string)
	return p
}

// UserAgentPrefix starts the User-Agent of the data plane's key-store requests.
const UserAgentPrefix = "pgflex-dataplane"

// UserAgent is the User-Agent of a key-store request made under ctx.
func UserAgent(ctx context.Context) string {
	if p := Purpose(ctx); p != "" {
		return UserAgentPrefix + " (" + p + ")"
	}
	return UserAgentPrefix
}

// cleanPurpose keeps a purpose printable, on one line and short: it travels in an HTTP header
// and into logs.
func cleanPurpose(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= 0x20 && r < 0x7f && r != '(' && r != ')' {
			b.WriteRune(r)
		}
		if b.Len() >= 200 {
			break
		}
	}
	return b.String()
}
