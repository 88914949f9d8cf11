package netlink

import "fmt"

// Family and group names registered by target_core_user.c
// (tcmu_genl_family, tcmu_mcgrps).
const (
	FamilyName = "TCM-USER"
	GroupName  = "config"
)

// replyVersion is the generic netlink header version of the messages
// gotcmu sends. The kernel registers the family with version 2 and does not
// look at the version of requests; tcmu-runner sends TCMU_NL_VERSION (2).
const replyVersion = 2

// A Command is a TCM-USER generic netlink command
// (enum tcmu_genl_cmd in include/uapi/linux/target_core_user.h).
type Command uint8

// The commands the kernel multicasts to the "config" group.
const (
	CmdAddedDevice    Command = 1
	CmdRemovedDevice  Command = 2
	CmdReconfigDevice Command = 3
)

// The commands gotcmu sends to the kernel.
const (
	cmdAddedDeviceDone    Command = 4
	cmdRemovedDeviceDone  Command = 5
	cmdReconfigDeviceDone Command = 6
	cmdSetFeatures        Command = 7
)

// String returns the name the uapi header gives the command, without the
// TCMU_CMD_ prefix.
func (c Command) String() string {
	switch c {
	case 0:
		return "UNSPEC"
	case CmdAddedDevice:
		return "ADDED_DEVICE"
	case CmdRemovedDevice:
		return "REMOVED_DEVICE"
	case CmdReconfigDevice:
		return "RECONFIG_DEVICE"
	case cmdAddedDeviceDone:
		return "ADDED_DEVICE_DONE"
	case cmdRemovedDeviceDone:
		return "REMOVED_DEVICE_DONE"
	case cmdReconfigDeviceDone:
		return "RECONFIG_DEVICE_DONE"
	case cmdSetFeatures:
		return "SET_FEATURES"
	}
	return fmt.Sprintf("Command(%d)", uint8(c))
}

// done returns the command that acknowledges event command c
// (tcmu_genl_ops in target_core_user.c).
func (c Command) done() (Command, bool) {
	switch c {
	case CmdAddedDevice:
		return cmdAddedDeviceDone, true
	case CmdRemovedDevice:
		return cmdRemovedDeviceDone, true
	case CmdReconfigDevice:
		return cmdReconfigDeviceDone, true
	}
	return 0, false
}

// TCM-USER attribute types (enum tcmu_genl_attr).
const (
	attrDevice           = 1 // string: uio name
	attrMinor            = 2 // u32: uio minor
	attrPad              = 3 // alignment for nla_put_u64_64bit
	attrDevCfg           = 4 // string: new dev_config
	attrDevSize          = 5 // u64: new dev_size
	attrWriteCache       = 6 // u8: new emulate_write_cache
	attrCmdStatus        = 7 // s32: 0 or -errno in *_DONE
	attrDeviceID         = 8 // u32: se_dev.dev_index
	attrSuppKernCmdReply = 9 // u8: in SET_FEATURES
)

// attrName names an attribute type for error messages.
func attrName(t uint16) string {
	switch t {
	case attrDevice:
		return "DEVICE"
	case attrMinor:
		return "MINOR"
	case attrPad:
		return "PAD"
	case attrDevCfg:
		return "DEV_CFG"
	case attrDevSize:
		return "DEV_SIZE"
	case attrWriteCache:
		return "WRITECACHE"
	case attrCmdStatus:
		return "CMD_STATUS"
	case attrDeviceID:
		return "DEVICE_ID"
	case attrSuppKernCmdReply:
		return "SUPP_KERN_CMD_REPLY"
	}
	return fmt.Sprintf("attribute %d", t)
}
