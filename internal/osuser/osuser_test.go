package osuser

import (
	"context"
	"github.com/pgflex/pgflex/internal/testkit"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{"pgflex-db-0123456789abcdef": true, "a": true, "_x": true,
		"": false, "Upper": false, "1a": false, "a b": false, "a:b": false, strings.Repeat("a", 33): false} {
		if ValidName(name) != ok {
			t.Errorf("ValidName(%q) = %v", name, !ok)
		}
	}
}

// TestAccountLifecycle makes two accounts as the data plane does (the second in the first's
// group), checks ids, range and groups, removes them, and makes the first again while its
// group outlived it (a removal cut short).
func TestAccountLifecycle(t *testing.T) {
	testkit.Require(t, testkit.Root, testkit.Accounts)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	suffix := strconv.Itoa(os.Getpid())
	db, bk := "pgflex-tdb-"+suffix, "pgflex-tbk-"+suffix
	t.Cleanup(func() { Remove(context.Background(), bk); Remove(context.Background(), db) })
	comment := "pgflex osuser test " + suffix

	u, err := Ensure(ctx, db, Options{Comment: comment})
	if err != nil {
		t.Fatal(err)
	}
	if u.UID < DefaultRange.Min || u.UID > DefaultRange.Max || u.GID < DefaultRange.Min || u.GID > DefaultRange.Max {
		t.Errorf("ids %d/%d outside %+v", u.UID, u.GID, DefaultRange)
	}
	again, err := Ensure(ctx, db, Options{Comment: comment})
	if err != nil || again.UID != u.UID {
		t.Fatalf("Ensure is not idempotent: %+v %v", again, err)
	}
	b, err := Ensure(ctx, bk, Options{Comment: comment, Groups: []string{db}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(b.Groups, u.GID) || b.GID == u.GID {
		t.Errorf("backup account groups %d + %v, want its own and %d", b.GID, b.Groups, u.GID)
	}
	cred := b.Credential()
	if cred.Uid != b.UID || cred.Gid != b.GID || !slices.Equal(cred.Groups, b.Groups) || cred.NoSetGroups {
		t.Errorf("credential %+v", cred)
	}
	names, err := ListByComment(comment)
	if err != nil || !slices.Contains(names, db) || !slices.Contains(names, bk) {
		t.Errorf("ListByComment = %v, %v", names, err)
	}

	// The first account goes while the second is still in its group: the group goes too.
	if err := Remove(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := user.Lookup(db); err == nil {
		t.Error("account left after Remove")
	}
	if _, err := user.LookupGroup(db); err == nil {
		t.Error("group left after Remove")
	}
	if err := Remove(ctx, db); err != nil {
		t.Errorf("removing a missing account: %v", err)
	}
	// Made again, it gets a group, and the second account is added back to it.
	u2, err := Ensure(ctx, db, Options{Comment: comment})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Ensure(ctx, bk, Options{Comment: comment, Groups: []string{db}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(b2.Groups, u2.GID) {
		t.Errorf("backup account not back in the new group: %v, want %d", b2.Groups, u2.GID)
	}
	// A group outliving its account (a removal cut short) is taken back.
	if err := run(ctx, "userdel", db); err != nil {
		t.Fatal(err)
	}
	if _, err := user.LookupGroup(db); err != nil {
		t.Fatalf("the group did not outlive its account here: %v", err)
	}
	if _, err := Ensure(ctx, db, Options{Comment: comment}); err != nil {
		t.Fatalf("Ensure with a leftover group: %v", err)
	}
	if _, err := Ensure(ctx, "root", Options{}); err == nil {
		t.Error("root was accepted")
	}
	if _, err := Ensure(ctx, "x"+suffix, Options{Comment: "a:b"}); err == nil {
		t.Error("a comment with ':' was accepted")
	}
}
