package handler

// sbcCommands are the block commands (SBC-3).
var sbcCommands = []opInfo{}
