//go:build !nautilus

package rbd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"syscall"

	"github.com/ceph/go-ceph/rados"

	"github.com/gotcmu/gotcmu/handler"
)

// limits is what librbd does natively for an image with objects of
// objSize bytes, as tcmu-runner advertises it (rbd.c tcmu_rbd_open):
// discard granularity and alignment from rbd_discard_granularity_bytes, or
// the object size when that is 0; at most 4 objects per discard or write
// same; discarded blocks read back as zeros. Compare-and-write is native
// only for 512-byte blocks (see cawSector).
func limits(discardGranularity, objSize int64, blockSize uint32, nonRotational bool) handler.Limits {
	gran := discardGranularity
	if gran <= 0 || gran > objSize {
		gran = objSize
	}
	return handler.Limits{
		Discard:            true,
		DiscardZeroes:      true,
		WriteSame:          true,
		CompareAndWrite:    blockSize == cawSector,
		DiscardGranularity: uint32(gran),
		DiscardAlignment:   uint32(gran),
		MaxDiscardBytes:    uint64(4 * objSize),
		MaxWriteSameBytes:  uint64(4 * objSize),
		NonRotational:      nonRotational,
		// rbd_cache is forced off (conn.go): librbd completes a write
		// once the OSDs have persisted it.
		StableWrites: true,
	}
}

// discardGranularity reads the client's rbd_discard_granularity_bytes.
func discardGranularity(conn *rados.Conn) (int64, error) {
	v, err := conn.GetConfigOption("rbd_discard_granularity_bytes")
	if err != nil {
		return 0, fmt.Errorf("get rbd_discard_granularity_bytes: %w", cephErrno(err))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse rbd_discard_granularity_bytes %q: %w", v, err)
	}
	return n, nil
}

// nonRotationalClasses are the CRUSH device classes tcmu-runner reports as
// non-rotating media (rbd.c tcmu_rbd_detect_device_class).
var nonRotationalClasses = []string{"ssd", "nvme"}

// monCommand runs a JSON mon command and decodes its JSON answer into out.
func monCommand(conn *rados.Conn, cmd map[string]any, out any) error {
	cmd["format"] = "json"
	req, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	buf, status, err := conn.MonCommand(req)
	if err != nil {
		if status != "" {
			return fmt.Errorf("mon command %s: %s: %w", cmd["prefix"], status, cephErrno(err))
		}
		return fmt.Errorf("mon command %s: %w", cmd["prefix"], cephErrno(err))
	}
	if out == nil {
		return nil
	}
	// Some answers hold more than one JSON value ("osd blocklist ls" adds
	// the range blocklist); the first is the one asked for.
	if err := json.NewDecoder(bytes.NewReader(buf)).Decode(out); err != nil {
		return fmt.Errorf("decode answer of mon command %s: %w", cmd["prefix"], err)
	}
	return nil
}

// poolNonRotational reports whether the pool's CRUSH rule selects only
// devices of a non-rotating class, as tcmu-runner finds out: the rule name
// from "osd pool get <pool> crush_rule", then whether "osd crush rule
// ls-by-class <class>" lists it for ssd or nvme.
func poolNonRotational(conn *rados.Conn, pool string) (bool, error) {
	var rule struct {
		CrushRule string `json:"crush_rule"`
	}
	if err := monCommand(conn, map[string]any{"prefix": "osd pool get", "pool": pool, "var": "crush_rule"}, &rule); err != nil {
		return false, err
	}
	for _, class := range nonRotationalClasses {
		var rules []string
		err := monCommand(conn, map[string]any{"prefix": "osd crush rule ls-by-class", "class": class}, &rules)
		if errors.Is(err, syscall.ENOENT) {
			continue // no device of this class in the cluster
		}
		if err != nil {
			return false, err
		}
		if slices.Contains(rules, rule.CrushRule) {
			return true, nil
		}
	}
	return false, nil
}
