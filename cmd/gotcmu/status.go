package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/dbusapi"
)

// runStatus is `gotcmu status`: it asks the running daemon over the system
// bus (root only, by the D-Bus policy) and prints one line per device.
func runStatus(args []string) int {
	fs := flag.NewFlagSet("gotcmu status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the daemon's JSON report")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the daemon")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gotcmu status: connect to system bus: %v\n", err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	rep, err := dbusapi.FetchStatus(ctx, conn)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gotcmu status: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return 1
		}
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tUIO\tBACKEND\tCONFIG\tSIZE\tSTATE\tLOCK\tIN FLIGHT\tERRORS")
	for _, d := range rep.Devices {
		lock := "-"
		if d.LockState != "" {
			lock = d.LockState
			if d.LockOwner != "" {
				lock += " (" + d.LockOwner + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n",
			d.Name, d.UIO, d.Handler, d.Config, humanBytes(d.Size), d.State, lock, d.InFlight, d.Errors)
	}
	tw.Flush()
	for _, d := range rep.Devices {
		if d.Reason != "" {
			fmt.Printf("%s: %s\n", d.Name, d.Reason)
		}
	}
	if len(rep.Devices) == 0 {
		fmt.Println("(no devices)")
	}
	return 0
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
