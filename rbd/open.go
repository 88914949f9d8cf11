//go:build !nautilus

package rbd

/*
#cgo LDFLAGS: -lrbd
#include <stdbool.h>
#include <stdlib.h>
#include <rbd/librbd.h>

// librbd calls the progress function unchecked (CProgressContext).
static int gotcmu_no_progress(uint64_t offset, uint64_t total, void *arg) {
	return 0;
}

static int gotcmu_grow(rbd_image_t image, uint64_t size) {
	return rbd_resize2(image, size, false, gotcmu_no_progress, NULL);
}
*/
import "C"

import (
	"unsafe"

	"github.com/ceph/go-ceph/rados"
)

// rbdOpen opens an image for reading and writing on go-ceph's IO context,
// so that the handle belongs to this package and may be passed to the aio,
// lock and diff functions below.
//
// Implements:
//
//	int rbd_open(rados_ioctx_t io, const char *name, rbd_image_t *image,
//	             const char *snap_name);
func rbdOpen(ioctx *rados.IOContext, name string) (C.rbd_image_t, error) {
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	var image C.rbd_image_t
	ret := C.rbd_open(C.rados_ioctx_t(ioctx.Pointer()), cName, &image, nil)
	if err := getError(ret); err != nil {
		return nil, err
	}
	return image, nil
}

// rbdClose closes the image; librbd waits for its operations in flight
// and releases the exclusive lock if this handle owns it.
//
// Implements:
//
//	int rbd_close(rbd_image_t image);
func rbdClose(image C.rbd_image_t) error {
	return getError(C.rbd_close(image))
}

// rbdSize returns the image's size, refreshing the handle first if another
// client changed the header (librbd refreshes on demand after the header
// watch notifies it).
//
// Implements:
//
//	int rbd_get_size(rbd_image_t image, uint64_t *size);
func rbdSize(image C.rbd_image_t) (int64, error) {
	var size C.uint64_t
	if err := getError(C.rbd_get_size(image, &size)); err != nil {
		return 0, err
	}
	return int64(size), nil
}

// rbdGrow makes the image size bytes, refusing to shrink it.
//
// Implements:
//
//	int rbd_resize2(rbd_image_t image, uint64_t size, bool allow_shrink,
//	                librbd_progress_fn_t cb, void *cbdata);
func rbdGrow(image C.rbd_image_t, size int64) error {
	return getError(C.gotcmu_grow(image, C.uint64_t(size)))
}

// rbdObjectSize returns the size of the image's RADOS objects.
//
// Implements:
//
//	int rbd_stat(rbd_image_t image, rbd_image_info_t *info, size_t infosize);
func rbdObjectSize(image C.rbd_image_t) (int64, error) {
	var info C.rbd_image_info_t
	if err := getError(C.rbd_stat(image, &info, C.sizeof_rbd_image_info_t)); err != nil {
		return 0, err
	}
	return int64(info.obj_size), nil
}

// rbdID returns the image's id, as the service map's image_id.
//
// Implements:
//
//	int rbd_get_id(rbd_image_t image, char *id, size_t id_len);
func rbdID(image C.rbd_image_t) (string, error) {
	// RBD image ids are short hex strings; 64 bytes is ample, and librbd
	// answers ERANGE rather than overflow.
	var buf [64]C.char
	if err := getError(C.rbd_get_id(image, &buf[0], C.size_t(len(buf)))); err != nil {
		return "", err
	}
	return C.GoString(&buf[0]), nil
}
