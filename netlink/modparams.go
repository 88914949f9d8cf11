package netlink

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultModuleParamsDir is where target_core_user's module parameters are.
const DefaultModuleParamsDir = "/sys/module/target_core_user/parameters"

// ErrNoModuleParam wraps the error of a ModuleParams method whose parameter
// file does not exist: target_core_user is not loaded, or the kernel
// predates the parameter. A caller may log it and go on.
var ErrNoModuleParam = errors.New("target_core_user module parameter missing (module not loaded, or kernel too old)")

// ModuleParams writes the target_core_user module parameters that release
// configfs writers a dead daemon left waiting for a netlink reply. The
// kernel waits for a *_DONE reply with no timeout and uninterruptibly
// (wait_for_completion); these parameters are the only way out
// (tcmu_wait_genl_cmd_reply in drivers/target/target_core_user.c). At start-up, before serving events, do what
// tcmu-runner does:
//
//	BlockNetlink   new events fail at once with EAGAIN instead of waiting
//	ResetNetlink   every waiting writer is released with EINTR
//	... Dial, SetFeatures, start Receive, adopt existing devices ...
//	UnblockNetlink events flow again
//
// ResetNetlink fails with EBUSY unless netlink is blocked. Unblock even if a
// later start-up step fails: while blocked, every enable or reconfiguration
// write fails with EAGAIN.
//
// A released writer's write(2) returns EINTR. Writers that retry EINTR by
// themselves (Go's os.File, Python 3, so targetcli) write again at once:
// while netlink is still blocked the retry fails with EAGAIN; after
// UnblockNetlink it sends a fresh event, which the new daemon answers.
// (Checked against Debian's 6.1 kernel by TestKernelEventsAndReplies.)
type ModuleParams struct {
	// Dir is the parameters directory; empty means DefaultModuleParamsDir.
	// Tests point it at a temporary directory.
	Dir string
}

// BlockNetlink writes block_netlink=1.
func (p ModuleParams) BlockNetlink() error { return p.write("block_netlink", "1") }

// ResetNetlink writes reset_netlink=1, failing every pending netlink
// command with EINTR. Netlink must be blocked.
func (p ModuleParams) ResetNetlink() error { return p.write("reset_netlink", "1") }

// UnblockNetlink writes block_netlink=0.
func (p ModuleParams) UnblockNetlink() error { return p.write("block_netlink", "0") }

// path returns the file of parameter name.
func (p ModuleParams) path(name string) string {
	dir := p.Dir
	if dir == "" {
		dir = DefaultModuleParamsDir
	}
	return filepath.Join(dir, name)
}

func (p ModuleParams) write(name, value string) error {
	path := p.path(name)
	// No O_CREATE: a missing parameter must show as missing, not be created
	// (in sysfs that would fail anyway; in a test directory it would hide it).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write %s=%s: %w: %w", name, value, ErrNoModuleParam, err)
		}
		return fmt.Errorf("write %s=%s: %w", name, value, err)
	}
	// The kernel's kstrtou8 answers a bad value (and reset_netlink while not
	// blocked answers EBUSY) as the error of this write.
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("write %s=%s: %w", name, value, err)
	}
	return nil
}
