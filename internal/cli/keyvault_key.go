package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// APIVersionKeyVaultData is the Key Vault keys REST api-version the key commands use.
const APIVersionKeyVaultData = "7.4"

// `pgflex keyvault key ...` is `az keyvault key ...`: requests go to the vault's own host,
// https://{vault}.{keyVaultDnsSuffix}:{port}, with a token for the key store's audience, and
// keys print in az's shape (keyOps, ISO times, az's null fields).
func newKeyVaultKeyCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("key", "Manage keys.")
	cmd.AddCommand(newKeyCreateCommand(a), newKeyShowCommand(a), newKeyListCommand(a), newKeyListVersionsCommand(a),
		newKeySetAttributesCommand(a), newKeyRotateCommand(a), newKeyDeleteCommand(a), newKeyRecoverCommand(a),
		newKeyPurgeCommand(a), newKeyListDeletedCommand(a), newKeyAuditCommand(a), newKeyRotationPolicyCommand(a))
	return cmd
}

// keyCall sends one keys REST request to a vault.
func (a *App) keyCall(ctx context.Context, method, vault, path string, body any) (*Response, error) {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return nil, err
	}
	p := c.Profile()
	if p.KeyVaultDNSSuffix == "" {
		return nil, &UserError{Msg: "The profile names no key vault DNS suffix."}
	}
	endpoint, err := url.Parse(p.Endpoint)
	if err != nil {
		return nil, &UserError{Msg: "The profile's endpoint is not a URL.", Err: err}
	}
	suffix := p.KeyVaultDNSSuffix
	if onManagedHSM(ctx) { // --hsm-name (keyvault_hsm.go)
		suffix = p.ManagedHSMDNSSuffix
	}
	host := strings.ToLower(vault) + "." + suffix
	if port := endpoint.Port(); port != "" && port != "443" {
		host += ":" + port
	}
	return c.DataPlane(ctx, method, "https://"+host+path, APIVersionKeyVaultData, body)
}

func addKeyNameFlags(cmd *cobra.Command, vault, name *string) {
	cmd.Flags().StringVar(vault, "vault-name", "", "Name of the Key Vault.")
	cmd.Flags().StringVarP(name, "name", "n", "", "Name of the key.")
}

func requireKeyArgs(a *App, vault, name *string) error {
	args := []Arg{RequiredArg("--vault-name", vault)}
	if name != nil {
		args = append(args, RequiredArg("--name/-n", name))
	}
	return a.ResolveArgs(args...)
}

// isoTime renders a Key Vault Unix time as az prints datetimes; absent is null.
func isoTime(v any) any {
	f, ok := v.(float64)
	if !ok {
		return nil
	}
	return pythonISOTime(time.Unix(int64(f), 0))
}

func azKeyAttributes(v any) map[string]any {
	at, _ := v.(map[string]any)
	return map[string]any{"created": isoTime(at["created"]), "enabled": at["enabled"], "expires": isoTime(at["exp"]),
		"exportable": at["exportable"], "hsmPlatform": nil, "notBefore": isoTime(at["nbf"]),
		"recoverableDays": at["recoverableDays"], "recoveryLevel": at["recoveryLevel"], "updated": isoTime(at["updated"])}
}

func tagsOrNil(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) > 0 {
		return m
	}
	return nil
}

// azKey is a KeyBundle as az prints a key.
func azKey(bundle map[string]any) map[string]any {
	k, _ := bundle["key"].(map[string]any)
	jwk := map[string]any{"crv": nil, "d": nil, "dp": nil, "dq": nil, "e": k["e"], "k": nil, "keyOps": k["key_ops"],
		"kid": k["kid"], "kty": k["kty"], "n": k["n"], "p": nil, "q": nil, "qi": nil, "t": nil, "x": nil, "y": nil}
	out := map[string]any{"attributes": azKeyAttributes(bundle["attributes"]), "key": jwk, "managed": nil,
		"releasePolicy": nil, "tags": tagsOrNil(bundle["tags"])}
	if _, ok := bundle["recoveryId"]; ok {
		out["recoveryId"] = bundle["recoveryId"]
		out["deletedDate"] = isoTime(bundle["deletedDate"])
		out["scheduledPurgeDate"] = isoTime(bundle["scheduledPurgeDate"])
	}
	return out
}

// azKeyItem is a list entry as az prints key properties.
func azKeyItem(item map[string]any) map[string]any {
	kid, _ := item["kid"].(string)
	name := ""
	if u, err := url.Parse(kid); err == nil {
		if parts := strings.Split(strings.Trim(u.Path, "/"), "/"); len(parts) >= 2 {
			name = parts[1]
		}
	}
	out := map[string]any{"attributes": azKeyAttributes(item["attributes"]), "kid": kid, "managed": nil, "name": name,
		"tags": tagsOrNil(item["tags"])}
	if _, ok := item["recoveryId"]; ok {
		out["recoveryId"] = item["recoveryId"]
		out["deletedDate"] = isoTime(item["deletedDate"])
		out["scheduledPurgeDate"] = isoTime(item["scheduledPurgeDate"])
	}
	return out
}

func (a *App) printKey(raw []byte) error {
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		return &UserError{Msg: "The key store answered with a body that is not a key.", Err: err}
	}
	return a.Print(azKey(b))
}

// listKeyItems GETs every page of a keys list (following nextLink) and prints az's items.
func (a *App) listKeyItems(ctx context.Context, vault, path string) error {
	resp, err := a.keyCall(ctx, http.MethodGet, vault, path, nil)
	if err != nil {
		return err
	}
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for seen := map[string]bool{}; ; {
		var page struct {
			Value    []map[string]any `json:"value"`
			NextLink string           `json:"nextLink"`
		}
		if err := json.Unmarshal(resp.Body, &page); err != nil {
			return &UserError{Msg: "The key store answered a list request with a body that is not a list.", Err: err}
		}
		for _, it := range page.Value {
			out = append(out, azKeyItem(it))
		}
		if page.NextLink == "" || seen[page.NextLink] {
			break
		}
		seen[page.NextLink] = true
		if resp, err = c.call(ctx, http.MethodGet, page.NextLink, nil); err != nil {
			return err
		}
	}
	return a.Print(out)
}

// parseKeyTime reads --expires and --not-before as az's datetime_type does (UTC when no zone).
func parseKeyTime(flag, s string) (int64, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Unix(), nil
		}
	}
	return 0, Usagef("argument %s: invalid datetime_type value: %s", flag, pythonRepr(s))
}

// keyAttributeFlags are the attribute flags of create and set-attributes.
type keyAttributeFlags struct {
	expires, notBefore string
	ops                []string
	tags               []string
}

func (f *keyAttributeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.expires, "expires", "", "Expiration UTC datetime  (Y-m-d'T'H:M:S'Z').")
	cmd.Flags().StringVar(&f.notBefore, "not-before", "", "Key not usable before the provided UTC datetime  (Y-m-d'T'H:M:S'Z').")
	cmd.Flags().StringArrayVar(&f.ops, "ops", nil, "Space-separated list of permitted JSON web key operations. Allowed values: decrypt, encrypt, sign, unwrapKey, verify, wrapKey.")
	markMultiValue(cmd, "ops", "+")
	AddTagsFlag(cmd, &f.tags)
}

// apply puts the given attributes into a request body.
func (f *keyAttributeFlags) apply(body, attrs map[string]any) error {
	if f.expires != "" {
		t, err := parseKeyTime("--expires", f.expires)
		if err != nil {
			return err
		}
		attrs["exp"] = t
	}
	if f.notBefore != "" {
		t, err := parseKeyTime("--not-before", f.notBefore)
		if err != nil {
			return err
		}
		attrs["nbf"] = t
	}
	if f.ops != nil {
		body["key_ops"] = f.ops
	}
	if t := ParseTags(f.tags); t != nil {
		body["tags"] = t
	}
	return nil
}

func newKeyCreateCommand(a *App) *cobra.Command {
	var vault, name, kty, protection string
	var size int
	var disabled boolArg
	var attrs keyAttributeFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a new key.",
		Example: "  keyIdentifier=$(pgflex keyvault key create --name k -p software --vault-name v --query key.kid -o tsv)\n" +
			"  pgflex keyvault key create --vault-name v -n k --kty RSA --size 4096 --ops wrapKey unwrapKey",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireKeyArgs(a, &vault, &name); err != nil {
				return err
			}
			if kty == "" {
				kty = "RSA"
				if protection == "hsm" {
					kty = "RSA-HSM"
				}
			} else if protection == "hsm" && !strings.HasSuffix(kty, "-HSM") {
				kty += "-HSM"
			}
			body := map[string]any{"kty": kty}
			if size != 0 {
				body["key_size"] = size
			}
			at := map[string]any{}
			if d, given, err := disabled.get(); err != nil {
				return err
			} else if given {
				at["enabled"] = !d
			}
			if err := attrs.apply(body, at); err != nil {
				return err
			}
			if len(at) > 0 {
				body["attributes"] = at
			}
			resp, err := a.keyCall(cmd.Context(), http.MethodPost, vault, "/keys/"+url.PathEscape(name)+"/create", body)
			if err != nil {
				return err
			}
			return a.printKey(resp.Body)
		},
	}
	addKeyNameFlags(cmd, &vault, &name)
	f := cmd.Flags()
	f.Var(&keyTypeValue{p: &kty}, "kty", "The type of key to create. Allowed values: EC, EC-HSM, RSA, RSA-HSM, oct, oct-HSM.")
	f.IntVar(&size, "size", 0, "The key size in bits. For example: 2048, 3072, or 4096 for RSA.")
	f.VarP(&choiceValue{p: &protection, choices: []string{"hsm", "software"}, display: "--protection/-p"}, "protection", "p",
		"Specifies the type of key protection. Allowed values: hsm, software.")
	addBoolArg(cmd, &disabled, "disabled", "Create key in disabled state.")
	attrs.add(cmd)
	return cmd
}

// keyTypeValue keeps az's spelling of key types (RSA-HSM, oct), matched case-insensitively.
type keyTypeValue struct{ p *string }

func (v *keyTypeValue) String() string { return *v.p }
func (v *keyTypeValue) Type() string   { return "string" }
func (v *keyTypeValue) Set(s string) error {
	for _, k := range []string{"EC", "EC-HSM", "RSA", "RSA-HSM", "oct", "oct-HSM"} {
		if strings.EqualFold(k, s) {
			*v.p = k
			return nil
		}
	}
	return Usagef("argument --kty: invalid choice: %s (choose from 'EC', 'EC-HSM', 'RSA', 'RSA-HSM', 'oct', 'oct-HSM')", pythonRepr(s))
}

// keyIDFlag lets show address a key by its kid (--id), as az does.
func parseKeyID(id string) (vault, name, version string, err error) {
	u, perr := url.Parse(id)
	parts := []string{}
	if perr == nil {
		parts = strings.Split(strings.Trim(u.Path, "/"), "/")
	}
	if perr != nil || u.Scheme != "https" || len(parts) < 2 || len(parts) > 3 || parts[0] != "keys" {
		return "", "", "", Usagef("argument --id: invalid key id %s: expected https://{vault}.{suffix}/keys/{name}[/{version}]", pythonRepr(id))
	}
	vault, _, _ = strings.Cut(u.Hostname(), ".")
	name = parts[1]
	if len(parts) == 3 {
		version = parts[2]
	}
	return vault, name, version, nil
}

func newKeyShowCommand(a *App) *cobra.Command {
	var vault, name, version, id string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Get a key's attributes and, if it's an asymmetric key, its public material.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id != "" {
				var err error
				if vault, name, version, err = parseKeyID(id); err != nil {
					return err
				}
			}
			if err := requireKeyArgs(a, &vault, &name); err != nil {
				return err
			}
			resp, err := a.keyCall(cmd.Context(), http.MethodGet, vault, "/keys/"+url.PathEscape(name)+"/"+url.PathEscape(version), nil)
			if err != nil {
				return err
			}
			return a.printKey(resp.Body)
		},
	}
	addKeyNameFlags(cmd, &vault, &name)
	cmd.Flags().StringVarP(&version, "version", "v", "", "The key version. If omitted, uses the latest version.")
	cmd.Flags().StringVar(&id, "id", "", "Id of the key. If specified all other 'Id' arguments should be omitted.")
	return cmd
}

func newKeyListCommand(a *App) *cobra.Command {
	var vault string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List keys in the specified vault.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireKeyArgs(a, &vault, nil); err != nil {
				return err
			}
			return a.listKeyItems(cmd.Context(), vault, "/keys")
		},
	}
	cmd.Flags().StringVar(&vault, "vault-name", "", "Name of the Key Vault.")
	return cmd
}

func newKeyListVersionsCommand(a *App) *cobra.Command {
	var vault, name string
	cmd := &cobra.Command{
		Use:   "list-versions",
		Short: "List the identifiers and properties of a key's versions.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireKeyArgs(a, &vault, &name); err != nil {
				return err
			}
			return a.listKeyItems(cmd.Context(), vault, "/keys/"+url.PathEscape(name)+"/versions")
		},
	}
	addKeyNameFlags(cmd, &vault, &name)
	return cmd
}

func newKeySetAttributesCommand(a *App) *cobra.Command {
	var vault, name, version string
	var enabled boolArg
	var attrs keyAttributeFlags
	cmd := &cobra.Command{
		Use:   "set-attributes",
		Short: "The update key operation changes specified attributes of a stored key.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireKeyArgs(a, &vault, &name); err != nil {
				return err
			}
			body := map[string]any{}
			at := map[string]any{}
			if e, given, err := enabled.get(); err != nil {
				return err
			} else if given {
				at["enabled"] = e
			}
			if err := attrs.apply(body, at); err != nil {
				return err
			}
			body["attributes"] = at
			resp, err := a.keyCall(cmd.Context(), http.MethodPatch, vault, "/keys/"+url.PathEscape(name)+"/"+url.PathEscape(version), body)
			if err != nil {
				return err
			}
			return a.printKey(resp.Body)
		},
	}
	addKeyNameFlags(cmd, &vault, &name)
	cmd.Flags().StringVarP(&version, "version", "v", "", "The key version. If omitted, uses the latest version.")
	addBoolArg(cmd, &enabled, "enabled", "Enable the key.")
	attrs.add(cmd)
	return cmd
}

// simpleKeyCommand is a key command that sends one request and prints the key it answers.
func simpleKeyCommand(a *App, use, short, method string, path func(name string) string, print bool) *cobra.Command {
	var vault, name string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireKeyArgs(a, &vault, &name); err != nil {
				return err
			}
			resp, err := a.keyCall(cmd.Context(), method, vault, path(url.PathEscape(name)), nil)
			if err != nil || !print {
				return err
			}
			return a.printKey(resp.Body)
		},
	}
	addKeyNameFlags(cmd, &vault, &name)
	return cmd
}

func newKeyRotateCommand(a *App) *cobra.Command {
	return simpleKeyCommand(a, "rotate", "Rotate the key based on the key policy by generating a new version of the key.",
		http.MethodPost, func(n string) string { return "/keys/" + n + "/rotate" }, true)
}

func newKeyDeleteCommand(a *App) *cobra.Command {
	return simpleKeyCommand(a, "delete", "Delete a key of any type from storage in Azure Key Vault; it stays recoverable for the vault's retention period.",
		http.MethodDelete, func(n string) string { return "/keys/" + n }, true)
}

func newKeyRecoverCommand(a *App) *cobra.Command {
	return simpleKeyCommand(a, "recover", "Recover the deleted key to its latest version.",
		http.MethodPost, func(n string) string { return "/deletedkeys/" + n + "/recover" }, true)
}

func newKeyPurgeCommand(a *App) *cobra.Command {
	return simpleKeyCommand(a, "purge", "Permanently delete the specified key: refused while the vault's purge protection holds it.",
		http.MethodDelete, func(n string) string { return "/deletedkeys/" + n }, false)
}

func newKeyListDeletedCommand(a *App) *cobra.Command {
	var vault string
	cmd := &cobra.Command{
		Use:   "list-deleted",
		Short: "List the deleted keys in the specified vault.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireKeyArgs(a, &vault, nil); err != nil {
				return err
			}
			return a.listKeyItems(cmd.Context(), vault, "/deletedkeys")
		},
	}
	cmd.Flags().StringVar(&vault, "vault-name", "", "Name of the Key Vault.")
	return cmd
}

// `pgflex keyvault key audit` is a pgflex extension: the vault's audit trail (every key
// operation, its caller and result), from GET .../vaults/{name}/auditEvents.
func newKeyAuditCommand(a *App) *cobra.Command {
	var vault, name, group string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List the audit trail of a vault's key operations (a pgflex extension), oldest first.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireKeyArgs(a, &vault, nil); err != nil {
				return err
			}
			ctx := cmd.Context()
			v, err := a.findVault(ctx, vault, group)
			if err != nil {
				return err
			}
			path := v.path() + "/auditEvents"
			if name != "" {
				path += "?keyName=" + url.QueryEscape(name)
			}
			return a.ListResources(ctx, path, APIVersionKeyVault)
		},
	}
	cmd.Flags().StringVar(&vault, "vault-name", "", "Name of the Key Vault.")
	cmd.Flags().StringVarP(&name, "name", "n", "", "Name of a key: only its operations.")
	cmd.Flags().StringVarP(&group, "resource-group", "g", "", "Resource group of the vault.")
	return cmd
}

func newKeyRotationPolicyCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("rotation-policy", "Manage key's rotation policy.")
	cmd.AddCommand(newKeyRotationPolicyShowCommand(a), newKeyRotationPolicyUpdateCommand(a))
	return cmd
}

func newKeyRotationPolicyShowCommand(a *App) *cobra.Command {
	var vault, name string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Get the rotation policy of a Key Vault key.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireKeyArgs(a, &vault, &name); err != nil {
				return err
			}
			resp, err := a.keyCall(cmd.Context(), http.MethodGet, vault, "/keys/"+url.PathEscape(name)+"/rotationpolicy", nil)
			if err != nil {
				return err
			}
			return a.printRotationPolicy(resp.Body)
		},
	}
	addKeyNameFlags(cmd, &vault, &name)
	return cmd
}

func newKeyRotationPolicyUpdateCommand(a *App) *cobra.Command {
	var vault, name, value string
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Update the rotation policy of a Key Vault key.",
		Example: `  pgflex keyvault key rotation-policy update --vault-name v -n k --value '{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P2Y"}}'` + "\n" +
			"  pgflex keyvault key rotation-policy update --vault-name v -n k --value @policy.json",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireKeyArgs(a, &vault, &name); err != nil {
				return err
			}
			if value == "" {
				return Usagef("the following arguments are required: --value")
			}
			text := []byte(value)
			if path, ok := strings.CutPrefix(value, "@"); ok {
				var err error
				if text, err = os.ReadFile(path); err != nil {
					return userError(err, "Cannot read the rotation policy file '%s'", path)
				}
			}
			var policy map[string]any
			if err := json.Unmarshal(text, &policy); err != nil {
				return &UserError{Msg: fmt.Sprintf("The rotation policy is not valid JSON: %v", err), Err: err}
			}
			resp, err := a.keyCall(cmd.Context(), http.MethodPut, vault, "/keys/"+url.PathEscape(name)+"/rotationpolicy", policy)
			if err != nil {
				return err
			}
			return a.printRotationPolicy(resp.Body)
		},
	}
	addKeyNameFlags(cmd, &vault, &name)
	cmd.Flags().StringVar(&value, "value", "", "The rotation policy file definition as a json, or a path to a file containing a json definition (@file).")
	return cmd
}

// printRotationPolicy prints a rotation policy in the REST shape (which --value takes back),
// with its times as az prints datetimes.
func (a *App) printRotationPolicy(raw []byte) error {
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		return &UserError{Msg: "The key store answered with a body that is not a rotation policy.", Err: err}
	}
	if at, ok := p["attributes"].(map[string]any); ok {
		for _, k := range []string{"created", "updated"} {
			if _, has := at[k]; has {
				at[k] = isoTime(at[k])
			}
		}
	}
	return a.Print(p)
}
