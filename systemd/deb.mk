# `make deb`, `make test-deb` and the man page (read by the top-level Makefile; systemd/deb/).
#
# make deb:      bin/gotcmu_$(VERSION)_amd64.deb, dpkg-deb over a staged `make install
#                PREFIX=/usr` (systemd/deb/build-deb.sh says why not debhelper).
# make test-deb: make deb, then systemd/deb/test-deb.sh: lintian (no errors), apt's resolution of
#                ceph-iscsi with the package (its Provides stands for tcmu-runner), and the
#                package's file list against `make install`'s.
MANDIR ?= $(PREFIX)/share/man
DEB_DIR ?= bin
DEB_STAGE := $(BUILD)/deb/root

# gotcmu(8), made from the installed binary's --help, so it lists exactly its flags.
install-extra::
	systemd/deb/manpage.sh bin/gotcmu | gzip -9n > $(BUILD)/gotcmu.8.gz
	install -D -m 0644 $(BUILD)/gotcmu.8.gz $(DESTDIR)$(MANDIR)/man8/gotcmu.8.gz

# The package's binary is built hardened as Debian's C programs are (lintian's hardening checks):
# a position-independent executable (ASLR) linked with -z relro -z now, its C parts fortified.
deb:
	@v='$(VERSION)'; rm -rf $(DEB_STAGE) && mkdir -p $(DEB_STAGE) && \
	GOFLAGS='-buildmode=pie' CGO_CFLAGS='-O2 -g -D_FORTIFY_SOURCE=2' CGO_LDFLAGS='-O2 -g -Wl,-z,relro -Wl,-z,now' \
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_STAGE) PREFIX=/usr VERSION="$$v" >/dev/null && \
	systemd/deb/build-deb.sh $(DEB_STAGE) "$$v" $(DEB_DIR)

test-deb: deb
	systemd/deb/test-deb.sh $(DEB_DIR)/gotcmu_*.deb
