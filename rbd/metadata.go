//go:build !nautilus

package rbd

/*
#cgo LDFLAGS: -lrbd
#include <errno.h>
#include <stdlib.h>
#include <rbd/librbd.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// Metadata returns the image metadata value of key (tcmu-runner keeps its
// ALUA lock tag in "tcmu_rbd_locker_tag"), and false if the key is absent.
// Own cgo rather than go-ceph's Image.GetMetadata because it must use the
// handle that holds the exclusive lock.
//
// Implements:
//
//	int rbd_metadata_get(rbd_image_t image, const char *key, char *value,
//	                     size_t *val_len);
func (im *Image) Metadata(key string) (string, bool, error) {
	cKey := C.CString(key)
	defer C.free(unsafe.Pointer(cKey))
	for size := C.size_t(256); ; {
		buf := (*C.char)(C.malloc(size))
		n := size
		ret := C.rbd_metadata_get(im.image, cKey, buf, &n)
		if ret == -C.ERANGE && n > size && n <= 1<<20 {
			C.free(unsafe.Pointer(buf))
			size = n
			continue
		}
		defer C.free(unsafe.Pointer(buf))
		err := getError(ret)
		switch {
		case errors.Is(err, syscall.ENOENT):
			return "", false, nil
		case err != nil:
			return "", false, fmt.Errorf("get metadata %s of %s: %w", key, im.cfg.ImageSpec(), err)
		}
		// Values are C strings: librbd NUL-terminates them within n.
		return C.GoString(buf), true, nil
	}
}

// SetMetadata sets the image metadata key to value. librbd takes the
// exclusive lock for it if this handle does not hold it.
//
// Implements:
//
//	int rbd_metadata_set(rbd_image_t image, const char *key,
//	                     const char *value);
func (im *Image) SetMetadata(key, value string) error {
	cKey := C.CString(key)
	defer C.free(unsafe.Pointer(cKey))
	cValue := C.CString(value)
	defer C.free(unsafe.Pointer(cValue))
	if err := getError(C.rbd_metadata_set(im.image, cKey, cValue)); err != nil {
		im.noteError(err)
		return fmt.Errorf("set metadata %s of %s: %w", key, im.cfg.ImageSpec(), err)
	}
	return nil
}
