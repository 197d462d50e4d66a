package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// locationCaps is what az reads from GET .../locations/{location}/capabilities to validate
// create and update arguments before it sends them (get_postgres_location_capability_info).
type locationCaps struct {
	tiers              []tierCaps // in the service's order
	versions           []string
	geoBackupSupported bool
}

type tierCaps struct {
	name       string
	defaultSKU string
	skus       []string
	storageGB  []int
}

func (c *locationCaps) tier(name string) *tierCaps {
	for i := range c.tiers {
		if strings.EqualFold(c.tiers[i].name, name) {
			return &c.tiers[i]
		}
	}
	return nil
}

// newestVersion is the highest major version the location offers: create's default.
func (c *locationCaps) newestVersion() string {
	best, bestN := "", -1
	for _, v := range c.versions {
		if n, err := strconv.Atoi(v); err == nil && n > bestN {
			best, bestN = v, n
		}
	}
	return best
}

// parseCapabilities reads the capabilities answer ({"value": [FlexibleServerCapability]}).
func parseCapabilities(body []byte) (*locationCaps, error) {
	var page struct {
		Value []struct {
			SupportedServerEditions []struct {
				Name                     string `json:"name"`
				DefaultSkuName           string `json:"defaultSkuName"`
				SupportedStorageEditions []struct {
					SupportedStorageMb []struct {
						StorageSizeMb int `json:"storageSizeMb"`
					} `json:"supportedStorageMb"`
				} `json:"supportedStorageEditions"`
				SupportedServerSkus []struct {
					Name string `json:"name"`
				} `json:"supportedServerSkus"`
			} `json:"supportedServerEditions"`
			SupportedServerVersions []struct {
				Name string `json:"name"`
			} `json:"supportedServerVersions"`
			GeoBackupSupported string `json:"geoBackupSupported"`
			SupportedFeatures  []struct {
				Name   string `json:"name"`
				Status string `json:"status"`
			} `json:"supportedFeatures"`
		} `json:"value"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, &UserError{Msg: "The service answered the capabilities request with an invalid body.", Err: err}
	}
	if len(page.Value) == 0 {
		return nil, &UserError{Msg: "No available SKUs in this location"}
	}
	v := page.Value[0]
	caps := &locationCaps{geoBackupSupported: strings.EqualFold(v.GeoBackupSupported, "Enabled")}
	for _, f := range v.SupportedFeatures {
		if f.Name == "GeoBackup" {
			caps.geoBackupSupported = strings.EqualFold(f.Status, "Enabled")
		}
	}
	for _, e := range v.SupportedServerEditions {
		t := tierCaps{name: e.Name, defaultSKU: e.DefaultSkuName}
		for _, s := range e.SupportedServerSkus {
			t.skus = append(t.skus, s.Name)
		}
		for _, se := range e.SupportedStorageEditions {
			for _, mb := range se.SupportedStorageMb {
				if gb := mb.StorageSizeMb / 1024; !slices.Contains(t.storageGB, gb) {
					t.storageGB = append(t.storageGB, gb)
				}
			}
		}
		caps.tiers = append(caps.tiers, t)
	}
	for _, ver := range v.SupportedServerVersions {
		caps.versions = append(caps.versions, ver.Name)
	}
	return caps, nil
}

// locationCapabilities GETs the capabilities of a location.
func (a *App) locationCapabilities(ctx context.Context, sub, location string) (*locationCaps, error) {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return nil, err
	}
	path := SubscriptionPath(sub) + "/providers/Microsoft.DBforPostgreSQL/locations/" + url.PathEscape(location) + "/capabilities"
	resp, err := c.ARM(ctx, http.MethodGet, path, APIVersionPostgres, nil)
	if err != nil {
		return nil, err
	}
	return parseCapabilities(resp.Body)
}

// capsArgs are the arguments az checks against the location's capabilities.
type capsArgs struct {
	tier, sku, version, geo string
	storageGB               int // 0: not given
}

// validateCaps is the capability part of az's pg_arguments_validator, in its order: tier,
// geo-redundant backup support, storage, SKU, version. current is the server on update.
func validateCaps(caps *locationCaps, args capsArgs, current *pgServer) error {
	if args.tier != "" && caps.tier(args.tier) == nil {
		var names []string
		for _, t := range caps.tiers {
			names = append(names, strings.ToLower(t.name))
		}
		return &UserError{Msg: "Incorrect value for --tier. Allowed values : " + pyStrList(names)}
	}
	tier := args.tier
	if tier == "" && current != nil {
		tier = current.SKU.Tier
	}
	geo := args.geo
	if geo == "" && current != nil {
		geo = current.Properties.Backup.GeoRedundantBackup
	}
	if strings.EqualFold(geo, "Enabled") && !caps.geoBackupSupported {
		return &UserError{Msg: msgGeoRegionUnsupported}
	}
	tc := caps.tier(tier)
	if args.storageGB != 0 {
		if current != nil && current.Properties.Storage.StorageSizeGB > args.storageGB {
			// az's message keeps the indentation of its line continuation.
			return &UserError{Msg: fmt.Sprintf("Decrease of current storage size isn't supported. Current storage size is %d GiB "+
				strings.Repeat(" ", 32)+"and you're trying to set it to %d GiB.", current.Properties.Storage.StorageSizeGB, args.storageGB)}
		}
		if tc != nil && !slices.Contains(tc.storageGB, args.storageGB) {
			sizes := slices.Clone(tc.storageGB)
			sort.Ints(sizes)
			return &UserError{Msg: "Incorrect value for --storage-size : Allowed values (in GiB) : " + pyIntList(sizes)}
		}
	}
	if args.sku != "" && tc != nil {
		var skus []string
		for _, s := range tc.skus {
			skus = append(skus, strings.ToLower(s))
		}
		if !slices.Contains(skus, strings.ToLower(args.sku)) {
			hint := ""
			if current == nil {
				hint = "When --tier is not specified, it defaults to GeneralPurpose. "
			}
			sort.SliceStable(skus, func(i, j int) bool { return compareSKUNames(skus[i], skus[j]) < 0 })
			return &UserError{Msg: fmt.Sprintf("Incorrect value for --sku-name. The SKU name does not exist in %s tier. %s"+
				"Provide a valid SKU name for this tier, or specify --tier with the right tier for the SKU name chosen. Allowed values : %s",
				tier, hint, pyStrList(skus))}
		}
	}
	if args.version != "" && !slices.Contains(caps.versions, args.version) {
		versions := slices.Clone(caps.versions)
		sort.Strings(versions)
		return &UserError{Msg: "Incorrect value for --version. Allowed values : " + pyStrList(versions)}
	}
	return nil
}

var skuNameParts = regexp.MustCompile(`\D+(\d+)\D+(\d*)`)

// compareSKUNames is az's compare_sku_names: newer VM generation first, then fewer cores.
func compareSKUNames(a, b string) int {
	ma, mb := skuNameParts.FindStringSubmatch(a), skuNameParts.FindStringSubmatch(b)
	if ma == nil || mb == nil {
		return strings.Compare(a, b)
	}
	if ma[2] != "" && mb[2] != "" {
		va, _ := strconv.Atoi(ma[2])
		vb, _ := strconv.Atoi(mb[2])
		if vb > va {
			return 1
		}
		if vb < va {
			return -1
		}
	}
	ca, _ := strconv.Atoi(ma[1])
	cb, _ := strconv.Atoi(mb[1])
	switch {
	case cb < ca:
		return 1
	case cb > ca:
		return -1
	}
	return 0
}

// pyStrList and pyIntList print a list as Python's str(list) does, which az's messages use.
func pyStrList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = pythonRepr(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

func pyIntList(items []int) string {
	parts := make([]string, len(items))
	for i, n := range items {
		parts[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
