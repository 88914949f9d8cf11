// Package config reads gotcmu's configuration file, /etc/tcmu/tcmu.conf,
// the file tcmu-runner reads (libtcmu_config.c), and follows its changes.
//
// The syntax is tcmu-runner's, one option per line:
//
//	# a comment
//	log_level = 4            an integer
//	log_dir = "/var/log"     a string, in double or single quotes
//	some_flag                a boolean, true when present
//
// tcmu-runner's keys keep their meaning (log_level 0-5, log_dir); gotcmu adds
// its own (see Config). Keys this version does not know are reported as
// warnings, not errors, so a file written for tcmu-runner or for a newer
// gotcmu still loads. A key that is absent has its default, so commenting a
// key out and saving restores the default. A file that does not parse is
// not applied at all: Watch keeps the configuration it had and logs why.
//
// The package never writes the file; it reads at most MaxFileSize bytes of
// it and only from a regular file. It uses inotify directly (not netlink),
// on the file's directory so that editors that replace the file are seen.
package config
