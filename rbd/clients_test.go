//go:build !nautilus

package rbd

import (
	"testing"

	"github.com/ceph/go-ceph/rados"
)

// The C heap is trimmed once a client is shut down, after its last image,
// and not while another image still uses the client (trim.go says why).
func TestClientShutdownTrimsTheCHeap(t *testing.T) {
	trims := 0
	old := trimCHeap
	trimCHeap = func() { trims++ }
	t.Cleanup(func() { trimCHeap = old })

	conn, err := rados.NewConn()
	if err != nil {
		t.Fatal(err)
	}
	p := newClientPool(2)
	key := connKey{}
	c := &client{key: key, conn: conn, images: 2}
	p.clients[key] = []*client{c}
	p.put(c)
	if trims != 0 || len(p.clients[key]) != 1 {
		t.Fatalf("after the first of two images: %d trims, %d clients; want 0 and 1", trims, len(p.clients[key]))
	}
	p.put(c)
	if trims != 1 || len(p.clients) != 0 {
		t.Fatalf("after the last image: %d trims, %d client keys; want 1 and 0", trims, len(p.clients))
	}
}
