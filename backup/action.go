package backup

// ActionOmit is the action of a dead letter's record: QMQ's ActionEnum.OMIT
// (-2 as a signed byte). Stores return it in FindRecords for KindDead; the
// query API prints it as -2, as QMQ does.
const ActionOmit Action = 0xfe

// Code is a's number as QMQ prints it (a signed byte: OMIT is -2).
func (a Action) Code() int { return int(int8(a)) }
