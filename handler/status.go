package handler

// SCSI status codes (SAM-5 5.3).
const (
	statusGood                = 0x00
	statusCheckCondition      = 0x02
	statusConditionMet        = 0x04
	statusBusy                = 0x08
	statusReservationConflict = 0x18
	statusTaskSetFull         = 0x28
	statusTaskAborted         = 0x40
)

// Sense keys (SPC-4 4.5.6, table 49).
const (
	keyNoSense        = 0x0
	keyRecoveredError = 0x1
	keyNotReady       = 0x2
	keyMediumError    = 0x3
	keyHardwareError  = 0x4
	keyIllegalRequest = 0x5
	keyUnitAttention  = 0x6
	keyDataProtect    = 0x7
	keyCopyAborted    = 0xa
	keyAbortedCommand = 0xb
	keyMiscompare     = 0xe
)

// asc is an additional sense code with its qualifier: ASC<<8 | ASCQ
// (SPC-4 4.5.6, table 50).
type asc uint16

const (
	ascNone                         asc = 0x0000
	ascLUNotReadyTransition         asc = 0x040a
	ascLUNotReadyStandby            asc = 0x040b
	ascLUNotReadyUnavailable        asc = 0x040c
	ascLUCommunicationFailure       asc = 0x0800
	ascWriteError                   asc = 0x0c00
	ascUnrecoveredReadError         asc = 0x1100
	ascParameterListLengthError     asc = 0x1a00
	ascMiscompareDuringVerify       asc = 0x1d00
	ascInvalidCommandOperationCode  asc = 0x2000
	ascLBAOutOfRange                asc = 0x2100
	ascInvalidFieldInCDB            asc = 0x2400
	ascLUNotSupported               asc = 0x2500
	ascInvalidFieldInParameterList  asc = 0x2600
	ascParameterNotSupported        asc = 0x2601
	ascParameterValueInvalid        asc = 0x2602
	ascTooManyTargetDescriptors     asc = 0x2606
	ascUnsupportedTargetDescType    asc = 0x2607
	ascTooManySegmentDescriptors    asc = 0x2608
	ascUnsupportedSegmentDescType   asc = 0x2609
	ascWriteProtected               asc = 0x2700
	ascCapacityDataChanged          asc = 0x2a09
	ascImplicitALUATransitionFailed asc = 0x2a07
	ascSavingParametersNotSupported asc = 0x3900
	ascInternalTargetFailure        asc = 0x4400
	ascCopyTargetDeviceNotReachable asc = 0x0d02
	ascCopyTargetDeviceInvalid      asc = 0x0d03
	ascSpaceAllocationFailed        asc = 0x2707
	ascLogicalUnitFailure           asc = 0x3e01
	ascInsufficientResources        asc = 0x5503
	ascSetTargetPortGroupsFailed    asc = 0x670a
)
