//go:build !nautilus

package rbd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	cephrbd "github.com/ceph/go-ceph/rbd"

	"github.com/gotcmu/gotcmu/handler"
)

func TestOpenRefuses(t *testing.T) {
	admin := needCeph(t)
	const size = 4 << 20
	name := newImage(t, "rbd", size, 22)
	ioctx, err := admin.OpenIOContext("rbd")
	if err != nil {
		t.Fatal(err)
	}
	defer ioctx.Destroy()
	if err := cephrbd.NamespaceCreate(ioctx, "ns1"); err != nil && !errors.Is(cephErrno(err), syscall.EEXIST) {
		t.Fatal(err)
	}
	tests := []struct {
		name, config string
		size         int64
		msg          string
		errno        error
	}{
		{"bad_syntax", "rbd/" + name + ";bogus=1", size, "unknown option", nil},
		{"missing_pool", "nopool/" + name, size, "open pool nopool", syscall.ENOENT},
		{"missing_image", "rbd/noimage", size, "open image rbd/noimage", syscall.ENOENT},
		{"image_in_other_namespace", "rbd/ns1/" + name, size, "open image rbd/ns1/" + name, syscall.ENOENT},
		{"missing_namespace", "rbd/nons/" + name, size, "open image rbd/nons/" + name, syscall.ENOENT},
		{"device_larger_than_image", "rbd/" + name, 2 * size, "is 4194304 bytes but the device is 8388608 bytes", syscall.EINVAL},
		{"device_smaller_than_image", "rbd/" + name, size / 2, "is 4194304 bytes but the device is 2097152 bytes", syscall.EINVAL},
		{"missing_conf", "rbd/" + name + ";conf=/nonexistent/ceph.conf", size, "read ceph config", syscall.ENOENT},
	}
	h := Handler(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b, err := h.Open(ctx, handler.DeviceInfo{Name: "dev", Config: tt.config, Size: tt.size, BlockSize: 512}, testLogger(t))
			if err == nil {
				b.Close()
				t.Fatalf("Open(%q) succeeded", tt.config)
			}
			if b != nil {
				t.Errorf("Open returned a non-nil backend with its error")
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			if tt.errno != nil && !errors.Is(err, tt.errno) {
				t.Errorf("error %q is not %v", err, tt.errno)
			}
		})
	}
	// The namespace spelling opens images in a namespace.
	nsioctx, err := admin.OpenIOContext("rbd")
	if err != nil {
		t.Fatal(err)
	}
	defer nsioctx.Destroy()
	nsioctx.SetNamespace("ns1")
	if err := cephrbd.CreateImage(nsioctx, "nsimg", size, cephrbd.NewRbdImageOptions()); err != nil && !errors.Is(cephErrno(err), syscall.EEXIST) {
		t.Fatal(err)
	}
	defer cephrbd.RemoveImage(nsioctx, "nsimg")
	im := openDevice(t, h, "rbd/ns1/nsimg", size)
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckConfig(t *testing.T) {
	needCeph(t)
	name := newImage(t, "rbd", 4<<20, 22)
	h := Handler(Options{})
	dir := t.TempDir()
	unreachable := filepath.Join(dir, "unreachable.conf")
	if err := os.WriteFile(unreachable, []byte("[global]\nmon host = 127.0.0.1:1\nauth client required = none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret.conf")
	if err := os.WriteFile(secret, []byte("[global]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	user := handler.Caller{UID: 65534, GIDs: []uint32{65534}}
	tests := []struct {
		name   string
		config string
		caller *handler.Caller
		msg    string // "" for valid
	}{
		{"valid", "rbd/" + name + ";osd_op_timeout=30", nil, ""},
		{"syntax", "rbd", nil, "has 1 elements"},
		{"missing_pool", "nopool/" + name, nil, "open pool nopool"},
		{"missing_image", "rbd/missing", nil, "open image rbd/missing"},
		{"unreachable_cluster_within_deadline", "rbd/" + name + ";conf=" + unreachable, nil, "ceph did not answer in time"},
		// An unprivileged D-Bus caller learns nothing about the cluster.
		{"unprivileged_caller_gets_syntax_only", "rbd/missing", &user, ""},
		{"unprivileged_caller_syntax", "rbd/", &user, "empty image"},
	}
	if os.Getuid() == 0 {
		// Root reads the file anyway; the check runs as the caller only
		// on the D-Bus service's thread with the caller's credentials.
		t.Logf("running as root: conf readability for unprivileged callers is covered by the D-Bus service tests")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if tt.caller != nil {
				ctx = handler.WithCaller(ctx, *tt.caller)
			}
			start := time.Now()
			err := h.CheckConfig(ctx, tt.config)
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("CheckConfig took %v with a 3 s deadline", took)
			}
			switch {
			case tt.msg == "" && err != nil:
				t.Errorf("CheckConfig(%q): %v", tt.config, err)
			case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
				t.Errorf("CheckConfig(%q) = %v, want an error saying %q", tt.config, err, tt.msg)
			}
		})
	}
}

// serviceDaemon returns the service map entry of daemon, or nil.
func serviceDaemon(t *testing.T, admin *rados.Conn, daemon string) map[string]any {
	t.Helper()
	buf, _, err := admin.MgrCommand([][]byte{[]byte(`{"prefix":"service dump","format":"json"}`)})
	if err != nil {
		t.Fatalf("service dump: %v", err)
	}
	var dump struct {
		Services map[string]struct {
			Daemons map[string]json.RawMessage `json:"daemons"`
		} `json:"services"`
	}
	if err := json.Unmarshal(buf, &dump); err != nil {
		t.Fatalf("decode service dump: %v", err)
	}
	raw, ok := dump.Services[serviceType].Daemons[daemon]
	if !ok {
		return nil
	}
	var d map[string]any
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func serviceStatus(t *testing.T, admin *rados.Conn, daemon string) map[string]any {
	t.Helper()
	buf, _, err := admin.MgrCommand([][]byte{[]byte(`{"prefix":"service status","format":"json"}`)})
	if err != nil {
		t.Fatalf("service status: %v", err)
	}
	var st map[string]map[string]struct {
		Status map[string]any `json:"status"`
	}
	if err := json.Unmarshal(buf, &st); err != nil {
		t.Fatalf("decode service status %s: %v", buf, err)
	}
	return st[serviceType][daemon].Status
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestServiceMapAndLocks(t *testing.T) {
	admin := needCeph(t)
	const size = 4 << 20
	name := newImage(t, "rbd", size, 22)
	// Two gateways: two handlers, so two clients.
	ha, hb := Handler(Options{Host: "gwa"}), Handler(Options{Host: "gwb"})
	a := openDevice(t, ha, "rbd/"+name, size)
	b := openDevice(t, hb, "rbd/"+name, size)

	daemonA := "gwa:rbd/" + name
	waitFor(t, 30*time.Second, "gateway A in the service map", func() bool { return serviceDaemon(t, admin, daemonA) != nil })
	meta, _ := serviceDaemon(t, admin, daemonA)["metadata"].(map[string]any)
	for k, want := range map[string]string{"pool_name": "rbd", "image_name": name, "daemon_type": "portal", "daemon_prefix": "gwa"} {
		if meta[k] != want {
			t.Errorf("metadata %s = %v, want %q", k, meta[k], want)
		}
	}
	if id, _ := meta["image_id"].(string); id == "" {
		t.Error("metadata image_id is empty")
	}

	if err := a.BreakAndAcquire(); err != nil {
		t.Fatalf("A BreakAndAcquire: %v", err)
	}
	if own, err := a.IsExclusiveLockOwner(); err != nil || !own {
		t.Fatalf("A IsExclusiveLockOwner = %v, %v", own, err)
	}
	waitFor(t, 30*time.Second, "lock_owner true for A", func() bool {
		return serviceStatus(t, admin, daemonA)["lock_owner"] == "true"
	})
	buf := fill(mmapBuf(t, 4096), 'A')
	if _, err := do(a, handler.OpWrite, 0, 4096, false, buf); err != nil {
		t.Fatalf("write through A: %v", err)
	}
	addrA, err := a.ClientAddress()
	if err != nil || addrA == "" {
		t.Fatalf("ClientAddress = %q, %v", addrA, err)
	}

	if err := b.BreakAndAcquire(); err != nil {
		t.Fatalf("B BreakAndAcquire: %v", err)
	}
	if own, err := b.IsExclusiveLockOwner(); err != nil || !own {
		t.Fatalf("B IsExclusiveLockOwner = %v, %v", own, err)
	}
	// A was blocklisted by the break: its writes must fail, never land.
	bufB := fill(mmapBuf(t, 4096), 'B')
	if _, err := do(b, handler.OpWrite, 0, 4096, false, bufB); err != nil {
		t.Fatalf("write through B: %v", err)
	}
	late := fill(mmapBuf(t, 4096), 'X')
	_, err = do(a, handler.OpWrite, 0, 4096, false, late)
	if !errors.Is(err, syscall.ESHUTDOWN) && !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write through fenced A: %v, want ESHUTDOWN or EROFS", err)
	}
	if got := readBack(t, b, 0, 4096); got[0] != 'B' {
		t.Fatalf("image holds %q after A was fenced, want B's data", got[0])
	}
	if st := a.ServiceStatus(); st.LockOwner || st.LockLostCnt != 1 {
		t.Errorf("A status = %+v, want not owner and one lock lost", st)
	}
	// blocklisted returns the blocklist entries that are A's address.
	blocklisted := func() []string {
		var entries []struct {
			Addr string `json:"addr"`
		}
		if err := monCommand(admin, map[string]any{"prefix": "osd blocklist ls"}, &entries); err != nil {
			t.Fatal(err)
		}
		var found []string
		for _, e := range entries {
			if e.Addr != "" && strings.Contains(addrA, e.Addr) {
				found = append(found, e.Addr)
			}
		}
		return found
	}
	entries := blocklisted()
	if len(entries) == 0 {
		t.Fatalf("A's address %s is not on the blocklist", addrA)
	}
	for _, e := range entries {
		if err := b.RemoveBlocklistEntry(e); err != nil {
			t.Fatalf("RemoveBlocklistEntry(%s): %v", e, err)
		}
	}
	if left := blocklisted(); len(left) != 0 {
		t.Errorf("A's address still on the blocklist after removal: %v", left)
	}
	if err := b.ReleaseLock(); err != nil {
		t.Fatalf("B ReleaseLock: %v", err)
	}
	if own, err := b.IsExclusiveLockOwner(); err != nil || own {
		t.Errorf("B IsExclusiveLockOwner after release = %v, %v", own, err)
	}
	// A's client is dead; a new open of A gets a fresh one.
	if err := a.Close(); err != nil {
		t.Logf("close fenced A: %v", err)
	}
	a2 := openDevice(t, ha, "rbd/"+name, size)
	if err := a2.BreakAndAcquire(); err != nil {
		t.Fatalf("reopened A BreakAndAcquire: %v", err)
	}
	if got := readBack(t, a2, 0, 4096); got[0] != 'B' {
		t.Errorf("reopened A reads %q, want B's data", got[0])
	}
}

func TestMetadata(t *testing.T) {
	needCeph(t)
	const size = 4 << 20
	name := newImage(t, "rbd", size, 22)
	im := openDevice(t, Handler(Options{}), "rbd/"+name, size)
	if _, ok, err := im.Metadata("tcmu_rbd_locker_tag"); err != nil || ok {
		t.Fatalf("Metadata of an absent key = %v, %v", ok, err)
	}
	long := strings.Repeat("v", 1000)
	for _, v := range []string{"tcmu_tag=1,rbd_client=x", long} {
		if err := im.SetMetadata("tcmu_rbd_locker_tag", v); err != nil {
			t.Fatal(err)
		}
		got, ok, err := im.Metadata("tcmu_rbd_locker_tag")
		if err != nil || !ok || got != v {
			t.Errorf("Metadata = %.20q, %v, %v; want %.20q", got, ok, err, v)
		}
	}
}

func TestClientSharing(t *testing.T) {
	admin := needCeph(t)
	const size = 4 << 20
	names := []string{newImage(t, "rbd", size, 22), newImage(t, "rbd", size, 22), newImage(t, "rbd", size, 22)}
	h := Handler(Options{ImagesPerClient: 2, Host: "share"})
	var ims []*Image
	for _, n := range names {
		ims = append(ims, openDevice(t, h, "rbd/"+n, size))
	}
	if ims[0].client != ims[1].client || ims[2].client == ims[0].client {
		t.Errorf("clients not shared two per client: %p %p %p", ims[0].client, ims[1].client, ims[2].client)
	}
	for _, n := range names {
		waitFor(t, 30*time.Second, "shared-client image in the service map", func() bool {
			return serviceDaemon(t, admin, "share:rbd/"+n) != nil
		})
	}
	// Each entry rides on a connection of its own, configured small.
	for _, im := range ims {
		if im.svc.own == nil {
			t.Fatal("a shared client's image has no service connection of its own")
		}
		for _, o := range serviceOnly {
			if v, err := im.svc.own.GetConfigOption(o[0]); err != nil || v != o[1] {
				t.Errorf("service connection: %s = %q (%v), want %q", o[0], v, err, o[1])
			}
		}
	}
	buf := fill(mmapBuf(t, 4096), 's')
	for _, im := range ims {
		if _, err := do(im, handler.OpWrite, 0, 4096, false, buf); err != nil {
			t.Fatal(err)
		}
	}
	for _, im := range ims {
		if err := im.Close(); err != nil {
			t.Fatal(err)
		}
	}
	h2 := newClientPool(2)
	if n := len(h2.clients); n != 0 {
		t.Fatalf("new pool has %d clients", n)
	}
}

func TestNonRotationalFromDeviceClass(t *testing.T) {
	admin := needCeph(t)
	mon := func(cmd map[string]any) {
		t.Helper()
		if err := monCommand(admin, cmd, nil); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	// Give osd.0 the class ssd (the default rule ignores classes, so the
	// rbd pool is unaffected) and a pool whose rule selects ssd only.
	mon(map[string]any{"prefix": "osd crush rm-device-class", "ids": []string{"osd.0"}})
	mon(map[string]any{"prefix": "osd crush set-device-class", "class": "ssd", "ids": []string{"osd.0"}})
	mon(map[string]any{"prefix": "osd crush rule create-replicated", "name": "ssdrule", "root": "default", "type": "host", "class": "ssd"})
	pool := fmt.Sprintf("ssdpool%d", os.Getpid())
	if err := admin.MakePool(pool); err != nil {
		t.Fatal(err)
	}
	// Registered before the images', so it runs after their removal.
	t.Cleanup(func() {
		if err := admin.DeletePool(pool); err != nil {
			t.Errorf("delete pool %s: %v", pool, err)
		}
	})
	mon(map[string]any{"prefix": "osd pool set", "pool": pool, "var": "crush_rule", "val": "ssdrule"})
	mon(map[string]any{"prefix": "osd pool application enable", "pool": pool, "app": "rbd"})

	const size = 4 << 20
	h := Handler(Options{})
	for _, tt := range []struct {
		pool string
		want bool
	}{{pool, true}, {"rbd", false}} {
		name := newImage(t, tt.pool, size, 22)
		im := openDevice(t, h, tt.pool+"/"+name, size)
		if got := im.Limits().NonRotational; got != tt.want {
			t.Errorf("pool %s: NonRotational = %v, want %v", tt.pool, got, tt.want)
		}
		im.Close()
	}
}
