package portal_test

// The portal's shell in a real browser: sign-in both ways, sign-out, the idle session's end,
// keyboard use of a pane, and a narrow window.

import (
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
)

func TestPortalShell(t *testing.T) {
	d := testenv.Start(t, testenv.Options{Args: []string{"--portal-idle-timeout", "3s"}})
	b := NewBrowser(t, d) // signed in with `pgflex portal`'s one-time link
	f := newFx(t, d)

	t.Run("a pane is used from the keyboard and gives focus back", func(t *testing.T) {
		b.Go("/browse/groups")
		b.WaitFor("heading", "Resource groups")
		b.Click("button", "Create")
		pane := b.Within("dialog", "Create a resource group")
		// The first field has the focus; typing goes there.
		if role, name := b.Focused(); role != "textbox" || name != "Resource group name" {
			t.Fatalf("focus in the new pane: %s %q", role, name)
		}
		pane.Fill("Resource group name", "kbd-rg")
		b.Choose("Region", "West US")
		// The page behind the pane is inert: its buttons are out of reach.
		if b.Has("link", "Key vaults") {
			t.Error("the navigation behind an open pane is reachable")
		}
		b.Press("Escape")
		b.WaitGone("dialog", "Create a resource group", 5*time.Second)
		if role, name := b.Focused(); role != "button" || name != "Create" {
			t.Errorf("focus after Escape: %s %q, want the Create button that opened the pane", role, name)
		}
		if s := f.d.ARM(t, "GET", "/subscriptions/"+f.sub()+"/resourceGroups/kbd-rg?api-version=2021-04-01", nil).Status; s != 404 {
			t.Errorf("a cancelled pane created the group: %d", s)
		}
		// Enter on a focused button activates it, as in any native control.
		b.Press("Enter")
		b.Within("dialog", "Create a resource group").Fill("Resource group name", "kbd-rg")
		b.Choose("Region", "West US")
		b.Within("dialog", "Create a resource group").Click("button", "Create")
		b.WaitFor("cell", "kbd-rg")
		if g := f.must("GET", f.groupPath("kbd-rg"), apiGroups, nil); g["location"] != "westus" {
			t.Errorf("group made in westus? %v", g)
		}
	})

	t.Run("a narrow window has no sideways scrolling and a menu button", func(t *testing.T) {
		b.SetViewport(390, 844)
		defer b.SetViewport(1280, 800)
		b.Go("/browse/groups")
		b.WaitFor("heading", "Resource groups")
		var overflow bool
		b.Eval(`document.documentElement.scrollWidth > window.innerWidth`, &overflow)
		if overflow {
			t.Error("the page scrolls sideways at 390 px")
		}
		if b.Has("link", "Home") {
			t.Error("the navigation is shown beside the page at 390 px instead of behind the menu")
		}
		b.Click("button", "Menu")
		b.Click("link", "Home")
		b.WaitFor("heading", "Home")
	})

	t.Run("sign-out, then sign-in with the profile's secret", func(t *testing.T) {
		b.Click("button", "Sign out")
		b.WaitText("You signed out.", 5*time.Second)
		b.ExpectAPIErrors() // the wrong secret below is refused with 401
		b.Fill("Client ID", d.Profile().ClientID)
		b.Fill("Client secret", "not-the-secret")
		b.Click("button", "Sign in")
		b.WaitAlert("The client ID or the client secret is not valid.", 5*time.Second)
		b.Fill("Client secret", d.Profile().ClientSecret)
		b.Click("button", "Sign in")
		b.WaitFor("button", "Sign out")
		b.Reload() // the session cookie survives a reload
		b.WaitFor("button", "Sign out")
	})

	t.Run("an idle session ends and the page says so", func(t *testing.T) {
		b.Go("/")
		b.WaitFor("heading", "Home")
		// No input for longer than the idle timeout: the next heartbeat (every 30 s) or API
		// call finds the session gone.
		time.Sleep(3500 * time.Millisecond)
		b.Go("/browse/servers")
		b.WaitFor("heading", "Sign in to pgflex")
		b.WaitAlert("Your session ended. Sign in again.", 5*time.Second)
	})
}
