package volume

import (
	"strings"
	"testing"
)

func TestParseMountInfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []mountEntry
		wantErr string
	}{
		{
			name: "gocryptfs with optional fields",
			in:   "41 26 0:38 / /srv/v/mount rw,nosuid,nodev,relatime shared:7 - fuse.gocryptfs /srv/v/cipher rw,user_id=0,group_id=0,default_permissions,allow_other\n",
			want: []mountEntry{{MountPoint: "/srv/v/mount", FSType: "fuse.gocryptfs", Source: "/srv/v/cipher",
				Options: "rw,nosuid,nodev,relatime,rw,user_id=0,group_id=0,default_permissions,allow_other"}},
		},
		{
			name: "escaped space tab and backslash",
			in:   `36 35 98:0 / /mnt/a\040b\011c\134d rw - ext4 /dev/my\040disk rw` + "\n",
			want: []mountEntry{{MountPoint: "/mnt/a b\tc\\d", FSType: "ext4", Source: "/dev/my disk", Options: "rw,rw"}},
		},
		{
			name: "blank lines ignored, several entries",
			in:   "1 0 8:1 / / rw - ext4 /dev/vda rw\n\n2 1 0:5 / /proc rw - proc proc rw\n",
			want: []mountEntry{
				{MountPoint: "/", FSType: "ext4", Source: "/dev/vda", Options: "rw,rw"},
				{MountPoint: "/proc", FSType: "proc", Source: "proc", Options: "rw,rw"},
			},
		},
		{name: "no separator", in: "1 0 8:1 / / rw ext4 /dev/vda rw\n", wantErr: "no separator"},
		{name: "too few fields", in: "1 0 8:1 / - ext4 /dev/vda\n", wantErr: "too few fields"},
		{name: "truncated escape", in: `1 0 8:1 / /mnt/a\04 rw - ext4 /dev/vda rw` + "\n", wantErr: "truncated escape"},
		{name: "bad escape", in: `1 0 8:1 / /mnt/a\9zz rw - ext4 /dev/vda rw` + "\n", wantErr: "bad escape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMountInfo(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d entries %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestFindMountTakesTopmost(t *testing.T) {
	entries := []mountEntry{
		{MountPoint: "/m", FSType: "tmpfs"},
		{MountPoint: "/other", FSType: "ext4"},
		{MountPoint: "/m", FSType: "fuse.gocryptfs"},
	}
	e, ok := findMount(entries, "/m")
	if !ok || e.FSType != "fuse.gocryptfs" {
		t.Errorf("findMount = %+v, %v; want the last mount on /m", e, ok)
	}
	if _, ok := findMount(entries, "/m/sub"); ok {
		t.Error("findMount matched a path below a mount point")
	}
}
