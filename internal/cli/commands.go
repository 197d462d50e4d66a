package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// PrintOption adjusts how App.Print renders one result.
type PrintOption func(*renderSettings)

// WithTableTransformer gives `-o table` the command's own columns, as az's table_transformer
// does: f receives the result (nodes: *object, []any, scalars; read them with field) and
// returns rows built with newRow. It applies only without --query.
func WithTableTransformer(f func(any) any) PrintOption {
	return func(s *renderSettings) { s.transform = f }
}

// Print writes a command's result on stdout: --query applied, then the -o format. result is a
// service answer (json.RawMessage or []byte; its key order is kept where az would keep it),
// nil (nothing is printed, as az prints nothing for None), or any Go value (encoded as JSON).
func (a *App) Print(result any, opts ...PrintOption) error {
	var data []byte
	switch t := result.(type) {
	case nil:
		return nil
	case json.RawMessage:
		data = t
	case []byte:
		data = t
	default:
		var err error
		if data, err = json.Marshal(result); err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil // 204 No Content and the like
	}
	doc, err := decodeDocument(data)
	if err != nil {
		return &UserError{Msg: "The service answered with a body that is not valid JSON.", Err: err}
	}
	v := doc.root
	var hashes [][]string
	if a.query != nil {
		if v, err = a.query.search(v); err != nil {
			return err
		}
		hashes = a.query.hashes
	}
	if v == nil {
		return nil
	}
	s := renderSettings{format: a.output, queryActive: a.query != nil, color: a.color}
	for _, o := range opts {
		o(&s)
	}
	out, err := render(doc.node(v, hashes), s)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(a.env.Stdout, out); err != nil && !errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// jsonArray joins items into one JSON array, keeping each item's bytes (and key order).
func jsonArray(items []json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// ---- generic ARM commands ----

// ShowResource is "GET and print": `show` commands.
func (a *App) ShowResource(ctx context.Context, path, apiVersion string, opts ...PrintOption) error {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	resp, err := c.ARM(ctx, http.MethodGet, path, apiVersion, nil)
	if err != nil {
		return err
	}
	return a.Print(json.RawMessage(resp.Body), opts...)
}

// ListResources GETs every page of a collection and prints the items as one list: `list` commands.
func (a *App) ListResources(ctx context.Context, path, apiVersion string, opts ...PrintOption) error {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	items, err := c.ListAll(ctx, path, apiVersion)
	if err != nil {
		return err
	}
	return a.Print(jsonArray(items), opts...)
}

// listInGroupOrSubscription lists a resource type in a resource group — -g, else the
// configured default group — or, without one, in the whole subscription, as az's list commands
// do; view turns each item into what the command prints.
func (a *App) listInGroupOrSubscription(ctx context.Context, group *string, providerType, apiVersion string,
	view func([]byte) (map[string]any, error)) ([]map[string]any, error) {
	g := ResourceGroupArg(group)
	g.Optional = true
	if err := a.ResolveArgs(g); err != nil {
		return nil, err
	}
	sub, c, err := a.armSession(ctx)
	if err != nil {
		return nil, err
	}
	path := SubscriptionPath(sub) + "/providers/" + providerType
	if *group != "" {
		path = ResourcePath(sub, *group, providerType)
	}
	items, err := c.ListAll(ctx, path, apiVersion)
	if err != nil {
		return nil, err
	}
	return viewAll(items, view)
}

// viewAll applies a view to each item of a list.
func viewAll(items []json.RawMessage, view func([]byte) (map[string]any, error)) ([]map[string]any, error) {
	out := make([]map[string]any, 0, len(items))
	for _, raw := range items {
		v, err := view(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// PutResource is "PUT (or PATCH) as a long-running operation and print": `create` and
// `update` commands. It sends body, follows the operation with az's progress spinner and
// prints the final resource; with noWait it returns after the first answer, printing nothing.
func (a *App) PutResource(ctx context.Context, method, path, apiVersion string, body any, noWait bool, opts ...PrintOption) error {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	resp, err := c.ARM(ctx, method, path, apiVersion, body)
	if err != nil || noWait {
		return err
	}
	final, err := a.wait(ctx, c, method, c.ARMURL(path, apiVersion), resp)
	if err != nil {
		return err
	}
	return a.Print(json.RawMessage(final.Body), opts...)
}

// DeleteResource is "DELETE as a long-running operation": it waits for the deletion (with the
// spinner) unless noWait, and prints nothing, as az's delete commands do.
func (a *App) DeleteResource(ctx context.Context, path, apiVersion string, noWait bool) error {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	resp, err := c.ARM(ctx, http.MethodDelete, path, apiVersion, nil)
	if err != nil || noWait {
		return err
	}
	_, err = a.wait(ctx, c, http.MethodDelete, c.ARMURL(path, apiVersion), resp)
	return err
}

// wait follows a long-running operation, showing the spinner while it runs.
func (a *App) wait(ctx context.Context, c *Client, method, resourceURL string, first *Response) (*Response, error) {
	running := first.StatusCode == http.StatusCreated || first.StatusCode == http.StatusAccepted ||
		first.Header.Get("Azure-AsyncOperation") != "" || !terminalState(provisioningState(first.Body))
	stop := startProgress(a.stderr, running && !a.onlyShowErrors && a.env.IsTerminal(a.env.Stderr), "Running", spinnerInterval)
	defer stop()
	return c.Wait(ctx, method, resourceURL, first)
}

// ---- client, profile, subscription ----

// ARMClient returns the client for the profile in use (--profile, $PGFLEX_PROFILE, or the one
// `pgflex login` stored), building it on first use.
func (a *App) ARMClient(context.Context) (*Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	path, err := a.profilePath()
	if err != nil {
		return nil, err
	}
	p, err := LoadProfile(path)
	if err != nil {
		return nil, &UserError{Msg: err.Error(), Err: err}
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		a.log.warningf("cli.pgflex", "The profile file '%s' holds a secret but other users can read it; run 'chmod 600 %s'.", path, path)
	}
	opts := ClientOptions{UserAgent: "pgflex-cli/" + a.env.Version}
	if a.log.level >= levelDebug {
		opts.Debugf = func(format string, args ...any) { a.log.debugf("cli.pgflex.client", format, args...) }
	}
	c, err := NewClient(p, opts)
	if err != nil {
		return nil, &UserError{Msg: fmt.Sprintf("The profile file '%s' is invalid: %v", path, err), Err: err}
	}
	a.client = c
	// Everything logged from now on goes through the client's redaction too.
	a.log.redact = c.redact
	return c, nil
}

// profilePath is --profile, else $PGFLEX_PROFILE, else the profile `pgflex login` stored.
func (a *App) profilePath() (string, error) {
	if a.profileFlag != "" {
		return a.profileFlag, nil
	}
	if p := a.env.Getenv("PGFLEX_PROFILE"); p != "" {
		return p, nil
	}
	cfg, err := a.config()
	if err != nil {
		return "", err
	}
	if cfg.Profile == "" {
		return "", &UserError{Msg: "Please run 'pgflex login' to setup account."}
	}
	return cfg.Profile, nil
}

// config loads config.json once.
func (a *App) config() (*Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	dir, err := ConfigDir(a.env.Getenv)
	if err != nil {
		return nil, &UserError{Msg: err.Error(), Err: err}
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	a.cfg, a.cfgDir = cfg, dir
	return cfg, nil
}

// SubscriptionID is the subscription commands act on: --subscription (a name or an id),
// else the profile's.
func (a *App) SubscriptionID(ctx context.Context) (string, error) {
	if a.subscriptionID != "" {
		return a.subscriptionID, nil
	}
	c, err := a.ARMClient(ctx)
	if err != nil {
		return "", err
	}
	id, err := a.resolveSubscription(ctx, c, a.subscription)
	if err != nil {
		return "", err
	}
	a.subscriptionID = id
	return id, nil
}

// armSession is what most commands start with: the subscription they act on and the client.
func (a *App) armSession(ctx context.Context) (string, *Client, error) {
	sub, err := a.SubscriptionID(ctx)
	if err != nil {
		return "", nil, err
	}
	c, err := a.ARMClient(ctx)
	return sub, c, err
}

// resolveSubscription finds a subscription by id or display name (case-insensitively, as az).
func (a *App) resolveSubscription(ctx context.Context, c *Client, nameOrID string) (string, error) {
	p := c.Profile()
	if nameOrID == "" || strings.EqualFold(nameOrID, p.SubscriptionID) ||
		(p.SubscriptionName != "" && strings.EqualFold(nameOrID, p.SubscriptionName)) {
		return p.SubscriptionID, nil
	}
	items, err := c.ListAll(ctx, "/subscriptions", APIVersionSubscriptions)
	if err != nil {
		return "", err
	}
	for _, raw := range items {
		var s subscriptionJSON
		if json.Unmarshal(raw, &s) == nil &&
			(strings.EqualFold(s.SubscriptionID, nameOrID) || strings.EqualFold(s.DisplayName, nameOrID)) {
			return s.SubscriptionID, nil
		}
	}
	return "", &UserError{Msg: fmt.Sprintf("Subscription '%s' not found. Check the spelling and casing and try again.", nameOrID)}
}

// ---- ARM paths ----

// SubscriptionPath is /subscriptions/{subscriptionId}.
func SubscriptionPath(sub string) string { return "/subscriptions/" + url.PathEscape(sub) }

// ResourceGroupPath is a group's Microsoft.Resources path (the contract's lower-case
// "resourcegroups").
func ResourceGroupPath(sub, group string) string {
	return SubscriptionPath(sub) + "/resourcegroups/" + url.PathEscape(group)
}

// ResourcePath is the ARM path of a provider resource. providerType is the namespace and the
// type chain, names the name of each type:
//
//	ResourcePath(sub, rg, "Microsoft.DBforPostgreSQL/flexibleServers", "srv")
//	ResourcePath(sub, rg, "Microsoft.DBforPostgreSQL/flexibleServers/databases", "srv", "db")
func ResourcePath(sub, group, providerType string, names ...string) string {
	parts := strings.Split(providerType, "/")
	var b strings.Builder
	b.WriteString(SubscriptionPath(sub) + "/resourceGroups/" + url.PathEscape(group) + "/providers/" + parts[0])
	for i, t := range parts[1:] {
		b.WriteString("/" + t)
		if i < len(names) {
			b.WriteString("/" + url.PathEscape(names[i]))
		}
	}
	return b.String()
}
