package resources_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armsubscriptions"

	"github.com/pgflex/pgflex/internal/testenv"
)

// TestResourceGroupsWithAzureSDK drives a real daemon with Azure's own SDK clients.
func TestResourceGroupsWithAzureSDK(t *testing.T) {
	ctx := context.Background()
	d := testenv.Start(t, testenv.Options{})
	prof := d.Profile()
	cred, opts := d.SDK()

	subs, err := armsubscriptions.NewClient(cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	var subIDs []string
	for pager := subs.NewListPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Value {
			subIDs = append(subIDs, *s.SubscriptionID)
		}
	}
	if len(subIDs) != 1 || subIDs[0] != prof.SubscriptionID {
		t.Fatalf("subscriptions = %v, want [%s]", subIDs, prof.SubscriptionID)
	}
	pairs := map[string]string{}
	for pager := subs.NewListLocationsPager(prof.SubscriptionID, nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range page.Value {
			if l.Metadata != nil && len(l.Metadata.PairedRegion) > 0 {
				pairs[*l.Name] = *l.Metadata.PairedRegion[0].Name
			}
		}
	}
	for region, want := range map[string]string{"eastus": "westus", "westeurope": "northeurope", "westus3": "eastus"} {
		if pairs[region] != want {
			t.Errorf("pair of %s = %q, want %q", region, pairs[region], want)
		}
	}

	groups, err := armresources.NewResourceGroupsClient(prof.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		name := fmt.Sprintf("RG-Test-%d", i)
		res, err := groups.CreateOrUpdate(ctx, name, armresources.ResourceGroup{
			Location: to.Ptr("eastus"), Tags: map[string]*string{"i": to.Ptr(fmt.Sprint(i))}}, nil)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if *res.Name != name || *res.Location != "eastus" || *res.Properties.ProvisioningState != "Succeeded" {
			t.Fatalf("created group = %+v", res.ResourceGroup)
		}
	}
	// Ids match case-insensitively and echo the casing of creation.
	got, err := groups.Get(ctx, "rg-test-3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Name != "RG-Test-3" || *got.Tags["i"] != "3" || *got.ID != "/subscriptions/"+prof.SubscriptionID+"/resourceGroups/RG-Test-3" {
		t.Fatalf("get = name %s id %s", *got.Name, *got.ID)
	}
	exists, err := groups.CheckExistence(ctx, "RG-TEST-1", nil)
	if err != nil || !exists.Success {
		t.Fatalf("CheckExistence = %v, %v", exists.Success, err)
	}

	// Paging: two per page means three pages for five groups.
	pages, seen := 0, map[string]bool{}
	for pager := groups.NewListPager(&armresources.ResourceGroupsClientListOptions{Top: to.Ptr[int32](2)}); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, g := range page.Value {
			seen[*g.Name] = true
		}
	}
	if pages != 3 || len(seen) != n {
		t.Fatalf("paged list: %d pages, %d groups; want 3 and %d", pages, len(seen), n)
	}

	poller, err := groups.BeginDelete(ctx, "RG-Test-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = groups.Get(ctx, "RG-Test-0", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorCode != "ResourceGroupNotFound" {
		t.Fatalf("get after delete: %v", err)
	}
	exists, err = groups.CheckExistence(ctx, "RG-Test-0", nil)
	if err != nil || exists.Success {
		t.Fatalf("CheckExistence after delete = %v, %v", exists.Success, err)
	}
}
