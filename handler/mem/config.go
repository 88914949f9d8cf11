package mem

import (
	"context"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
)

// Subtype is the backstore subtype: user:mem, config string "mem/<label>".
const Subtype = "mem"

// ConfigDesc is the help text targetcli shows for the config string.
const ConfigDesc = "RAM disk: mem/<label>\n" +
	"  label: any name for the disk (printable, up to 251 bytes); the data lives in gotcmu's memory, " +
	"allocated on first write, and is lost when the device is removed or gotcmu stops"

// maxLabelLen is the longest label accepted. The kernel keeps the device's
// config in char dev_config[TCMU_CONFIG_LEN] with TCMU_CONFIG_LEN 256
// (drivers/target/target_core_user.c), NUL included, and the "mem/"
// prefix counts too.
const maxLabelLen = 255 - len("mem/")

// Handler returns the user:mem handler.
func Handler() handler.Handler {
	return handler.Handler{
		Subtype:    Subtype,
		ConfigDesc: ConfigDesc,
		CheckConfig: func(_ context.Context, config string) error {
			return CheckLabel(config)
		},
		Open: func(_ context.Context, info handler.DeviceInfo, _ zerolog.Logger) (handler.Backend, error) {
			if err := CheckLabel(info.Config); err != nil {
				return nil, err
			}
			return New(info.Size)
		},
	}
}

// CheckLabel validates the part of a config string after "mem/". The
// label only names the disk, but it comes from outside (configfs, D-Bus)
// and ends up in logs and in the uio device name, so it must be text: valid
// UTF-8 without control characters, short enough for the kernel to store.
// An empty label is fine.
func CheckLabel(label string) error {
	if len(label) > maxLabelLen {
		return fmt.Errorf("label is %d bytes long; at most %d fit in the kernel's dev_config", len(label), maxLabelLen)
	}
	if !utf8.ValidString(label) {
		return fmt.Errorf("label %q is not valid UTF-8", label)
	}
	for i, r := range label {
		if unicode.IsControl(r) {
			return fmt.Errorf("label has control character %U at byte %d", r, i)
		}
	}
	return nil
}
