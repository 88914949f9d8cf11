#!/bin/bash
# Print the version `make build` stamps into gotcmu and `make deb` gives the package: `git describe
# --tags --always --dirty` mapped to a valid Debian version (digits first; no '-', which would
# start a Debian revision), ordered the way dpkg compares versions:
#   v1.2.3                   -> 1.2.3
#   v1.2.3-rc1               -> 1.2.3~rc1                     (before the release)
#   v1.2.3-4-gabc1234        -> 1.2.3+git20261205.4.abc1234   (after the tag)
#   abc1234 (no tag yet)     -> 0.0~git20261205.abc1234       (before any 0.0 release)
#   ...-dirty                -> ...+dirty                     (uncommitted changes)
# The date is the commit's (UTC), not today's, so a clean tree gives the same version on every
# build. Outside a git checkout: 0.0~unknown.
set -euo pipefail
cd "$(dirname "$0")/../.."
desc=$(git describe --tags --always --dirty 2>/dev/null) || { echo 0.0~unknown; exit 0; }
date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d)
dirty=
if [[ $desc == *-dirty ]]; then
	desc=${desc%-dirty}
	dirty=+dirty
fi
after=
if [[ $desc =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
	desc=${BASH_REMATCH[1]}
	after="+git$date.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
fi
# A pre-release tag sorts before its release: v1.2.3-rc1 -> 1.2.3~rc1.
tag=${desc#v}
tag=${tag//-/\~}
if git describe --tags >/dev/null 2>&1 && [[ $tag =~ ^[0-9][0-9A-Za-z.~+]*$ ]]; then
	v=$tag$after
else
	# No tag yet (describe printed the commit), or a tag that is not a version.
	v="0.0~git$date.$(git rev-parse --short HEAD)"
fi
echo "$v$dirty"
