package portal_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// TestPortalKeyRevocationAcrossPages is the seed's revocation as a portal user lives it: the
// server's overview open in one tab, the key vault's page in another; disabling the key there
// turns the overview Inaccessible with its reason, live; enabling it brings Ready back, and the
// data is still there.
// waitKeyStatus waits until the Data encryption blade's key status is want.
func waitKeyStatus(t *testing.T, b *Browser, want string) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, "the Data encryption blade's key status "+want, func() error {
		var s string
		b.Eval(`(document.querySelector('[aria-label="Key status"]') || {}).innerText || ''`, &s)
		if !strings.Contains(s, "Key status\n"+want+"\n") && !strings.Contains(s, "Key status\t"+want) {
			return fmt.Errorf("it shows %q", s)
		}
		return nil
	})
}

func TestPortalKeyRevocationAcrossPages(t *testing.T) {
	needServers(t)
	t.Parallel()
	d := testenv.Start(t, testenv.Options{Args: []string{"--key-check-interval", "1s"}})
	f := newFx(t, d)
	f.Group("rg", "eastus")
	v := f.Vault("rg", "kv-revoke", "eastus", true)
	v.Key("pgkey")
	idID, principal := f.Identity("rg", "id-revoke", "eastus")
	v.Allow(principal)
	f.waitOp(f.startCreate("rg", "revoked", serverBody(v.URI+"/keys/pgkey", idID)))
	f.AllowLoopback("rg", "revoked")
	f.PSQL("rg", "revoked", "pgadmin", srvPassword, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('under my key')")

	overview := NewBrowser(t, d)
	overview.Go("/resource" + f.ServerPath("rg", "revoked"))
	waitStatus(t, overview, "Ready", 20*time.Second)

	vault := overview.NewTab()
	vault.Go("/resource" + v.ID)
	vault.Click("tab", "Keys")
	vault.Click("button", "Disable key pgkey")
	vault.WaitFor("button", "Enable key pgkey")

	s := waitStatus(t, overview, "Inaccessible: ", 45*time.Second)
	overview.WaitText("(keyRevoked)", 10*time.Second)
	reason, _ := props(f.Server("rg", "revoked"))["stateReason"].(string)
	if reason == "" || !strings.Contains(s, reason) {
		t.Errorf("the overview says %q; the API's reason is %q", s, reason)
	}
	if _, err := f.TryPSQL("rg", "revoked", "pgadmin", srvPassword, "SELECT 1"); err == nil {
		t.Error("psql reached the server while its key was disabled")
	}

	// The Data encryption blade says the key is Invalid.
	vault.Go("/resource" + f.ServerPath("rg", "revoked") + "?blade=dataencryption")
	waitKeyStatus(t, vault, "Invalid")

	vault.Go("/resource" + v.ID)
	vault.Click("tab", "Keys")
	vault.Click("button", "Enable key pgkey")
	vault.WaitFor("button", "Disable key pgkey")
	waitStatus(t, overview, "Ready", 60*time.Second)
	vault.Go("/resource" + f.ServerPath("rg", "revoked") + "?blade=dataencryption")
	waitKeyStatus(t, vault, "Valid")

	// The key is versionless: a rotation is followed, and the activity log says so.
	newVersion := v.Rotate("pgkey")
	vault.Go("/resource" + f.ServerPath("rg", "revoked") + "?blade=activity")
	vault.WaitForLong("cell", "Key version followed", 30*time.Second)
	if iu := DataEncryption(f.Server("rg", "revoked"))["primaryKeyVersionInUse"]; !strings.HasSuffix(newVersion, "/"+fmt.Sprint(iu)) {
		t.Errorf("version in use %v after the rotation to %s", iu, newVersion)
	}
	if got := f.PSQL("rg", "revoked", "pgadmin", srvPassword, "SELECT v FROM kept"); got != "under my key" {
		t.Errorf("after the key came back: %q", got)
	}
	if r := d.ARM(t, http.MethodGet, f.ServerPath("rg", "revoked")+"?api-version="+apiPostgres, nil); props(r.Body)["state"] != "Ready" {
		t.Errorf("the API says %v", props(r.Body)["state"])
	}
}
