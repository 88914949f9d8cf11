package dbusapi

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/handler"
)

// overflowGID is the kernel's default overflowgid: the fsgid a caller with
// no group gets, so no group permission is granted by accident.
const overflowGID = 65534

// callerOf asks the bus daemon who the connection sender is. The bus
// daemon took these credentials from the socket (SO_PEERCRED and
// SO_PEERGROUPS) when the caller connected, so the caller cannot lie about
// them, and unique names are never reused, so they cannot change hands.
// GetConnectionCredentials answers UnixUserID like GetConnectionUnixUser
// and adds UnixGroupIDs, which filesystem permission checks need.
func callerOf(ctx context.Context, conn *dbus.Conn, sender string) (handler.Caller, error) {
	ctx, cancel := context.WithTimeout(ctx, busCallTimeout)
	defer cancel()
	var creds map[string]dbus.Variant
	err := conn.BusObject().CallWithContext(ctx, busDaemonName+".GetConnectionCredentials", 0, sender).Store(&creds)
	if err != nil {
		return handler.Caller{}, fmt.Errorf("get credentials of %s: %w", sender, err)
	}
	uid, ok := creds["UnixUserID"].Value().(uint32)
	if !ok {
		return handler.Caller{}, fmt.Errorf("get credentials of %s: the bus gave no UnixUserID", sender)
	}
	gids, _ := creds["UnixGroupIDs"].Value().([]uint32)
	return handler.Caller{UID: uid, GIDs: gids}, nil
}

// assumeFSCredentials gives the calling OS thread c's filesystem
// credentials: supplementary groups, fsgid and fsuid. The kernel checks
// file access with exactly these (fs/namei.c, generic_permission), and
// setting fsuid from 0 to another uid clears the thread's
// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (setfsuid(2)), so the thread
// can then read exactly what the caller can.
//
// All three system calls change only the calling thread: x/sys/unix issues
// setgroups as a raw system call, not glibc's or Go's all-threads variant.
// The caller must have locked its goroutine to the thread and must never
// unlock it: Go then ends the thread when the goroutine returns, so no other
// goroutine ever runs with these credentials, and the runtime creates no
// new thread by cloning a locked one (runtime.newm uses its template
// thread).
func assumeFSCredentials(c handler.Caller) error {
	gids := make([]int, len(c.GIDs))
	for i, g := range c.GIDs {
		gids[i] = int(g)
	}
	fsgid := overflowGID
	if len(gids) > 0 {
		// Any of them will do as fsgid: the kernel grants group
		// permission when the file's group is the fsgid or a
		// supplementary group (in_group_p).
		fsgid = gids[0]
	}
	if err := unix.Setgroups(gids); err != nil {
		return fmt.Errorf("set groups: %w", err)
	}
	if err := setfs(unix.SetfsgidRetGid, fsgid); err != nil {
		return fmt.Errorf("set fsgid %d: %w", fsgid, err)
	}
	if err := setfs(unix.SetfsuidRetUid, int(c.UID)); err != nil {
		return fmt.Errorf("set fsuid %d: %w", c.UID, err)
	}
	return nil
}

// setfs calls setfsuid or setfsgid and verifies the result: these calls
// report failure only by not changing the id, and calling them with -1
// fails on purpose and returns the current id (setfsuid(2)).
func setfs(set func(int) (int, error), id int) error {
	if _, err := set(id); err != nil {
		return err
	}
	now, _ := set(-1)
	if now != id {
		return fmt.Errorf("still %d: %w", now, unix.EPERM)
	}
	return nil
}

// runAsCaller runs fn on a new goroutine; for callers other than root and
// other than the daemon's own user (who could read all the daemon can
// anyway), on a locked OS thread with the caller's filesystem credentials. It reports on
// done when fn has returned or could not be started. A panic in fn is
// turned into an error so a broken handler cannot bring the daemon down.
func runAsCaller(c handler.Caller, fn func() error, done chan<- error) {
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("handler panicked: %v", p)
			}
		}()
		if c.UID != 0 && c.UID != uint32(os.Geteuid()) {
			runtime.LockOSThread() // never unlocked: see assumeFSCredentials
			if err := assumeFSCredentials(c); err != nil {
				done <- fmt.Errorf("assume credentials of uid %d: %w", c.UID, err)
				return
			}
		}
		done <- fn()
	}()
}
