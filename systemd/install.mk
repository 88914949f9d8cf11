# `make install` and `make check` steps for the system files (read by the top-level Makefile).
SYSTEMD_UNITDIR ?= /lib/systemd/system
DBUS_POLICYDIR ?= /usr/share/dbus-1/system.d
DBUS_SERVICEDIR ?= /usr/share/dbus-1/system-services
TCMU_CONFDIR ?= /etc/tcmu
GRAFANA_DIR ?= $(PREFIX)/share/gotcmu/grafana

install-extra::
	sed 's#ExecStart=/usr/bin/gotcmu#ExecStart=$(BINDIR)/gotcmu#' systemd/gotcmu.service > $(BUILD)/gotcmu.service
	install -D -m 0644 $(BUILD)/gotcmu.service $(DESTDIR)$(SYSTEMD_UNITDIR)/gotcmu.service
	install -D -m 0644 systemd/org.kernel.TCMUService1.conf $(DESTDIR)$(DBUS_POLICYDIR)/org.kernel.TCMUService1.conf
	sed 's#Exec=/usr/bin/gotcmu#Exec=$(BINDIR)/gotcmu#' systemd/org.kernel.TCMUService1.service > $(BUILD)/org.kernel.TCMUService1.service
	install -D -m 0644 $(BUILD)/org.kernel.TCMUService1.service $(DESTDIR)$(DBUS_SERVICEDIR)/org.kernel.TCMUService1.service
	install -D -m 0644 cmd/gotcmu/grafana/gotcmu-dashboard.json $(DESTDIR)$(GRAFANA_DIR)/gotcmu-dashboard.json
	@# An operator's configuration is never overwritten.
	test -e $(DESTDIR)$(TCMU_CONFDIR)/tcmu.conf || install -D -m 0644 systemd/tcmu.conf $(DESTDIR)$(TCMU_CONFDIR)/tcmu.conf

# `make check` proves `make install` lays out every file where systemd and D-Bus look for it.
check-extra::
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	$(MAKE) --no-print-directory -s install DESTDIR=$$d PREFIX=/usr >/dev/null && \
	for f in usr/bin/gotcmu lib/systemd/system/gotcmu.service etc/tcmu/tcmu.conf \
		usr/share/dbus-1/system.d/org.kernel.TCMUService1.conf \
		usr/share/dbus-1/system-services/org.kernel.TCMUService1.service \
		usr/share/gotcmu/grafana/gotcmu-dashboard.json; do \
		test -f $$d/$$f || { echo "make install did not install /$$f"; exit 1; }; \
	done && grep -q '^ExecStart=/usr/bin/gotcmu$$' $$d/lib/systemd/system/gotcmu.service && \
	echo "make install: all system files in place"
