#!/usr/bin/env bash
# Installs what pgflex needs from Debian 12's packages, and only what is
# missing. Idempotent and non-interactive; run as root (CI does).
#
#   scripts/setup.sh
#
# Add packages to the list below; keep one reason per line.
set -euo pipefail

packages=(
	postgresql-15          # the server (initdb, postgres, pg_ctl, pg_controldata)
	postgresql-client-15   # psql, pgbench (bench/), pg_isready
	postgresql-contrib-15  # extensions users expect
	postgresql-server-dev-15  # headers and PGXS, to build pgflex_guard (internal/postgres/pgflex_guard)
	fuse3                  # /dev/fuse user space, fusermount3
	e2fsprogs              # mkfs.ext4, e2fsck, resize2fs: the ext4 images of fscrypt volumes (internal/volume)
	util-linux             # unshare and nsenter (the tests' namespace attacks); losetup to look at loop devices
	# gocryptfs is not taken from Debian: it is built below at a pinned version.
	pgbackrest             # backups (internal/backup)
	passwd                 # useradd, for the unprivileged PostgreSQL user
	procps                 # ps/pgrep, used when diagnosing
	locales                # en_US.UTF-8, Azure's default database collation
	azure-cli              # Microsoft's az 2.45: the tests drive Azure's own CLI against pgflex
	libnss-myhostname      # resolves *.localhost (key vaults, Graph, servers' host names) to loopback
	chromium               # the portal's tests drive a real browser, headless (chromedp)
	fonts-dejavu-core      # a font for chromium's screenshots
	jq                     # README's "Use Azure's own CLI" reads the daemon's profile with it
)

if [[ $(id -u) -ne 0 ]]; then
	echo "setup.sh: run as root" >&2
	exit 1
fi

# installed NAME: a package is installed, or an installed package provides
# it (Debian 12's postgresql-15 provides postgresql-contrib-15). The lists
# are read into variables first: with pipefail, `grep -q` closing a pipe
# early would turn a match into a failure.
installed() {
	local status provides
	status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] && return 0
	provides=$(dpkg-query -W -f='${db:Status-Abbrev} ${Provides}\n' 2>/dev/null || true)
	grep -qE "^ii.*[ ,]$1([ ,(]|\$)" <<<"$provides"
}

missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done

if ((${#missing[@]} > 0)); then
	echo "setup.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Only refresh the package lists when they have never been fetched.
	if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
		apt-get update -q
	fi
	if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
		# Lists may be stale (a package moved to a newer version): refresh once.
		apt-get update -q
		apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
fi

# Debian's postgresql package creates and starts a default cluster; pgflex
# runs its own servers and does not want it holding port 5432.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 main .* online'; then
	pg_ctlcluster 15 main stop || true
fi

# Host names under .localhost (vault.localhost, postgres.localhost, graph.localhost) name this
# machine. Browsers and Go's resolver know that; glibc's resolver (psql, az, curl) learns it from
# nss-myhostname, whose package adds it to nsswitch.conf. Make sure it is there even when the file
# was edited by hand, before dns (which would ask a name server about .localhost).
if ! grep -qE '^hosts:.*\bmyhostname\b' /etc/nsswitch.conf; then
	echo "setup.sh: adding myhostname to the hosts line of /etc/nsswitch.conf"
	sed -i -E 's/^(hosts:[[:space:]]+files)/\1 myhostname/' /etc/nsswitch.conf
	grep -qE '^hosts:.*\bmyhostname\b' /etc/nsswitch.conf || { echo "setup.sh: could not add myhostname to /etc/nsswitch.conf" >&2; exit 1; }
fi

# Azure creates databases with collation en_US.utf8 by default; PostgreSQL needs the OS locale.
if ! locale -a 2>/dev/null | grep -qi '^en_US\.utf-\?8$'; then
	echo "setup.sh: generating the en_US.UTF-8 locale"
	sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' /etc/locale.gen
	grep -q '^en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' >> /etc/locale.gen
	locale-gen
fi

# gocryptfs, the encrypted volume layer (internal/volume), built from its Go
# module at a pinned release. Not Debian 12's package: gocryptfs 2.3 there is
# built against golang.org/x/sys 0.3.0, whose Setreuid/Setregid change the
# credentials of every thread of the process (glibc's setxid broadcast), not
# only the calling one. Run as root with -allow_other, gocryptfs switches to
# the caller's uid around each create, so concurrent creates race: files come
# out owned by root, or the create fails with EPERM (internal/volume's
# TestConcurrentCreateOwnership: 42% of 4-way concurrent creates). v2.4.0
# built with its own go.mod (x/sys of 2022-05) switches only the calling
# thread. `go mod download` checks the module against the Go checksum
# database. PGFLEX_GOCRYPTFS_BIN overrides where it is installed. Its go-fuse
# stays unpatched: a patch accepting FUSE's writeback cache was measured and
# rejected (internal/volume/gocryptfs.go says why).
gocryptfs_version=v2.4.0
gocryptfs_bin=${PGFLEX_GOCRYPTFS_BIN:-/usr/local/bin/gocryptfs}
if ! "$gocryptfs_bin" -version 2>/dev/null | grep -q "^gocryptfs $gocryptfs_version "; then
	if ! command -v go >/dev/null; then
		echo "setup.sh: go is needed to build gocryptfs $gocryptfs_version" >&2
		exit 1
	fi
	echo "setup.sh: building gocryptfs $gocryptfs_version into $gocryptfs_bin"
	json=$(go mod download -json "github.com/rfjakob/gocryptfs/v2@$gocryptfs_version")
	moddir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
	if [[ -z $moddir || ! -d $moddir ]]; then
		echo "setup.sh: go mod download gocryptfs $gocryptfs_version failed: $json" >&2
		exit 1
	fi
	build=$(mktemp -d)
	# Pure Go (no OpenSSL, no cgo, so no glibc setxid), the module's own
	# dependency versions (-mod=readonly), version stamped as build.bash does.
	(cd "$moddir" && CGO_ENABLED=0 go build -mod=readonly -tags without_openssl -trimpath \
		-ldflags "-X main.GitVersion=$gocryptfs_version -X main.GitVersionFuse=$(go list -mod=readonly -m -f '{{.Version}}' github.com/hanwen/go-fuse/v2)" \
		-o "$build/gocryptfs" .)
	install -D -m 0755 "$build/gocryptfs" "$gocryptfs_bin"
	rm -rf "$build"
fi
# pgflex runs the first gocryptfs on PATH: it must be this one.
if [[ -z ${PGFLEX_GOCRYPTFS_BIN:-} && $(command -v gocryptfs) != "$gocryptfs_bin" ]]; then
	echo "setup.sh: warning: gocryptfs on PATH is $(command -v gocryptfs), not $gocryptfs_bin; remove it (apt-get remove gocryptfs)" >&2
fi

# pgflex_guard, the server module that keeps each server's administrator
# inside SQL (internal/postgres/pgflex_guard; every server preloads it and
# will not start without it). Built with PGXS in a temporary directory, never
# in the repository, and installed into PostgreSQL 15's library directory
# only when the installed copy is missing or was built from other sources or
# for another PostgreSQL: a sha256 of those sits beside it. The library is
# installed under a temporary name and renamed into place, so running
# servers keep mapping the old file intact.
pg_config=/usr/lib/postgresql/15/bin/pg_config
guard_src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/internal/postgres/pgflex_guard
guard_lib=$("$pg_config" --pkglibdir)/pgflex_guard.so
guard_stamp=$guard_lib.sha256
guard_sum=$( (cd "$guard_src" && sha256sum Makefile pgflex_guard.c && "$pg_config" --version) | sha256sum | cut -d' ' -f1)
if [[ ! -f $guard_lib || ! -f $guard_stamp || $(<"$guard_stamp") != "$guard_sum" ]]; then
	echo "setup.sh: building pgflex_guard into $guard_lib"
	build=$(mktemp -d)
	cp "$guard_src/Makefile" "$guard_src/pgflex_guard.c" "$build/"
	if ! make -s -C "$build" PG_CONFIG="$pg_config" >&2; then
		rm -rf "$build"
		echo "setup.sh: building pgflex_guard failed" >&2
		exit 1
	fi
	install -m 0755 "$build/pgflex_guard.so" "$guard_lib.new"
	mv -f "$guard_lib.new" "$guard_lib"
	echo "$guard_sum" >"$guard_stamp.new"
	mv -f "$guard_stamp.new" "$guard_stamp"
	rm -rf "$build"
fi

# The FUSE device must exist for encrypted volumes (containers may lack it). Under CI that is
# an error: a run without it would test nothing of the data plane.
if [[ ! -c /dev/fuse ]]; then
	if [[ ${CI:-} == true ]]; then
		echo "setup.sh: /dev/fuse is missing; encrypted volumes cannot be mounted (CI=true: refusing to go on)" >&2
		exit 1
	fi
	echo "setup.sh: warning: /dev/fuse is missing; encrypted volumes cannot be mounted" >&2
fi

echo "setup.sh: ok"
