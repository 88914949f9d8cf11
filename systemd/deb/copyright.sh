#!/bin/bash
# Print /usr/share/doc/gotcmu/copyright (machine-readable format) for the binary given: gotcmu
# itself (Apache-2.0), and every Go module `go version -m` says is linked into it, plus Go's
# standard library, each with its licence text as found in the module cache and GOROOT.
#
# Usage: systemd/deb/copyright.sh bin/gotcmu
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
REPO=$(readlink -f "$HERE/../..")
bin=$1
PATH=$PATH:/usr/local/go/bin

# license_id FILE: the SPDX identifier of a licence text (the four the dependencies use).
license_id() {
	local t
	t=$(tr -s ' \n' ' ' <"$1")
	case $t in
	*"Apache License"*) echo Apache-2.0 ;;
	*"Permission is hereby granted"*) echo Expat ;;
	*"Redistribution and use"*"Neither the name"*) echo BSD-3-clause ;;
	*"Redistribution and use"*) echo BSD-2-clause ;;
	*) echo "copyright.sh: unknown licence in $1" >&2; return 1 ;;
	esac
}

# text FILE: a licence as the body of a License field (" " before each line, " ." for blanks).
text() { sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' "$1"; }

cat <<'HEAD'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: gotcmu
Upstream-Contact: https://github.com/gotcmu/gotcmu/issues
Source: https://github.com/gotcmu/gotcmu
Comment: /usr/bin/gotcmu is a Go program; the Go modules and the Go standard
 library below are linked into it statically. Their paragraphs name the module
 (and version) as go.mod does, under go-modules/, which is not a directory of
 this package.

Files: *
Copyright: The gotcmu authors (https://github.com/gotcmu/gotcmu/graphs/contributors)
License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this file except in compliance with the License. You may obtain a copy of
 the License at http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
 WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
 License for the specific language governing permissions and limitations under
 the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0 can be
 found in "/usr/share/common-licenses/Apache-2.0".
HEAD

goroot=$(go env GOROOT)
echo
echo "Files: go-modules/std/*"
echo "Comment: The Go standard library and runtime, $(go version "$bin" | awk '{print $2}')."
echo "Copyright: The Go Authors"
echo "License: $(license_id "$goroot/LICENSE")"
text "$goroot/LICENSE"

# "dep <path> <version> <sum>" lines; a "=>" replacement line names the module actually used.
go version -m "$bin" | awk '$1 == "dep" || $1 == "=>" {print $1, $2, $3}' |
	awk '$1 == "dep" {if (p) print p; p = $2 " " $3} $1 == "=>" {p = $2 " " $3} END {if (p) print p}' |
	while read -r path version; do
		if [ "${version:0:1}" != v ]; then
			dir=$(cd "$REPO" && readlink -f "$version")
		else
			dir=$(cd "$REPO" && go list -m -f '{{.Dir}}' "$path@$version" 2>/dev/null || true)
			[ -n "$dir" ] || dir=$(go env GOMODCACHE)/$(sed 's/[A-Z]/!\L&/g' <<<"$path")@$version
		fi
		lic=$(find "$dir" -maxdepth 1 \( -iname 'LICENSE*' -o -iname 'COPYING*' \) -type f | sort | head -1)
		[ -n "$lic" ] || { echo "copyright.sh: no licence file in $dir ($path)" >&2; exit 1; }
		echo
		echo "Files: go-modules/$path/*"
		echo "Comment: The Go module $path $version."
		holder=$(grep -m1 -i '^ *copyright ([cC])\|^ *copyright [0-9]' "$lic" | sed -e 's/^ *//' -e 's/^copyright *//I' || true)
		echo "Copyright: ${holder:-the authors of $path}"
		id=$(license_id "$lic")
		echo "License: $id"
		if [ "$id" = Apache-2.0 ]; then
			# Debian ships this one (policy 12.5); the paragraph of gotcmu's own refers to it.
			echo " See the Apache-2.0 paragraph above (/usr/share/common-licenses/Apache-2.0)."
		else
			text "$lic"
		fi
	done
