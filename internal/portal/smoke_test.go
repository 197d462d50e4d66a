package portal_test

import (
	"testing"

	"github.com/pgflex/pgflex/internal/testenv"
)

func TestPortalSmoke(t *testing.T) {
	d := testenv.Start(t, testenv.Options{})
	b := NewBrowser(t, d)
	b.Click("link", "Resource groups")
	b.WaitFor("heading", "Resource groups")
	b.Click("button", "Create")
	b.Within("dialog", "Create a resource group").Fill("Resource group name", "rg1")
	b.Choose("Region", "East US")
	b.Click("button", "Create")
	b.WaitFor("cell", "rg1")
}
